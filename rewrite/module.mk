# rewrite/: the opcode table is generated at build time from the installed
# CPython 3.11 (headers, the embedded interpreter's opcode module, libpython's
# stack_effect); see rewrite/gen/gen_opcodes.c and rewrite/opcodes.h.
PYEMBED_LDFLAGS := $(shell $(PYCONFIG) --embed --ldflags 2>/dev/null)

$(BUILD)/gen/gen_opcodes: rewrite/gen/gen_opcodes.c rewrite/opcodes.h rewrite/rewrite.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -O1 -o $@ $< $(PYEMBED_LDFLAGS)

$(BUILD)/gen/rewrite_opcodes.c: $(BUILD)/gen/gen_opcodes
	$< $@.tmp && mv $@.tmp $@

GEN_SRC_rewrite += $(BUILD)/gen/rewrite_opcodes.c

# The round-trip checker run by tests/e2e/test_roundtrip.sh (built with
# the unit tests, since make check/test build those).
RW_ROUNDTRIP := $(BUILD)/tests/e2e/test_roundtrip_check
$(RW_ROUNDTRIP): tests/e2e/test_roundtrip_check.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
unit: $(RW_ROUNDTRIP)

# rewrite-guards: the bridge between Python test programs and the guard
# engine (tests/e2e/test_guards.sh, test_fidelity.sh), built with the unit
# tests like the round-trip checker.
RW_GUARDS_TOOL := $(BUILD)/tests/e2e/test_guards_tool
$(RW_GUARDS_TOOL): tests/e2e/test_guards_tool.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
unit: $(RW_GUARDS_TOOL)

# rewrite-core: throughput benchmark program used by tests/bench/bench_rewrite.sh.
RW_BENCH := $(BUILD)/tests/bench/bench_rewrite
$(RW_BENCH): tests/bench/bench_rewrite.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
bench: $(RW_BENCH)
