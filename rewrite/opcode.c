/* rewrite/opcode.c: accessors over the generated opcode table
 * (rewrite/opcodes.h, $(BUILD)/gen/rewrite_opcodes.c). */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "rewrite/rewrite-priv.h"

static const struct rw_opinfo *info_of(int op)
{
	if (op < 0 || op > 255 || !(rw_opinfo[op].flags & RW_OP_VALID))
		return NULL;
	return &rw_opinfo[op];
}

const char *rewrite_opcode__name(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o ? o->name : NULL;
}

int rewrite_opcode__by_name(const char *name)
{
	if (!name)
		return -1;
	for (int op = 0; op < 256; op++)
		if (rw_opinfo[op].name && strcmp(rw_opinfo[op].name, name) == 0)
			return op;
	return -1;
}

int rewrite_opcode__deopt(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o ? o->deopt : -1;
}

int rewrite_opcode__caches(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o ? rw_opinfo[o->deopt].caches : 0;
}

bool rewrite_opcode__has_arg(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o && (o->flags & RW_OP_HASARG);
}

bool rewrite_opcode__is_jump(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o && (o->flags & RW_OP_JUMP);
}

bool rewrite_opcode__is_backward(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o && (o->flags & RW_OP_BACKWARD);
}

int rewrite_opcode__reverse_jump(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o ? o->reverse : -1;
}

bool rewrite_opcode__is_terminator(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o && (o->flags & RW_OP_TERMINATOR);
}

enum rewrite_argkind rewrite_opcode__argkind(int op)
{
	const struct rw_opinfo *o = info_of(op);
	return o ? (enum rewrite_argkind)o->argkind : REWRITE_ARG_NONE;
}

int rewrite_opcode__stack_effect(int op, uint32_t arg, int jump, int *effect)
{
	const struct rw_opinfo *o = info_of(op);
	if (!o || !(o->flags & RW_OP_CANONICAL) || (jump != 0 && jump != 1))
		return -EINVAL;
	const struct rw_effect *m = &o->effect[jump];
	int64_t a = arg, v;
	switch (m->kind) {
	case RW_EFFECT_AFFINE:
		v = m->a + (int64_t)m->b * a;
		break;
	case RW_EFFECT_LOW4:
		v = m->table[a & 15];
		break;
	case RW_EFFECT_BYTES:
		v = m->a + (int64_t)m->b * (a & 0xff) + (int64_t)m->c * (a >> 8);
		break;
	case RW_EFFECT_SMALL:
		v = a < 16 ? m->table[a] : m->a + (int64_t)m->b * a;
		break;
	default:
		return -EINVAL;
	}
	if (v < INT_MIN || v > INT_MAX)
		return -ERANGE;
	*effect = (int)v;
	return 0;
}
