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
