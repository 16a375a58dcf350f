#!/bin/sh
# make demo: suture on an example crash, start to finish, in a scratch
# directory (the example is copied there; nothing in the tree is touched).
#   1. the job crashes on a record with no customer, suture heals it in
#      flight and the job finishes every record;
#   2. suture-audit shows and explains the patch;
#   3. the next run is healed before its first call;
#   4. rollback brings the original crash back.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PYTHON=${PYTHON:-/usr/bin/python3.11}
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"
W=$(mktemp -d /tmp/suture-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp "$ROOT/tests/fixtures/demo/orders.py" "$W/"
cd "$W" || exit 1

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" 2>&1; }

echo "The job (orders.py): record 3 has no customer, so tier_of() hits None:"
sed -n '/^def tier_of/,/^$/p' orders.py
step "$PYTHON" orders.py
step "$BUILD/bin/suture-run" --python "$PYTHON" orders.py || exit 1
step "$BUILD/bin/suture-audit"
step "$BUILD/bin/suture-audit" explain
step "$BUILD/bin/suture-run" --python "$PYTHON" orders.py || exit 1
step "$BUILD/bin/suture-audit" rollback --all || exit 1
step "$BUILD/bin/suture-run" --python "$PYTHON" --dry-run orders.py
echo
echo "orders.py was never modified; the patch lived in $W/.suture only."
exit 0
