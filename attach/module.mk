# attach/: extra build rules.
# The end-to-end driver for remote calls (tests/e2e/test_attach_call.sh runs it).
ATTACH_E2E := $(BUILD)/tests/e2e/attach_call
all: $(ATTACH_E2E)
$(ATTACH_E2E): tests/e2e/attach_call.c $(call lib_of,attach)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call lib_of,attach) -lelf
