/* The bridge between Python test programs and the guard engine: reads a
 * codedump (tests/fixtures/codedump.py), runs the analysis, synthesis and
 * diff gate (rewrite/guard.h), and prints JSON the tests turn into code
 * objects with code.replace(). Test-only; built by rewrite/module.mk.
 *
 *   test_guards_tool heal DUMP INDEX UNIT EXCTYPE MESSAGE [callee|stdlib|quickened]
 *     (quickened: analyse the dumped co_code_adaptive instead of co_code)
 *   test_guards_tool dis DUMP INDEX UNIT EXCTYPE MESSAGE
 *   test_guards_tool probe DUMP        one JSON line per code object
 *   test_guards_tool identity DUMP     one JSON line per code object
 *   test_guards_tool bench DUMP        figures: probe patches and gate checks
 *     per second, and the cost of one analyse+synthesize+gate of a real guard
 *   test_guards_tool sweep DUMP        every instruction of every code object
 *     crashed with each structural exception: every decided guard must
 *     synthesize and pass the diff gate; prints counts per kind
 *   test_guards_tool guards DUMP KIND  one JSON line per code object: the
 *     code with a real guard of KIND at every site of it the analyser
 *     accepts (each instruction crashed with KIND's exceptions; guards
 *     stacked one on the other, each made from the code the previous ones
 *     left), the appended constants of all of them in order; "sites" 0
 *     when none; "stacked" the accepted sites whose guard could not be
 *     made on top of the others (left out, counted)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rewrite/guard.h"

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_hex(const uint8_t *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	putchar('"');
}

static void print_patch(const struct guard_patch *p)
{
	printf("\"code\":");
	json_hex(p->code.data, p->code.len);
	printf(",\"exctable\":");
	json_hex(p->exctable.data, p->exctable.len);
	printf(",\"linetable\":");
	json_hex(p->linetable.data, p->linetable.len);
	printf(",\"stacksize\":%d,\"nconsts_before\":%zu,\"orig_units\":%u,\"block_unit\":%u,"
	       "\"fallback_unit\":%u,\"resume_unit\":%u,\"base_depth\":%d,\"replaced_unit\":%lld,"
	       "\"consts\":[",
	       p->stacksize, p->nconsts_before, p->orig_units, p->block_unit, p->fallback_unit,
	       p->resume_unit, p->base_depth, (long long)p->replaced_unit);
	for (size_t i = 0; i < p->nconsts; i++) {
		const struct guard_const *c = &p->consts[i];
		printf("%s{\"kind\":\"%s\",\"i\":%lld,\"f\":%g,\"names\":[", i ? "," : "",
		       guard_const_kind__name(c->kind), (long long)c->i, c->f);
		for (size_t k = 0; k < c->nnames; k++) {
			if (k)
				putchar(',');
			json_str(c->names[k]);
		}
		printf("]}");
	}
	printf("]");
}

/* Run the diff gate on a patch; prints "gate" and "delta" fields. */
static int gate(const struct rewrite_code_info *info, const struct guard_patch *p)
{
	struct rewrite_code_info pi;
	struct rewrite_const *pc = NULL;
	struct rewrite_diag diag = { 0 };
	struct guard_delta dl;
	int err = guard_patch__info(info, p, &pi, &pc);
	if (err == 0)
		err = guard_diffgate__check(info, &pi, &dl, &diag);
	free(pc);
	printf(",\"gate\":");
	json_str(err ? diag.msg : "ok");
	if (!err) {
		char buf[256];
		guard_delta__format(&dl, buf, sizeof(buf));
		printf(",\"delta\":");
		json_str(buf);
	}
	return err;
}

