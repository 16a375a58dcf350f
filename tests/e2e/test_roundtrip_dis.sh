#!/bin/sh
# suture-dis against Python's own dis module: for every code object of a
# few stdlib modules, the instruction offsets, opcode names and resolved
# arguments (names, constants, locals, jump targets, operators) printed by
# suture-dis must equal dis.get_instructions(); every line must carry a
# stack depth.
set -eu
. "$(dirname "$0")/lib.sh"
dis="$BUILD/bin/suture-dis"
[ -x "$dis" ] || fail "missing $dis"
work=$W
lib=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
files="$lib/json/encoder.py $lib/textwrap.py $lib/contextlib.py $lib/asyncio/locks.py"
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/d.dump" $files
"$dis" --all "$work/d.dump" >"$work/out"
"$PYTHON" - "$work/out" $files <<'PY'
import dis, re, sys
text = open(sys.argv[1]).read()
out = text.split("\ncode ")[1:]   # each block: "code ..." up to the next "# verified" line
assert all(b.rstrip().splitlines()[-1].startswith("# verified") for b in out[:-1])
codes = []
def walk(c):
    codes.append(c)
    for k in c.co_consts:
        if isinstance(k, type(c)):
            walk(k)
for path in sys.argv[2:]:
    walk(compile(open(path, "rb").read(), path, "exec", dont_inherit=True))
assert len(out) == len(codes), (len(out), len(codes))
line_re = re.compile(r"^\s*(\d+) L\S*\s+\+?\s?([A-Z_]+)\s*(\d*)(?: \((.*?)\))?  d=(\d+|-)")
checked = resolved = 0
for block, code in zip(out, codes):
    assert block.startswith(code.co_qualname + " ("), (block[:80], code.co_qualname)
    mine = [line_re.match(l) for l in block.splitlines()]
    mine = [m for m in mine if m]
    ref = [i for i in dis.get_instructions(code) if i.opname != "EXTENDED_ARG"]
    assert len(mine) == len(ref), (code.co_qualname, len(mine), len(ref))
    for m, i in zip(mine, ref):
        off, name, arg, argrepr, depth = m.groups()
        assert int(off) == i.offset and name == i.opname, (code.co_qualname, m.group(0), i)
        if i.arg is not None:
            assert int(arg) == i.arg, (m.group(0), i)
        if argrepr is not None and not argrepr.endswith("..."):
            want = i.argrepr
            if isinstance(i.argval, type(code)):
                want = "<code object %s>" % i.argval.co_qualname
            # dis leaves some args unresolved (KW_NAMES); suture-dis says more there
            assert argrepr == want or want == "", (code.co_qualname, m.group(0), want)
            resolved += want != ""
        elif i.opcode in dis.hasjrel or i.opcode in dis.hasname or i.opcode in dis.haslocal:
            raise AssertionError("unresolved argument: %s" % m.group(0))
        checked += 1
assert checked > 2000 and resolved > 1000, (checked, resolved)
print("suture-dis matches dis: %d code objects, %d instructions, %d resolved arguments"
      % (len(codes), checked, resolved))
PY

# --crash: the guard engine's explanation through suture-dis.
cat >"$work/crash.py" <<'PY'
def f(cfg):
    t = cfg["timeout"]
    return t * 2
PY
"$PYTHON" "$SUTURE_ROOT/tests/fixtures/codedump.py" "$work/crash.dump" "$work/crash.py" 2>/dev/null
# BINARY_SUBSCR is at byte 6 = unit 3 (RESUME, LOAD_FAST, LOAD_CONST before it)
"$dis" -q f --crash "3:KeyError:'timeout'" "$work/crash.dump" >"$work/crash.out"
cat "$work/crash.out"
grep -q '^guard: key_guard' "$work/crash.out"
grep -q '^diff gate: accepted' "$work/crash.out"
grep -q 'BINARY_SUBSCR' "$work/crash.out"
if "$dis" -q f --crash 3 "$work/crash.dump" 2>/dev/null; then
	fail "a malformed --crash spec was accepted"
fi
echo "suture-dis --crash: ok"
