/*
 * template.h - message templates: "{{actor}} commented: {{data.text}}".
 *
 * Variables: {{event_id}} {{type}} {{actor}} {{category}} {{user_id}}
 * {{user.locale}} and {{data.<path>}} where path walks nested objects with
 * dots. A missing variable renders as empty. "{{{" or unbalanced braces are
 * copied literally. Rendering is pure: no I/O.
 *
 * Digests (model/digest.h): {{digest.count}} {{digest.others}} (count - 1)
 * {{digest.first_actor}} {{digest.last_actor}}. A notification that is not
 * (yet) a digest renders them as a digest of one: 1, 0, the actor, the
 * actor. With ctx->spans set, tmpl_render records where each of them went
 * in the output, so that the digest's delivery can put the real values
 * there (digest_splice).
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include "core/buf.h"
#include "model/event.h"

/* Where a {{digest.*}} variable went in a rendering: bytes [at, at+len). */
typedef enum tmpl_dvar {
    TMPL_DV_COUNT = 0,
    TMPL_DV_OTHERS,
    TMPL_DV_FIRST,
    TMPL_DV_LAST,
    TMPL_DV__COUNT
} tmpl_dvar_t;
#define TMPL_SPANS_MAX 16
typedef struct tmpl_spans {
    int n;                      /* spans recorded; -1: more than TMPL_SPANS_MAX */
    struct {
        uint32_t at, len;
        uint8_t var;            /* tmpl_dvar_t */
    } v[TMPL_SPANS_MAX];
} tmpl_spans_t;

typedef struct tmpl_ctx {
    const event_t *ev;
    const char *user_id;
    const char *locale;
    tmpl_spans_t *spans;        /* may be NULL: where {{digest.*}} went */
} tmpl_ctx_t;

/* Appends the rendering of tmpl to out. HR_AGAIN if out's limit is hit; out
 * then holds the rendering cut at the limit (never inside a UTF-8 sequence). */
hr_t tmpl_render(const char *tmpl, const tmpl_ctx_t *ctx, buf_t *out);
/* A template rendered for one event with the recipient's variables
 * ({{user_id}}, {{user.locale}}) left as holes: what fan-out renders once
 * per event and channel, then finishes per recipient by splicing. */
#define TMPL_PRE_HOLES 16
typedef struct tmpl_pre {
    buf_t text;                 /* the event's parts, unlimited */
    int nholes;                 /* -1: too many holes, finish renders the template */
    struct {
        uint32_t at;            /* offset in text */
        uint8_t var;            /* 0 user_id, 1 user.locale */
    } holes[TMPL_PRE_HOLES];
    const char *tmpl;           /* borrowed: for the fallback */
    const event_t *ev;
} tmpl_pre_t;
void tmpl_pre_init(tmpl_pre_t *pre);
void tmpl_pre_release(tmpl_pre_t *pre);
/* Renders tmpl's event parts for ev into pre (tmpl and ev must outlive its
 * use). */
void tmpl_prerender(const char *tmpl, const event_t *ev, tmpl_pre_t *pre);
/* Appends the rendering for one recipient to out: exactly what
 * tmpl_render() with ctx {ev, user_id, locale} appends, same limit rules. */
hr_t tmpl_finish(const tmpl_pre_t *pre, const char *user_id, const char *locale, buf_t *out);

/* Checks a template's syntax; HR_INVALID with a reason in why. */
hr_t tmpl_check(const char *tmpl, char *why, size_t why_len);

#endif