static int cmd_heal(const struct rewrite_dump *dump, int argc, char **argv, bool dis)
{
	size_t idx = strtoul(argv[3], NULL, 10);
	if (idx >= rewrite_dump__count(dump)) {
		fprintf(stderr, "test_guards_tool: no code object %zu\n", idx);
		return 2;
	}
	const struct rewrite_dump_entry *ent = rewrite_dump__entry(dump, idx);
	struct rewrite_code_info qinfo = ent->info;
	const struct rewrite_code_info *info = &ent->info;
	if (argc > 7 && strcmp(argv[7], "quickened") == 0) {
		if (!ent->adaptive) {
			fprintf(stderr, "test_guards_tool: code object %zu was not quickened\n",
				idx);
			return 2;
		}
		qinfo.code = ent->adaptive;
		qinfo.code_len = ent->adaptive_len;
		info = &qinfo;
	}
	struct guard_crash crash = {
		.unit = (uint32_t)strtoul(argv[4], NULL, 10),
		.exc_type = argv[5],
		.message = argv[6],
		.in_callee = argc > 7 && strcmp(argv[7], "callee") == 0,
		.stdlib = argc > 7 && strcmp(argv[7], "stdlib") == 0 ? 1 : -1,
	};
	struct guard_decision d;
	struct rewrite_diag diag = { 0 };
	int err = guard__analyse(info, &crash, &d, &diag);
	if (err < 0) {
		fprintf(stderr, "test_guards_tool: %s\n", diag.msg);
		return 1;
	}
	struct guard_patch p = { 0 };
	if (d.kind != GUARD_NONE) {
		err = guard__synthesize(info, &d, &p, &diag);
		if (err < 0) {
			fprintf(stderr, "test_guards_tool: synthesize: %s\n", diag.msg);
			return 1;
		}
	}
	if (dis) {
		guard_patch__release(&p);
		return guard__explain(info, &crash, 4, stdout) ? 1 : 0;
	}
	printf("{\"kind\":\"%s\",\"refusal\":\"%s\",\"reason\":", guard_kind__name(d.kind),
	       guard_refusal__name(d.refusal));
	json_str(d.reason);
	printf(",\"target\":");
	json_str(d.target);
	printf(",\"subject\":");
	json_str(d.subject);
	printf(",\"fallback\":");
	json_str(d.fallback_text);
	printf(",\"placement\":\"%s\",\"consumer\":", guard_placement__name(d.placement));
	json_str(d.consumer);
	uint64_t id = 0;
	if (guard_code__identity(info, &id) < 0) {
		fprintf(stderr, "test_guards_tool: no code identity\n");
		return 1;
	}
	printf(",\"anchor_unit\":%u,\"fingerprint\":\"%016llx\",\"code_id\":\"%016llx\"",
	       d.anchor_unit, (unsigned long long)d.fingerprint, (unsigned long long)id);
	int rc = 0;
	if (d.kind != GUARD_NONE) {
		printf(",\"patch\":{");
		print_patch(&p);
		printf("}");
		rc = gate(info, &p) ? 1 : 0;
	}
	printf("}\n");
	guard_patch__release(&p);
	return rc;
}

static int cmd_all(const struct rewrite_dump *dump, bool probe)
{
	size_t n = rewrite_dump__count(dump), failed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, i)->info;
		struct rewrite_diag diag = { 0 };
		printf("{\"index\":%zu,\"qualname\":", i);
		json_str(info->qualname);
		if (probe) {
			struct guard_patch p;
			int err = guard__synthesize_probe(info, &p, &diag);
			if (err == 0) {
				printf(",");
				print_patch(&p);
				if (gate(info, &p))
					failed++;
			} else {
				printf(",\"error\":");
				json_str(diag.msg);
				failed++;
			}
			guard_patch__release(&p);
		} else {
			struct rewrite_code *c = NULL;
			struct rewrite_bytes bc = { 0 }, be = { 0 }, bl = { 0 };
			int err = rewrite_code__decode(info, &c, &diag);
			if (err == 0)
				err = rewrite_code__encode(c, &bc, &be, &bl, &diag);
			if (err == 0) {
				printf(",\"code\":");
				json_hex(bc.data, bc.len);
				printf(",\"exctable\":");
				json_hex(be.data, be.len);
				printf(",\"linetable\":");
				json_hex(bl.data, bl.len);
				printf(",\"stacksize\":%d,\"consts\":[],\"nconsts_before\":%zu",
				       info->stacksize, info->nconsts);
			} else {
				printf(",\"error\":");
				json_str(diag.msg);
				failed++;
			}
			rewrite_bytes__free(&bc);
			rewrite_bytes__free(&be);
			rewrite_bytes__free(&bl);
			rewrite_code__free(c);
		}
		printf("}\n");
	}
	return failed ? 1 : 0;
}

