/*
 * http.h - herald's HTTP/1.1 JSON API (DESIGN §6; docs/openapi.yaml is the
 * contract). Built on libmicrohttpd: an internal epoll polling thread per
 * pool thread (cfg->http_threads), connection limits in total and per
 * client address, idle timeouts, and deadlines for a request's headers and
 * body that a trickle of bytes cannot extend (server.c).
 * Handlers run on the pool threads and may block on the store and on bus
 * acknowledgements, so the pool size bounds the requests served at once.
 *
 * Ownership: the server borrows app (and app->cfg, bus, store) until
 * http_stop() returns; the caller keeps them alive that long.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include "app.h"

typedef struct http_server http_server_t;

/* Starts serving on listen ("HOST:PORT"; HOST may be an IPv4 address, a
 * bracketed IPv6 address, a name, or empty / "*" for every address; PORT 0
 * picks a free port). HR_INVALID for an unparsable listen string, HR_ERR when
 * the socket cannot be bound. Runs on any thread. */
hr_t http_start(app_t *app, const char *listen, http_server_t **out);
/* The bound port (useful after port 0). */
int http_port(http_server_t *s);
/* Stops accepting, ends open streaming responses, closes connections once
 * their handlers return, joins the pool threads and frees s. NULL is
 * ignored. Not from a handler thread. Idle and half-sent connections are
 * closed at once (the listening socket is closed first). */
void http_stop(http_server_t *s);

#endif
