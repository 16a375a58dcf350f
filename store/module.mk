# store/: the test and benchmark driver that writes stores the way
# suture-run will (tests/e2e/test_audit.sh, tests/bench/bench_store.sh).
STORE_TOOL := $(BUILD)/tests/store-tool
all: $(STORE_TOOL)
$(STORE_TOOL): store/tool/store-tool.c $(call libs_for,store) $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call libs_for,store) $(call sys_for,store)
-include $(wildcard $(BUILD)/tests/store-tool.d)
