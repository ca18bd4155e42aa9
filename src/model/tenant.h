/*
 * tenant.h - tenant-qualified ids (DESIGN §10): how one store and one
 * pipeline keep tenants apart without knowing about them.
 *
 * Every id a tenant names - user, event, topic, event type, actor - is
 * stored and carried as "<tenant>" SEP "<id>", SEP being the single byte
 * 0x1F (ASCII unit separator). Tenant "default" is stored unqualified, so
 * a single-tenant deployment keeps its ids (and notification ids) as they
 * were. No id a client sends may contain a control character (the API and
 * the event validator refuse them), and a tenant name is [a-z0-9_-], so
 * the first SEP of a stored id always ends its tenant: qualified ids of
 * two tenants never collide, and a default id never looks qualified.
 *
 * Only this module builds or takes apart qualified ids; the API qualifies
 * what it receives with the caller's tenant and unqualifies what it
 * answers, fan-out qualifies with the event's tenant, and everything that
 * leaves herald (notification JSON, sandbox lines) unqualifies.
 *
 * Pure functions, any thread.
 */
#ifndef HERALD_TENANT_H
#define HERALD_TENANT_H

#include "core/common.h"
#include "model/notif.h" /* hstr_t */

#define TENANT_SEP '\x1f'
#define TENANT_DEFAULT_NAME "default"
#define TENANT_NAME_MAX 64      /* bytes of a tenant name (STORE_TENANT_MAX) */
#define TENANT_ID_MAX 200       /* the longest id a client names (HTTP_ID_MAX, event ids) */
/* The longest qualified id: tenant, SEP, id. */
#define TENANT_QID_MAX (TENANT_NAME_MAX + 1 + TENANT_ID_MAX)

/* Is t a tenant name: 1..TENANT_NAME_MAX of [a-z0-9_-], starting with a
 * letter or digit? */
bool tenant_name_valid(const char *t);
/* Is t the default tenant (NULL, "" or "default")? */
bool tenant_is_default(const char *t);

/* tenant + SEP + id, malloc'd (free()); a plain copy of id for the
 * default tenant. */
char *tenant_qualify(const char *tenant, const char *id);
/* The same without allocating: id itself for the default tenant, else the
 * qualified id written to buf; NULL when it does not fit (an id longer
 * than TENANT_ID_MAX). The result lives as long as id and buf. */
const char *tenant_qualify_to(const char *tenant, const char *id, char buf[TENANT_QID_MAX + 1]);

/* The id part of a stored id: past its first SEP, or the whole of it (a
 * default tenant's id). Points into stored. */
const char *tenant_unqualify(const char *stored);
/* Splits stored[0..n) into its tenant (empty for the default tenant) and
 * id. Both point into stored. */
void tenant_split(hstr_t stored, hstr_t *tenant, hstr_t *id);
/* Does the stored id belong to tenant (default: it has no SEP)? */
bool tenant_owns(const char *tenant, const char *stored);
/* The same for a stored id that is not NUL-terminated. */
bool tenant_owns_n(const char *tenant, hstr_t stored);

#endif
