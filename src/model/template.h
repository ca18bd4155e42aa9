/*
 * template.h - message templates: "{{actor}} commented: {{data.text}}".
 *
 * Variables: {{event_id}} {{type}} {{actor}} {{category}} {{user_id}}
 * {{user.locale}} and {{data.<path>}} where path walks nested objects with
 * dots. A missing variable renders as empty. "{{{" or unbalanced braces are
 * copied literally. Rendering is pure: no I/O.
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include "core/buf.h"
#include "model/event.h"

typedef struct tmpl_ctx {
    const event_t *ev;
    const char *user_id;
    const char *locale;
} tmpl_ctx_t;

/* Appends the rendering of tmpl to out. HR_AGAIN if out's limit is hit; out
 * then holds the rendering cut at the limit (never inside a UTF-8 sequence). */
hr_t tmpl_render(const char *tmpl, const tmpl_ctx_t *ctx, buf_t *out);
/* Checks a template's syntax; HR_INVALID with a reason in why. */
hr_t tmpl_check(const char *tmpl, char *why, size_t why_len);

#endif
