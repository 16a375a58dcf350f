#!/bin/sh
# Where long-running jobs live, under suture-run (issue: a crash is what the
# application does not handle). Jobs: a plain function called from an
# asyncio coroutine and a with block whose @contextmanager does not catch
# (healed in flight: started once); a crashing coroutine under gather
# (its frame goes on in the patched code: started once); a
# ThreadPoolExecutor map and a Celery task in eager mode (the exception is
# stored and re-raised by a consumer after the call returned: healed for
# later calls, the job re-run once);
# exceptions the application handles away from where they start (a
# future's consumer, gather(return_exceptions=True), an awaiting task, a
# @contextmanager, contextlib.suppress, its own catch-all) are never
# patched; a crash in a caller whose callee was just resumed is healed in
# flight as well. Servers (socketserver, http.server, wsgiref, Flask, Django,
# aiohttp, FastAPI on uvicorn with an async and a sync view): the bad record
# gets the fallback at once (a view called from Python or from C, a
# coroutine view), the good ones keep their value, the process is the same
# one throughout, and one patch is stored.
set -u
. "$(dirname "$0")/lib.sh"
RUN="$BUILD/bin/suture-run"
AUDIT="$BUILD/bin/suture-audit"
F="$SUTURE_ROOT/tests/fixtures/frameworks"
export SUTURE_AGENT="$BUILD/lib/libsuture_agent.so"

patches() { # STORE: how many patches it holds
	"$AUDIT" --store "$1" --json 2>/dev/null | grep -c '"name"'
}

# job NAME EXPECTED-LINE STARTS PATCHES: run a script to its end
job() {
	S="$W/store-$1"
	"$RUN" --python "$PYTHON" --store "$S" "$F/$1.py" >"$W/$1.out" 2>"$W/$1.err"
	rc=$?
	[ $rc -eq 0 ] || { cat "$W/$1.out" "$W/$1.err"; fail "$1: exited $rc"; }
	grep -qxF "$2" "$W/$1.out" || { cat "$W/$1.out" "$W/$1.err"; fail "$1: no '$2'"; }
	runs=$(( $(grep -c '^\[suture\] re-running' "$W/$1.err") + 1 ))
	[ "$runs" -eq "$3" ] || { cat "$W/$1.err"; fail "$1: started $runs times, not $3"; }
	n=$(patches "$S")
	[ "$n" -eq "$4" ] || { cat "$W/$1.err"; fail "$1: $n patches stored, not $4"; }
	ok "$1 ($runs start(s), $n patch(es))"
}

job asyncio_call "total: 8" 1 1
grep -q '^\[suture\] resumed in flight: parse went on' "$W/asyncio_call.err" ||
	fail "asyncio_call: not resumed in flight"
job contextmgr "result: (4, ['enter', 'exit'])" 1 1
# A crash in a caller whose call was just resumed in flight (it runs a
# copy of its code then): healed in flight too.
job caller_crash "result: None None" 1 2
[ "$(grep -c '^\[suture\] resumed in flight' "$W/caller_crash.err")" -eq 2 ] ||
	{ cat "$W/caller_crash.err"; fail "caller_crash: not both resumed"; }
job asyncio_gather "got: [1, None, 3]" 1 1
job pool_map "total: 8" 2 1
if "$PYTHON" -c 'import celery' 2>/dev/null; then
	job celery_eager "total: 8" 2 1
	job celery_deliberate "total: 8" 1 0
	grep -qxF "celery: handled by the caller" "$W/celery_deliberate.out" ||
		fail "celery_deliberate: not handled by the caller"
else
	echo "absent: python3-celery, celery_eager not tested"
fi
# Application code inside a site-packages directory is library code (its
# crash ends the job) unless --app-path names it (healed in flight).
"$RUN" --python "$PYTHON" --store "$W/store-lib" "$F/app_path.py" >"$W/lib.out" 2>"$W/lib.err" &&
	fail "app_path: a crash in site-packages code was healed without --app-path"
grep -q 'crash seen' "$W/lib.err" && fail "app_path: site-packages code reported without --app-path"
"$RUN" --python "$PYTHON" --store "$W/store-app" --app-path "$F/vendored/site-packages/vend" \
	"$F/app_path.py" >"$W/app.out" 2>"$W/app.err" || { cat "$W/app.err"; fail "app_path: exited non-zero"; }
