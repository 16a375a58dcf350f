# suture: an external debugger that heals crashing CPython 3.11 programs.
#
#   make demo      install what building needs, build, run suture on an example crash
#   make test      install dependencies, build, run every test
#   make           build only (build/bin, build/lib)
#   make install   PREFIX=/usr/local DESTDIR=
#
# Layout: every module (attach inspect rewrite store wire inject probe heal) is a static
# library built from <module>/*.c; a module may add rules of its own in
# <module>/module.mk (generators, extra flags). cli/suture-*.c are the
# commands. tests/unit/test_<module>_*.c are Criterion binaries linked
# against <module> and the modules it depends on; tests/tests.mk builds the
# drivers the end-to-end scripts and benchmarks run. BUILD may be set to keep
# several build trees apart (BUILD=build-x).

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
PYTHON   ?= /usr/bin/python3.11
PYCONFIG ?= /usr/bin/python3.11-config
CLANG    ?= clang

PY_INC   := $(shell $(PYCONFIG) --includes 2>/dev/null)
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror
BASE_CFLAGS = -std=c11 $(WARN) -D_GNU_SOURCE -I. -I$(BUILD)/gen $(PY_INC)
ALL_CFLAGS  = $(BASE_CFLAGS) $(CFLAGS) -MMD -MP

MODULES := attach inspect rewrite store wire inject probe heal

# Link order: a module's library is followed by the libraries it uses.
LIBDEPS_attach  :=
LIBDEPS_inspect := rewrite attach
LIBDEPS_rewrite :=
LIBDEPS_store   := rewrite
LIBDEPS_wire    :=
LIBDEPS_inject  := wire attach
LIBDEPS_probe   :=
LIBDEPS_heal    := inject wire store inspect rewrite attach probe
# (inspect uses rewrite's location table; store validates kinds, placements
# and consumers against rewrite/guards.c, pure data: only that member is pulled)
SYSLIBS_attach  := -lelf
SYSLIBS_inspect := -lelf
SYSLIBS_rewrite :=
SYSLIBS_store   := -lcjson
SYSLIBS_wire    :=
SYSLIBS_inject  :=
SYSLIBS_probe   := -lm
SYSLIBS_heal    :=

lib_of   = $(BUILD)/lib/libsuture_$(1).a
libs_for = $(foreach m,$(1) $(LIBDEPS_$(1)),$(call lib_of,$(m)))
sys_for  = $(sort $(foreach m,$(1) $(LIBDEPS_$(1)),$(SYSLIBS_$(m))))

SRC_attach  := $(wildcard attach/*.c)
SRC_inspect := $(wildcard inspect/*.c)
SRC_rewrite := $(wildcard rewrite/*.c)
SRC_store   := $(wildcard store/*.c)
SRC_wire    := $(wildcard wire/*.c)
SRC_inject  := $(wildcard inject/*.c)
SRC_probe   := $(wildcard probe/*.c)
SRC_heal    := $(wildcard heal/*.c)
obj_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# Generated C sources (under $(BUILD)/gen) a module.mk may add to its module.
GEN_SRC_attach  :=
GEN_SRC_inspect :=
GEN_SRC_rewrite :=
GEN_SRC_store   :=
GEN_SRC_wire    :=
GEN_SRC_inject  :=
GEN_SRC_probe   :=
GEN_SRC_heal    :=
# Generated headers every compile must wait for.
GEN_HDRS :=
# The install prefix compiled into the commands (where inject/remote.c
# looks for the agent after the places relative to the executable's real
# path): rewritten only when PREFIX changes, so `make install PREFIX=/usr`
# after a plain `make` recompiles that one file and relinks. DESTDIR is
# never compiled in.
PREFIX_H := $(BUILD)/gen/suture-prefix.h

AGENT_SRC := $(wildcard agent/*.c)
# Sources of other modules compiled into the agent as well (pure decoders
# the agent needs in-process, e.g. the exception table); set in module.mk.
AGENT_EXTRA_SRC :=
AGENT     := $(BUILD)/lib/libsuture_agent.so

CLI_SRC  := $(wildcard cli/suture-*.c)
CLI_BIN  := $(patsubst cli/%.c,$(BUILD)/bin/%,$(CLI_SRC))
# Each command links every module (unused archive members are not pulled
# in), unless LINK_<command> lists its own, in link order.
CLI_MODS := heal inject wire store inspect rewrite attach probe
# suture-audit reads the store and explains with rewrite/; --pid talks to the
# agent through inject/. Not the pipeline (heal/) nor inspect/.
LINK_suture-audit := store inject wire rewrite attach
cli_mods = $(if $(LINK_$(1)),$(LINK_$(1)),$(CLI_MODS))
cli_libs = $(foreach m,$(call cli_mods,$(1)),$(call lib_of,$(m)))
cli_sys  = $(sort $(foreach m,$(call cli_mods,$(1)),$(SYSLIBS_$(m)))) -lm

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

.SECONDEXPANSION:
.PHONY: all deps demo test check install clean unit fuzz bench mutate fidelity format format-check $(MODULES)
all: $(CLI_BIN) $(AGENT)

-include $(wildcard */module.mk)

