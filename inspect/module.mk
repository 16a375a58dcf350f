# inspect/: the build-time layout table. A probe compiled with -g against
# the installed python3.11 headers is read by gen_probe (built from the
# same DWARF code the tool uses at run time), which writes
# $(BUILD)/gen/inspect_probe_table.c into the inspect library.
INSPECT_PROBE_EXE := $(BUILD)/gen/inspect-probe
INSPECT_GEN_EXE   := $(BUILD)/gen/inspect-gen-probe
INSPECT_PROBE_SRC := $(BUILD)/gen/inspect_probe_table.c

$(INSPECT_PROBE_EXE): inspect/probe/probe.c
	@mkdir -p $(@D)
	$(CC) -g -O0 -fno-eliminate-unused-debug-types $(PY_INC) -o $@ $<

$(INSPECT_GEN_EXE): inspect/tools/gen_probe.c inspect/dwarf.c inspect/offsets.c inspect/offsets.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -O1 -o $@ inspect/tools/gen_probe.c inspect/dwarf.c \
		inspect/offsets.c -ldwarf -lelf

$(INSPECT_PROBE_SRC): $(INSPECT_GEN_EXE) $(INSPECT_PROBE_EXE)
	$(INSPECT_GEN_EXE) $(INSPECT_PROBE_EXE) $@.tmp && mv $@.tmp $@

GEN_SRC_inspect += $(INSPECT_PROBE_SRC)

