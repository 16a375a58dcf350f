#!/bin/sh
# test_tree_gunicorn.sh without --preload: each gunicorn worker imports the
# Flask app after the fork, so the master never holds the patched function.
# A worker respawned after the patch was stored reports its import of
# gapp.py (the file the debugger listed, TREE_FILES) and gets the stored
# patch in the module's code before its first line runs: it answers the
# bad record with the fallback and no new crash is seen; under suture-run
# and under suture-attach --pid MASTER --watch.
TREE_PRELOAD=0
export TREE_PRELOAD
. "$(dirname "$0")/test_tree_gunicorn.sh"
