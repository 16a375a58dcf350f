#!/bin/sh
# Install what suture needs to build and test, from Debian's archive only.
# Idempotent: does nothing (and needs no network) when everything is present.
#
# The frameworks are Debian's (bookworm's python3 is 3.11): the end-to-end
# tests of what counts as a crash run real Flask, Django, aiohttp, FastAPI
# on uvicorn and Celery applications (tests/e2e/test_frameworks_*.sh).
#
# python3.11, python3.11-dbg and libpython3.11-dev are installed together so
# apt picks one version for all of them: the build-id debug file shipped by
# python3.11-dbg only describes the /usr/bin/python3.11 of the same version.
set -eu

PKGS="gcc make clang libclang-rt-14-dev pkg-config
libelf-dev libdwarf-dev libcjson-dev libcriterion-dev
python3.11 python3.11-dbg libpython3.11-dev libpython3.11-testsuite
python3-bytecode gdb clang-format strace
python3-flask python3-django python3-aiohttp python3-fastapi python3-uvicorn
gunicorn python3-celery"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
if [ -z "$missing" ] && [ "$(ver python3.11)" = "$(ver python3.11-dbg)" ] &&
   [ "$(ver python3.11)" = "$(ver libpython3.11-dev)" ]; then
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing; run 'make deps' as root" >&2
	exit 1
fi

echo "deps: installing:${missing:- (version sync)}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# Name python3.11 and its companions together so their versions match.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $PKGS >&2

if [ "$(ver python3.11)" != "$(ver python3.11-dbg)" ]; then
	echo "deps: python3.11 $(ver python3.11) and python3.11-dbg $(ver python3.11-dbg) differ" >&2
	exit 1
fi