static int cmd_sweep(const struct rewrite_dump *dump)
{
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
	size_t per_kind[GUARD_KIND_COUNT] = { 0 }, refused = 0, placement = 0, tried = 0,
	       failed = 0;
	for (size_t i = 0; i < rewrite_dump__count(dump); i++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, i)->info;
		struct rewrite_code *c = NULL;
		if (rewrite_code__decode(info, &c, NULL) < 0) {
			failed++;
			continue;
		}
		size_t n = rewrite_code__ninstrs(c);
		const struct rewrite_instr *in = rewrite_code__instrs(c);
		for (size_t k = 0; k < n; k++) {
			uint32_t unit = in[k].offset;
			for (size_t x = 0; x < sizeof(crashes) / sizeof(crashes[0]); x++) {
				struct guard_crash cr = { .unit = unit,
							  .exc_type = crashes[x].type,
							  .message = crashes[x].msg,
							  .stdlib = 0 };
				struct guard_decision d;
				struct rewrite_diag diag = { 0 };
				tried++;
				if (guard__analyse(info, &cr, &d, &diag) < 0) {
					if (failed++ < 5)
						fprintf(stderr, "analyse: %s\n", diag.msg);
					continue;
				}
				if (d.kind == GUARD_NONE) {
					refused++;
					placement += d.refusal == GUARD_REFUSE_PLACEMENT;
					if (d.refusal == GUARD_REFUSE_PLACEMENT &&
					    getenv("SWEEP_VERBOSE"))
						fprintf(stderr, "placement: %s unit %u %s %s\n",
							info->qualname ? info->qualname : "?", unit,
							crashes[x].type, d.target);
					continue;
				}
				struct guard_patch p;
				struct rewrite_code_info pi;
				struct rewrite_const *pc = NULL;
				int err = guard__synthesize(info, &d, &p, &diag);
				if (err == 0) {
					err = guard_patch__info(info, &p, &pi, &pc);
					if (err == 0)
						err = guard_diffgate__check(info, &pi, NULL, &diag);
					free(pc);
					guard_patch__release(&p);
				}
				if (err < 0) {
					if (failed++ < 5)
						fprintf(stderr, "%s at unit %u of %s: %s\n",
							guard_kind__name(d.kind), unit,
							info->qualname ? info->qualname : "?",
							diag.msg);
					continue;
				}
				per_kind[d.kind]++;
			}
		}
		rewrite_code__free(c);
	}
	printf("sweep: %zu crashes analysed, %zu refused (%zu for placement), %zu failures\n",
	       tried, refused, placement, failed);
	for (int k = 1; k < GUARD_KIND_COUNT; k++)
		if (per_kind[k])
			printf("sweep: %s: %zu patches accepted by the diff gate\n",
			       guard_kind__name((enum guard_kind)k), per_kind[k]);
	return failed ? 1 : 0;
}

/* The structural exceptions of each kind (those cmd_sweep crashes with). */
static const struct {
	enum guard_kind kind;
	const char *type, *msg;
} kind_crashes[] = {
	{ GUARD_NULL, "AttributeError", "'NoneType' object has no attribute 'x'" },
	{ GUARD_KEY, "KeyError", "'k'" },
	{ GUARD_INDEX, "IndexError", "list index out of range" },
	{ GUARD_SUBSCRIPT, "TypeError", "'NoneType' object is not subscriptable" },
	{ GUARD_CHAIN_SUBSCRIPT, "KeyError", "'k'" },
	{ GUARD_CHAIN_SUBSCRIPT, "IndexError", "list index out of range" },
	{ GUARD_CHAIN_SUBSCRIPT, "TypeError", "'NoneType' object is not subscriptable" },
	{ GUARD_CALLABLE, "TypeError", "'NoneType' object is not callable" },
	{ GUARD_TYPE_COERCION, "ValueError", "invalid literal for int() with base 10: 'x'" },
	{ GUARD_DIVISION, "ZeroDivisionError", "division by zero" },
	{ GUARD_STR_COERCE, "TypeError", "can only concatenate str (not \"int\") to str" },
	{ GUARD_FILE, "FileNotFoundError", "[Errno 2] No such file or directory: 'x'" },
};

#define MAX_STACKED 4096

/* Whether op can be a site of kind (the guards.md triggers): the analyser
 * decodes the whole code object at each call, so only these are asked. */
static bool kind_site(enum guard_kind kind, const char *op)
{
	static const char *const attr[] = { "LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR",
					    NULL };
	static const char *const subscr[] = { "BINARY_SUBSCR", "STORE_SUBSCR", "DELETE_SUBSCR",
					      NULL };
	static const char *const call[] = { "CALL", NULL };
	static const char *const binop[] = { "BINARY_OP", NULL };
	const char *const *ops = NULL;
	switch (kind) {
	case GUARD_NULL:
		ops = attr;
		break;
	case GUARD_INDEX:
	case GUARD_KEY:
	case GUARD_SUBSCRIPT:
	case GUARD_CHAIN_SUBSCRIPT:
		ops = subscr;
		break;
	case GUARD_TYPE_COERCION:
	case GUARD_FILE:
	case GUARD_CALLABLE:
		ops = call;
		break;
	case GUARD_DIVISION:
	case GUARD_STR_COERCE:
		ops = binop;
		break;
	default:
		return false;
	}
	for (; *ops; ops++)
		if (strcmp(*ops, op) == 0)
			return true;
	return false;
}

