#!/bin/sh
# Where long-running jobs live, under suture-attach --pid N --watch: the
# target is started without suture and attached to while it runs. Servers
# (socketserver, http.server, wsgiref, Flask, Django, aiohttp, FastAPI async
# and sync views): the bad record gets the fallback at once (a view called
# from Python or from C, a coroutine view), the process keeps serving;
# before that, Django and FastAPI serve 100 requests (good ones and unknown
# URLs, whose 404s are the frameworks' own exceptions) with no crash
# reported. Jobs: an asyncio
# coroutine calling a crashing function and a @contextmanager block are
# healed in flight (the job finishes, started once); the deliberate-handling
# script reports nothing; application code inside site-packages is healed
# only with --app-path.
set -u
. "$(dirname "$0")/lib.sh"
ATTACH="$BUILD/bin/suture-attach"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/frameworks"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

patches() { "$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'; }

# start DIR ARGS...: a target in its own process group, then the watcher
start() {
	d=$1; shift
	mkdir -p "$d"
	start_group "$(basename "$d")" "$d/ready" "$PYTHON" "$@"
	pg=$BG
	ln -sf "$W/$(basename "$d").out" "$d/out"
	ln -sf "$W/$(basename "$d").err" "$d/err"
	read -r port pid <"$d/ready"
	# shellcheck disable=SC2086
	"$ATTACH" --pid "$pid" --watch --store "$d/store" ${ATTACH_ARGS:-} 2>"$d/watch" &
	at=$!
	track "$at"
	wait_grep "^\[suture\] watching pid $pid\$" "$d/watch" 30
}

stop() { # DIR
	kill -INT "$at"
	wait "$at" 2>/dev/null
	kill -TERM -"$pg" 2>/dev/null
	wait "$pg" 2>/dev/null
}

server() { # NAME FIRST-BAD PREFIX [WARMUP]
	name=$1 first=$2 pre=$3
	d="$W/$name$(echo "$pre" | tr -d /)"
	start "$d" "$F/$name.py" "$d/ready"
	line=""
	[ "$name" = srv_socketserver ] && line=--line
	if [ -n "${4:-}" ]; then
		i=0 paths=""
		while [ $i -lt 50 ]; do paths="$paths ${pre}good no/such/$i"; i=$((i + 1)); done
		# shellcheck disable=SC2086
		"$PYTHON" "$F/client.py" "$port" $paths >"$d/warm"
		[ "$(grep -c '^200 value: 21$' "$d/warm")" -eq 50 ] || fail "$name: good requests"
		[ "$(grep -c '^404 ' "$d/warm")" -eq 50 ] || { sort "$d/warm" | uniq -c; fail "$name: 404s"; }
		grep -q 'crash seen' "$d/watch" && { cat "$d/watch"; fail "$name: a framework's own exception was reported"; }
		[ "$(patches "$d/store")" -eq 0 ] || fail "$name: a patch after good requests"
	fi
	"$PYTHON" "$F/client.py" $line "$port" "${pre}good" "${pre}bad" "${pre}bad" "${pre}good" \
		>"$d/answers"
	printf '200 value: 21\n%s\n200 value: None\n200 value: 21\n' "$first" >"$d/want"
	cmp -s "$d/answers" "$d/want" || { cat "$d/answers" "$d/watch"; fail "$name $pre: answers"; }
	kill -0 "$pid" 2>/dev/null || fail "$name: the server process is gone"
	stop "$d"
	k=$(patches "$d/store")
	[ "$k" -eq 1 ] || { cat "$d/watch"; fail "$name: $k patches stored, not 1"; }
	ok "$name $pre(first bad request: $first)"
}

server srv_socketserver "200 value: None" ""
server srv_httpserver "200 value: None" ""
server srv_wsgiref "200 value: None" ""
# The first bad request already gets the fallback: a view called from
# Python, from C (Flask's dispatch_request with **view_args, FastAPI's sync
# views through anyio's worker with context.run: the C caller gets the
# result) or a coroutine view (its own frame goes on in the patched code).
for fw in flask:srv_flask django:srv_django aiohttp:srv_aiohttp fastapi:srv_fastapi; do
	mod=${fw%%:*} name=${fw#*:}
	if ! "$PYTHON" -c "import $mod" 2>/dev/null; then
		echo "absent: python3-$mod, $name not tested"
		continue
	fi
	case $name in
	srv_fastapi)
		server srv_fastapi "200 value: None" "async/" warm
		server srv_fastapi "200 value: None" "sync/" ;;
	srv_django) server srv_django "200 value: None" "" warm ;;
	*) server "$name" "200 value: None" "" ;;
	esac
done

job() { # NAME EXPECTED-LINE PATCHES
	d="$W/job-$1"
	start "$d" "$F/go.py" "$d/ready" "$d/go" "$F/$1.py"
	: >"$d/go"
	wait "$pg"
	rc=$?
	[ $rc -eq 0 ] || { cat "$d/out" "$d/err" "$d/watch"; fail "$1: exited $rc"; }
	grep -qxF "$2" "$d/out" || { cat "$d/out" "$d/watch"; fail "$1: no '$2'"; }
	wait "$at" 2>/dev/null
	k=$(patches "$d/store")
	[ "$k" -eq "$3" ] || { cat "$d/watch"; fail "$1: $k patches stored, not $3"; }
	ok "$1 under --watch ($k patch(es))"
}
job asyncio_call "total: 8" 1
job contextmgr "result: (4, ['enter', 'exit'])" 1
job deliberate "done" 0
# Application code in a site-packages directory: healed only when
# --app-path names it (sent to the agent in HELLO).
ATTACH_ARGS="--app-path $F/vendored/site-packages/vend" job app_path "parsed: [1, None]" 1
d="$W/job-app_path-lib"
start "$d" "$F/go.py" "$d/ready" "$d/go" "$F/app_path.py"
: >"$d/go"
wait "$pg" && fail "app_path: healed without --app-path"
wait "$at" 2>/dev/null
grep -q 'crash seen' "$d/watch" && fail "app_path: site-packages code reported without --app-path"
ok "app_path: library code without --app-path"
grep -q 'crash seen' "$W/job-deliberate/watch" && fail "deliberate: reported"
echo PASS