$(PREFIX_H): FORCE
	@mkdir -p $(@D)
	@printf '#define SUTURE_PREFIX "%s"\n' '$(PREFIX)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
FORCE:
$(BUILD)/obj/inject/remote.o: $(PREFIX_H)
# The test drivers and benchmark programs (tests/tests.mk).
include tests/tests.mk

define module_rules
$(1): $(call lib_of,$(1))
$(call lib_of,$(1)): $(call obj_of,$(SRC_$(1)) $(GEN_SRC_$(1)))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

$(BUILD)/obj/%.o: %.c $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The agent runs inside the target interpreter: position independent, only
# its entry points visible, Python symbols resolved from the target itself.
$(BUILD)/obj/agent/%.o: agent/%.c $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@
$(BUILD)/obj/agent-extra/%.o: %.c $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@
$(AGENT): $(patsubst agent/%.c,$(BUILD)/obj/agent/%.o,$(AGENT_SRC)) \
	  $$(patsubst %.c,$(BUILD)/obj/agent-extra/%.o,$$(AGENT_EXTRA_SRC))
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $^ -lpthread -ldl

$(BUILD)/bin/%: cli/%.c $$(call cli_libs,$$*) $$(GEN_HDRS)
	@mkdir -p $(@D) $(BUILD)/obj/cli
	$(CC) $(ALL_CFLAGS) -MF $(BUILD)/obj/cli/$*.d -o $@ $< $(call cli_libs,$*) $(call cli_sys,$*)

# tests/unit/test_<module>_<thing>.c links <module> and its dependencies.
unit_mod = $(word 2,$(subst _, ,$(notdir $(1))))
$(BUILD)/tests/unit/%: tests/unit/%.c $$(call libs_for,$$(call unit_mod,$$*)) $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(call libs_for,$(call unit_mod,$*)) \
		$(call sys_for,$(call unit_mod,$*)) -lcriterion -lm

unit: $(UNIT_BIN)

# tests/fuzz/fuzz_<module>_<thing>.c: libFuzzer harnesses, built with clang
# over the module's sources instrumented for coverage.
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  = $(BASE_CFLAGS) -O1 -g $(FUZZ_SAN)
fuzz_objs = $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(foreach m,$(1) $(LIBDEPS_$(1)),$(SRC_$(m)) $(GEN_SRC_$(m))))
$(BUILD)/fuzzobj/%.o: %.c $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(call fuzz_objs,$$(call unit_mod,$$*)) $$(GEN_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(call fuzz_objs,$(call unit_mod,$*)) $(call sys_for,$(call unit_mod,$*)) -lm
fuzz: $(FUZZ_BIN)

deps:
	@sh tools/deps.sh

# `make test` works on a fresh machine: dependencies, build, every test.
test: deps
	$(MAKE) all unit fuzz
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run.sh $(T)

# Tests only, assuming dependencies and a build are present.
check: all unit fuzz
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run.sh $(T)

# The whole-library fidelity sweep (tools/fidelity.sh, docs/fidelity.md).
fidelity: deps all unit
	BUILD=$(BUILD) PYTHON=$(PYTHON) GUARDS="$(GUARDS)" RUNTIME="$(RUNTIME)" sh tools/fidelity.sh

# Plant known bugs one at a time; every one must fail a test (tools/mutate.sh).
mutate: deps
	sh tools/mutate.sh

# The demo installs only what building and running needs (tools/deps.sh build).
demo:
	@sh tools/deps.sh build
	$(MAKE) all
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tools/demo.sh

# Benchmarks print figures; they never fail on a number. See docs/performance.md.
bench: all
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/bench/run.sh $(B)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/suture \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(CLI_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(AGENT) $(DESTDIR)$(PREFIX)/lib/suture/
	for m in docs/man/*.1; do [ -e "$$m" ] && install -m 644 "$$m" \
		$(DESTDIR)$(PREFIX)/share/man/man1/ || true; done
	install -d $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 644 docs/man/suture.7 $(DESTDIR)$(PREFIX)/share/man/man7/

# The house style is .clang-format (Debian's clang-format 14, installed by
# `make deps`). `make format` rewrites the tracked C sources in place;
# `make format-check` changes nothing and fails, naming the files, when
# any of them would change.
CLANG_FORMAT ?= clang-format
FORMAT_SRC    = $(shell git ls-files -- '*.c' '*.h' 2>/dev/null)
format:
	@$(CLANG_FORMAT) -i --style=file $(FORMAT_SRC)
format-check:
	@$(CLANG_FORMAT) --dry-run -Werror --style=file $(FORMAT_SRC)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