static int cmd_guards(const struct rewrite_dump *dump, enum guard_kind kind)
{
	static struct guard_patch patches[MAX_STACKED];
	static struct rewrite_const *pcs[MAX_STACKED];
	size_t total_sites = 0, total_stacked = 0, failed = 0;
	for (size_t i = 0; i < rewrite_dump__count(dump); i++) {
		const struct rewrite_code_info *orig = &rewrite_dump__entry(dump, i)->info;
		struct rewrite_code_info cur = *orig, next;
		struct rewrite_code *c = NULL;
		struct rewrite_diag diag = { 0 };
		size_t np = 0, stacked = 0;
		char gate_buf[512];
		const char *gate_msg = NULL;
		if (rewrite_code__decode(orig, &c, &diag) < 0) {
			printf("{\"index\":%zu,\"error\":", i);
			json_str(diag.msg);
			printf("}\n");
			failed++;
			continue;
		}
		size_t n = rewrite_code__ninstrs(c);
		const struct rewrite_instr *in = rewrite_code__instrs(c);
		for (size_t k = 0; k < n && np < MAX_STACKED; k++) {
			if (!kind_site(kind, rewrite_opcode__name(in[k].opcode)))
				continue;
			for (size_t x = 0; x < sizeof(kind_crashes) / sizeof(kind_crashes[0]);
			     x++) {
				if (kind_crashes[x].kind != kind)
					continue;
				struct guard_crash cr = { .unit = in[k].offset,
							  .exc_type = kind_crashes[x].type,
							  .message = kind_crashes[x].msg,
							  .stdlib = 0 };
				struct guard_decision d;
				/* Decided on the original code: the sites of the kind. */
				if (guard__analyse(orig, &cr, &d, &diag) < 0 || d.kind != kind)
					continue;
				/* Made on the code the previous guards left. */
				if (guard__analyse(&cur, &cr, &d, &diag) < 0 || d.kind != kind ||
				    guard__synthesize(&cur, &d, &patches[np], &diag) < 0) {
					stacked++;
					break;
				}
				if (guard_patch__info(&cur, &patches[np], &next, &pcs[np]) < 0) {
					guard_patch__release(&patches[np]);
					stacked++;
					break;
				}
				/* Each guard passes the diff gate against the code it
				 * was made from. */
				if (!gate_msg &&
				    guard_diffgate__check(&cur, &next, NULL, &diag) < 0) {
					snprintf(gate_buf, sizeof(gate_buf), "%s", diag.msg);
					gate_msg = gate_buf;
				}
				cur = next;
				np++;
				break;
			}
		}
		printf("{\"index\":%zu,\"qualname\":", i);
		json_str(orig->qualname);
		printf(",\"sites\":%zu,\"stacked\":%zu", np, stacked);
		if (np) {
			const struct guard_patch *last = &patches[np - 1];
			/* The last patch's bytes and tables, every patch's constants. */
			struct guard_patch all = *last;
			all.nconsts = 0;
			all.nconsts_before = orig->nconsts;
			printf(",");
			print_patch(&all);
			printf(",\"more_consts\":[");
			for (size_t j = 0, m = 0; j < np; j++)
				for (size_t q = 0; q < patches[j].nconsts; q++, m++) {
					const struct guard_const *gc = &patches[j].consts[q];
					printf("%s{\"kind\":\"%s\",\"i\":%lld,\"f\":%g,\"names\":[",
					       m ? "," : "", guard_const_kind__name(gc->kind),
					       (long long)gc->i, gc->f);
					for (size_t nn = 0; nn < gc->nnames; nn++) {
						if (nn)
							putchar(',');
						json_str(gc->names[nn]);
					}
					printf("]}");
				}
			printf("],\"gate\":");
			json_str(gate_msg ? gate_msg : "ok");
			failed += gate_msg != NULL;
		}
		printf("}\n");
		for (size_t j = 0; j < np; j++) {
			free(pcs[j]);
			guard_patch__release(&patches[j]);
		}
		rewrite_code__free(c);
		total_sites += np;
		total_stacked += stacked;
	}
	fprintf(stderr, "guards: %s: %zu sites guarded, %zu left out (stacking), %zu failures\n",
		guard_kind__name(kind), total_sites, total_stacked, failed);
	return failed ? 1 : 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Figures only (tests/bench/bench_guards.sh); never fails on a number. */
static int cmd_bench(const struct rewrite_dump *dump)
{
	size_t n = rewrite_dump__count(dump), guards = 0, analysed = 0, grown = 0;
	double t0 = now(), t_probe = 0, t_gate = 0, t_guard = 0;
	for (size_t i = 0; i < n; i++) {
		const struct rewrite_code_info *info = &rewrite_dump__entry(dump, i)->info;
		struct guard_patch p;
		double a = now();
		if (guard__synthesize_probe(info, &p, NULL) < 0)
			return 1;
		double b = now();
		struct rewrite_code_info pi;
		struct rewrite_const *pc = NULL;
		if (guard_patch__info(info, &p, &pi, &pc) < 0 ||
		    guard_diffgate__check(info, &pi, NULL, NULL) < 0)
			return 1;
		t_probe += b - a;
		t_gate += now() - b;
		free(pc);
		guard_patch__release(&p);
		/* One real guard per code object: a KeyError at its first subscript. */
		struct rewrite_code *c = NULL;
		if (rewrite_code__decode(info, &c, NULL) < 0)
			return 1;
		const struct rewrite_instr *in = rewrite_code__instrs(c);
		for (size_t k = 0; k < rewrite_code__ninstrs(c); k++) {
			if (strcmp(rewrite_opcode__name(in[k].opcode), "BINARY_SUBSCR") != 0)
				continue;
			struct guard_crash cr = { .unit = in[k].offset,
						  .exc_type = "KeyError",
						  .message = "'k'",
						  .stdlib = 0 };
			struct guard_decision d;
			a = now();
			analysed++;
			if (guard__analyse(info, &cr, &d, NULL) == 0 && d.kind != GUARD_NONE &&
			    guard__synthesize(info, &d, &p, NULL) == 0) {
				if (guard_patch__info(info, &p, &pi, &pc) == 0 &&
				    guard_diffgate__check(info, &pi, NULL, NULL) == 0) {
					guards++;
					grown += p.stacksize > info->stacksize;
				}
				free(pc);
				pc = NULL;
				guard_patch__release(&p);
			}
			t_guard += now() - a;
			break;
		}
		rewrite_code__free(c);
	}
	double total = now() - t0;
	printf("code objects: %zu in %.2f s\n", n, total);
	printf("probe synthesis: %.0f code objects/s\n", (double)n / t_probe);
	printf("diff gate: %.0f code objects/s\n", (double)n / t_gate);
	printf("guard (analyse + synthesize + gate): %zu of %zu accepted, %.1f us each\n", guards,
	       analysed, analysed ? t_guard * 1e6 / (double)analysed : 0.0);
	printf("guards that grew co_stacksize: %zu of %zu\n", grown, guards);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_guards_tool heal|dis|probe|identity|sweep|bench DUMP, "
				"or guards DUMP KIND\n");
		return 2;
	}
	struct rewrite_dump *dump = NULL;
	struct rewrite_diag diag = { 0 };
	if (rewrite_dump__open(argv[2], &dump, &diag) < 0) {
		fprintf(stderr, "test_guards_tool: %s\n", diag.msg);
		return 2;
	}
	int rc = 2;
	if ((strcmp(argv[1], "heal") == 0 || strcmp(argv[1], "dis") == 0) && argc >= 7)
		rc = cmd_heal(dump, argc, argv, argv[1][0] == 'd');
	else if (strcmp(argv[1], "probe") == 0)
		rc = cmd_all(dump, true);
	else if (strcmp(argv[1], "bench") == 0)
		rc = cmd_bench(dump);
	else if (strcmp(argv[1], "sweep") == 0)
		rc = cmd_sweep(dump);
	else if (strcmp(argv[1], "identity") == 0)
		rc = cmd_all(dump, false);
	else if (strcmp(argv[1], "guards") == 0 && argc >= 4 &&
		 guard_kind__by_name(argv[3]) != GUARD_NONE)
		rc = cmd_guards(dump, guard_kind__by_name(argv[3]));
	else
		fprintf(stderr, "test_guards_tool: bad command\n");
	rewrite_dump__close(dump);
	return rc;
}
