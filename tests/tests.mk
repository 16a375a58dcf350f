# tests/: build rules of the test drivers and benchmark programs, included
# by the Makefile after every <module>/module.mk. Unit tests and fuzz
# harnesses follow the Makefile's pattern rules; these are the programs the
# end-to-end scripts and benchmarks run. Their built paths are what the
# scripts name ($BUILD/tests/...), so they stay put.

# Remote calls in a live interpreter (tests/e2e/test_attach_call.sh).
ATTACH_E2E := $(BUILD)/tests/e2e/attach_call
all: $(ATTACH_E2E)
$(ATTACH_E2E): tests/e2e/attach_call.c $(call lib_of,attach)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,attach) -lelf

# A thread whose general registers are checked across remote calls
# (tests/e2e/test_attach_regs.sh).
REGS_TARGET := $(BUILD)/tests/e2e/regs_target
all: $(REGS_TARGET)
$(REGS_TARGET): tests/fixtures/attach/regs_target.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -pthread -o $@ $<

# A binary that exports CPython's symbols and lies (tests/e2e/
# test_attach_errors.sh): -rdynamic puts them in .dynsym, where inspect/ looks.
FAKE_PYTHON := $(BUILD)/tests/e2e/fake_python
all: $(FAKE_PYTHON)
$(FAKE_PYTHON): tests/fixtures/attach_errors/fake_python.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -rdynamic -o $@ $<

# An "agent" whose target exits while it is loaded (test_attach_errors.sh).
EXIT_ON_LOAD := $(BUILD)/tests/e2e/exit_on_load.so
all: $(EXIT_ON_LOAD)
$(EXIT_ON_LOAD): tests/fixtures/attach_errors/exit_on_load.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -fPIC -o $@ $< -lpthread

# The client of the agent's channel (tests/e2e/test_agent*.sh and
# test_watch*.sh); those scripts need the agent too. Built with the unit
# tests, which make check/test build.
INJECT_CLIENT := $(BUILD)/tests/e2e/test_agent_client
$(INJECT_CLIENT): tests/e2e/test_agent_client.c $(call libs_for,heal)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call libs_for,heal) $(call sys_for,heal)
unit: $(INJECT_CLIENT) $(AGENT)

# The round-trip checker (tests/e2e/test_roundtrip.sh).
RW_ROUNDTRIP := $(BUILD)/tests/e2e/test_roundtrip_check
$(RW_ROUNDTRIP): tests/e2e/test_roundtrip_check.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
unit: $(RW_ROUNDTRIP)

# The bridge between Python test programs and the guard engine
# (tests/e2e/test_guards.sh, test_fidelity.sh, test_guards_sweep.sh).
RW_GUARDS_TOOL := $(BUILD)/tests/e2e/test_guards_tool
$(RW_GUARDS_TOOL): tests/e2e/test_guards_tool.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
unit: $(RW_GUARDS_TOOL)

# The rewrite throughput benchmark (tests/bench/bench_rewrite.sh).
RW_BENCH := $(BUILD)/tests/bench/bench_rewrite
$(RW_BENCH): tests/bench/bench_rewrite.c $(call lib_of,rewrite)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,rewrite)
bench: $(RW_BENCH)

# Writes stores the way suture-run does (tests/e2e/test_audit.sh,
# test_store_concurrent.sh, tests/bench/bench_store.sh).
STORE_TOOL := $(BUILD)/tests/store-tool
all: $(STORE_TOOL)
$(STORE_TOOL): tests/tools/store-tool.c $(call libs_for,store) $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call libs_for,store) $(call sys_for,store)
# store-tool.c lived in store/tool/ until it moved here: a build tree's
# dependency file from then still names that path. This empty rule lets such
# a tree rebuild once, which rewrites the dependency file.
store/tool/store-tool.c: ;
