/* rewrite/redecide.c: a stored spec's decision found again on a live code
 * object (docs/formats/store.md, "Applying"; docs/formats/guards.md).
 *
 * A store keeps the guard kind, the anchor and the fingerprint, never the
 * exception: the fingerprint hashes the exception type, so trying each
 * crash the classifier turns into the kind (guard_kind_info.samples) and
 * keeping the one whose fingerprint matches recovers it. Used by loading
 * (heal/) and by suture-audit explain alike.
 */
#include "rewrite/guard-priv.h"

#include <errno.h>
#include <string.h>

int guard_spec__redecide(const struct rewrite_code_info *info, const struct guard_spec *spec,
			 struct guard_decision *d, struct rewrite_diag *diag)
{
	enum guard_kind kind = guard_kind__by_name(spec->guard);
	const struct guard_kind_info *ki = guard_kind__info(kind);
	if (!ki) {
		if (diag) {
			diag->err = -EINVAL;
			diag->where = -1;
			guard__fmt(diag->msg, sizeof(diag->msg),
				   "guard: spec: unknown guard kind \"%s\"",
				   spec->guard ? spec->guard : "(null)");
		}
		return -EINVAL;
	}
	for (size_t i = 0; i < ki->nsamples; i++) {
		struct guard_crash c = { .unit = spec->anchor,
					 .exc_type = ki->samples[i].exc_type,
					 .message = ki->samples[i].message,
					 .stdlib = -1 };
		char fp[32];
		if (guard__analyse(info, &c, d, NULL) || d->kind != kind)
			continue;
		guard_fingerprint__format(d->fingerprint, fp, sizeof(fp));
		if (spec->window && spec->window[0] && strcmp(fp, spec->window) != 0)
			continue;
		return 0;
	}
	if (diag) {
		diag->err = -ESTALE;
		diag->where = spec->anchor;
		guard__fmt(diag->msg, sizeof(diag->msg), "no %s decided at unit %u any more",
			   ki->name, spec->anchor);
	}
	return -ESTALE;
}
