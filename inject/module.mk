# inject/: the debugger side (libsuture_inject.a) and the agent
# (libsuture_agent.so). The agent compiles in the channel's wire code, which
# the debugger side shares, and rewrite-core's allocation-free exception
# table lookup.
AGENT_EXTRA_SRC += inject/msg.c inject/channel.c rewrite/exctable.c

# The test driver of tests/e2e/test_agent*.sh and test_watch*.sh (built with
# the unit tests, which make check/test build).
INJECT_CLIENT := $(BUILD)/tests/e2e/test_agent_client
$(INJECT_CLIENT): tests/e2e/test_agent_client.c $(call libs_for,inject)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call libs_for,inject) $(call sys_for,inject)
unit: $(INJECT_CLIENT) $(AGENT)
