/* libFuzzer harness for the guard engine (rewrite/guard.h): crash analysis,
 * synthesis, the diff gate and the fidelity probe on arbitrary co_code.
 * Input: one flags byte (bit 0: generator code), one crash selector byte,
 * then co_code. The analysis must never fail on code that decodes and
 * analyses, and every guard it decides must synthesize and pass the diff
 * gate; the probe must always pass the gate. Seeds are real code objects
 * (tests/fixtures/guards/unit_cases.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/guard.h"

static const struct {
	const char *type, *msg;
} crashes[] = {
	{ "AttributeError", "'NoneType' object has no attribute 'x'" },
	{ "KeyError", "'k'" },
	{ "IndexError", "list index out of range" },
	{ "TypeError", "'NoneType' object is not subscriptable" },
	{ "TypeError", "'NoneType' object is not callable" },
	{ "ValueError", "invalid literal for int() with base 10: 'x'" },
	{ "ZeroDivisionError", "division by zero" },
	{ "TypeError", "can only concatenate str (not \"int\") to str" },
	{ "FileNotFoundError", "[Errno 2] No such file or directory: 'x'" },
};

#define NTAB 256
static const char *names[NTAB];
static const char *locals[NTAB];
static uint8_t kinds[NTAB];
static struct rewrite_const consts[NTAB];

static void init_tables(void)
{
	static const char *const builtin[] = { "int", "float", "open", "x", "y", "name" };
	for (int i = 0; i < NTAB; i++) {
		names[i] = builtin[i % 6];
		locals[i] = i % 2 ? "a" : "b";
		kinds[i] = 0x20;
		consts[i] = (struct rewrite_const){ "str", "'k'" };
	}
}

#include <stdio.h>

/* A property failed: say which, then crash so libFuzzer keeps the input. */
static void must(int cond, const char *what, const struct rewrite_diag *diag)
{
	if (cond)
		return;
	fprintf(stderr, "fuzz_rewrite_guard: %s failed: %s\n", what, diag ? diag->msg : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	if (!names[0])
		init_tables();
	struct rewrite_code_info info = {
		.code = data + 2,
		.code_len = (size - 2) & ~(size_t)1,
		.flags = data[0] & 1 ? 0x20 : 0x03,
		.stacksize = 64,
		.firstlineno = 1,
		.filename = "fuzz.py",
		.name = "f",
		.qualname = "f",
		.nnames = NTAB,
		.names = names,
		.nlocalsplus = NTAB,
		.nlocals = NTAB,
		.localsplusnames = locals,
		.localspluskinds = kinds,
		.nconsts = NTAB,
		.consts = consts,
	};
	struct rewrite_code *c = NULL;
	int maxd;
	if (rewrite_code__decode(&info, &c, NULL) < 0)
		return 0;
	if (rewrite_code__analyse(c, &maxd, NULL) < 0) {
		rewrite_code__free(c);
		return 0;
	}
	/* The model needs a location table covering the code to verify:
	 * give it one from its own encoder. */
	struct rewrite_bytes lt = { 0 };
	if (rewrite_code__encode(c, NULL, NULL, &lt, NULL) < 0) {
		rewrite_code__free(c);
		return 0;
	}
	info.linetable = lt.data;
	info.linetable_len = lt.len;
	info.stacksize = maxd;
	size_t n = rewrite_code__ninstrs(c);
	const struct rewrite_instr *in = rewrite_code__instrs(c);
	size_t x = data[1] % (sizeof(crashes) / sizeof(crashes[0]));
	for (size_t k = 0; k < n; k++) {
		struct guard_crash cr = { .unit = in[k].offset,
					  .exc_type = crashes[x].type,
					  .message = crashes[x].msg,
					  .stdlib = 0 };
		struct guard_decision d;
		struct rewrite_diag diag = { 0 };
		must(guard__analyse(&info, &cr, &d, &diag) == 0, "analyse", &diag);
		if (d.kind == GUARD_NONE)
			continue;
		struct guard_patch p;
		struct rewrite_code_info pi;
		struct rewrite_const *pc = NULL;
		must(guard__synthesize(&info, &d, &p, &diag) == 0, "synthesize", &diag);
		must(guard_patch__info(&info, &p, &pi, &pc) == 0, "patch info", NULL);
		must(guard_diffgate__check(&info, &pi, NULL, &diag) == 0, "diff gate", &diag);
		free(pc);
		guard_patch__release(&p);
	}
	struct guard_patch p;
	struct rewrite_diag diag = { 0 };
	if (guard__synthesize_probe(&info, &p, &diag) == 0) {
		struct rewrite_code_info pi;
		struct rewrite_const *pc = NULL;
		must(guard_patch__info(&info, &p, &pi, &pc) == 0, "probe info", NULL);
		must(guard_diffgate__check(&info, &pi, NULL, &diag) == 0, "probe gate", &diag);
		free(pc);
		guard_patch__release(&p);
	}
	rewrite_bytes__free(&lt);
	rewrite_code__free(c);
	return 0;
}