grep -qxF "parsed: [1, None]" "$W/app.out" || { cat "$W/app.out" "$W/app.err"; fail "app_path: no fallback"; }
grep -q '^\[suture\] resumed in flight: parse' "$W/app.err" || fail "app_path: not resumed in flight"
ok "--app-path"
# The same from the store's config.json; a malformed one is refused in one line.
mkdir -m 700 "$W/store-conf"
printf '{"app_paths": ["%s"]}\n' "$F/vendored/site-packages/vend" >"$W/store-conf/config.json"
chmod 600 "$W/store-conf/config.json"
"$RUN" --python "$PYTHON" --store "$W/store-conf" "$F/app_path.py" >"$W/conf.out" 2>"$W/conf.err" ||
	{ cat "$W/conf.err"; fail "config.json app_paths: exited non-zero"; }
grep -qxF "parsed: [1, None]" "$W/conf.out" || { cat "$W/conf.err"; fail "config.json app_paths: no fallback"; }
printf '{"app_paths": ["relative"]}\n' >"$W/store-conf/config.json"
"$RUN" --python "$PYTHON" --store "$W/store-conf" "$F/app_path.py" >"$W/conf2.out" 2>"$W/conf2.err"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$W/conf2.err")" -eq 1 ] && grep -q 'config.json' "$W/conf2.err" ||
	{ cat "$W/conf2.err"; fail "a malformed config.json: exit $rc"; }
ok "config.json app_paths"
job deliberate "done" 1 0
for l in "executor: handled by the consumer" "executor map: handled by the consumer" \
	"gather: ['int', 'KeyError']" "gather: handled by the awaiting task" \
	"task: handled by the awaiting task" "contextmanager: handled by the generator" \
	"suppress: handled" "catch-all: handled by the application"; do
	grep -qxF "$l" "$W/deliberate.out" || fail "deliberate: no '$l'"
done
grep -q 'crash seen' "$W/deliberate.err" && { cat "$W/deliberate.err"; fail "deliberate: a handled exception was reported"; }

# server NAME FIRST-BAD PATHS-PREFIX: start under suture-run, request
# good, bad, bad, good; FIRST-BAD is what the first bad request answers.
server() {
	name=$1 first=$2 pre=$3
	d="$W/$name$(echo "$pre" | tr -d /)"
	mkdir -p "$d"
	start_group "$name$(echo "$pre" | tr -d /)" "$d/ready" \
		"$RUN" --python "$PYTHON" --store "$d/store" "$F/$name.py" "$d/ready"
	pg=$BG
	ln -sf "$W/$name$(echo "$pre" | tr -d /).err" "$d/err"
	read -r port pid <"$d/ready"
	line=""
	[ "$name" = srv_socketserver ] && line=--line
	"$PYTHON" "$F/client.py" $line "$port" "${pre}good" "${pre}bad" "${pre}bad" "${pre}good" \
		>"$d/answers"
	printf '200 value: 21\n%s\n200 value: None\n200 value: 21\n' "$first" >"$d/want"
	cmp -s "$d/answers" "$d/want" || { cat "$d/answers" "$d/err"; fail "$name ${pre}: answers"; }
	kill -0 "$pid" 2>/dev/null || fail "$name: the server process $pid is gone"
	read -r port2 pid2 <"$d/ready"
	[ "$pid2" = "$pid" ] || fail "$name: restarted"
	kill -TERM -"$pg"
	wait "$pg" 2>/dev/null
	PGIDS=$(echo "$PGIDS" | tr ' ' '\n' | grep -vx "$pg" | tr '\n' ' ' || :)
	grep -q '^\[suture\] re-running' "$d/err" && { cat "$d/err"; fail "$name: re-run after it was stopped"; }
	k=$(patches "$d/store")
	[ "$k" -eq 1 ] || { cat "$d/err"; fail "$name: $k patches stored, not 1"; }
	ok "$name ${pre}(first bad request: $first)"
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
	if [ "$name" = srv_fastapi ]; then
		server srv_fastapi "200 value: None" "async/"
		server srv_fastapi "200 value: None" "sync/"
	else
		server "$name" "200 value: None" ""
	fi
done
echo PASS
