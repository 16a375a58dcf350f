# agent/: libsuture_agent.so, loaded into the target. It compiles in the
# channel's wire code and the boot image's decoder (wire/), which the
# debugger side shares, rewrite's
# allocation-free codecs (exception table, location table, one instruction:
# the same checked code rewrite/ builds with, fuzzed by
# tests/fuzz/fuzz_rewrite_*) and attach/'s /proc/PID/maps line parser. Each
# of these files needs nothing but its module's public header and libc.
AGENT_EXTRA_SRC += wire/msg.c wire/channel.c wire/image.c rewrite/exctable.c rewrite/linetable.c \
	rewrite/instr.c attach/maps.c probe/parse.c

# The agent is loaded with LD_PRELOAD by suture-run, so it also lands in
# processes that are not Python (`#!/usr/bin/env python3`: env runs first).
# Data symbols and function addresses are bound when a library loads, so
# every Python symbol it may use (exception types, type objects, singletons,
# PyTraceBack_Here whose address the watcher takes) is made weak: in a
# process without them the library still loads, sees that Python is absent
# and stays inert (nothing of Python is called there). The list comes from
# the interpreter's own exports.
AGENT_PYWEAK := $(BUILD)/gen/agent_pyweak.h
$(AGENT_PYWEAK):
	@mkdir -p $(@D)
	nm -D --defined-only $(PYTHON) | awk '$$2 ~ /^[TDBRVW]$$/ && $$3 ~ /^_?Py/ \
		{ sub(/@.*/, "", $$3); print "#pragma weak " $$3 }' | sort -u >$@.tmp
	test -s $@.tmp && mv $@.tmp $@
GEN_HDRS += $(AGENT_PYWEAK)
$(BUILD)/obj/agent/%.o: override CFLAGS += -include $(AGENT_PYWEAK)
