/*
 * store_pg_listen.c - the change feed across processes: a thread with a
 * connection of its own LISTENs on herald_users and herald_templates
 * (NOTIFYd by the triggers of schema/pg/006_change_feed.sql) and announces
 * what other processes changed on this store's change feed
 * (store_feed_remote_*, store.c), so every instance's recipient and
 * template caches stay exact. On by default in herald (store.pg_listen);
 * store_open_with(.pg_listen = true) elsewhere.
 *
 * Own writes come back as notifications too; those sent by one of this
 * store's pooled connections are skipped (store.c announced them already).
 * When the listening connection breaks, notifications may have been missed:
 * after reconnecting the thread announces "everything changed" (caches drop
 * all users and templates), then goes on.
 *
 * Threads: one, started at open, stopped (through a pipe) at close.
 */
#include "store/store_pg_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#define LOG "store"
#define RECONNECT_MS 1000

struct pg_listen {
    pg_t *p;
    char *dsn;
    PGconn *conn;
    pthread_t th;
    int wake[2];                /* close: a byte on wake[1] stops the thread */
    atomic_bool ready;          /* store.c's feed exists (pg_listen_ready) */
};

static PGconn *listen_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, "LISTEN herald_users; LISTEN herald_templates");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (ok) return c;
    }
    char line[512];
    log_warn(LOG, "postgres: change feed: cannot listen: %s",
             pg_one_line(PQerrorMessage(c), line, sizeof(line)));
    PQfinish(c);
    return NULL;
}

/* Was the notification sent by one of our pooled connections? */
static bool own(const pg_t *p, int pid)
{
    for (int i = 0; i < p->nconn; i++)
        if (atomic_load(&p->conns[i].pid) == pid) return true;
    return false;
}

static void deliver(pg_listen_t *l)
{
    PGnotify *n;
    while ((n = PQnotifies(l->conn))) {
        if (atomic_load(&l->ready) && !own(l->p, n->be_pid)) {
            if (strcmp(n->relname, "herald_templates") == 0)
                store_feed_remote_templates(&l->p->base);
            else
                store_feed_remote_user(&l->p->base, n->extra[0] ? n->extra : NULL);
        }
        PQfreemem(n);
    }
}

static void *listen_main(void *arg)
{
    pg_listen_t *l = arg;
    for (;;) {
        struct pollfd fds[2] = {{.fd = l->wake[0], .events = POLLIN},
                                {.fd = l->conn ? PQsocket(l->conn) : -1, .events = POLLIN}};
        int rc = poll(fds, l->conn ? 2 : 1, l->conn ? -1 : RECONNECT_MS);
        if (rc < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        if (!l->conn) {
            l->conn = listen_connect(l->dsn);
            if (l->conn) {
                log_info(LOG, "postgres: change feed: listening again; caches start over");
                store_feed_remote_user(&l->p->base, NULL);
                store_feed_remote_templates(&l->p->base);
            }
            continue;
        }
        if (rc > 0 && fds[1].revents) {
            if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK) {
                char line[512];
                log_warn(LOG, "postgres: change feed: connection lost: %s",
                         pg_one_line(PQerrorMessage(l->conn), line, sizeof(line)));
                PQfinish(l->conn);
                l->conn = NULL;
                continue;
            }
            deliver(l);
        }
    }
    return NULL;
}

hr_t pg_listen_start(pg_t *p, const char *dsn)
{
    pg_listen_t *l = xcalloc(1, sizeof(*l));
    l->p = p;
    l->wake[0] = l->wake[1] = -1;
    l->conn = listen_connect(dsn);
    if (!l->conn || pipe2(l->wake, O_CLOEXEC) != 0) goto fail;
    l->dsn = xstrdup(dsn);
    if (pthread_create(&l->th, NULL, listen_main, l) != 0) goto fail;
    p->listen = l;
    return HR_OK;
fail:
    log_error(LOG, "postgres: change feed: cannot start the listener");
    PQfinish(l->conn);
    if (l->wake[0] >= 0) close(l->wake[0]);
    if (l->wake[1] >= 0) close(l->wake[1]);
    if (l->dsn) {
        explicit_bzero(l->dsn, strlen(l->dsn)); /* it may hold a password */
        free(l->dsn);
    }
    free(l);
    return HR_ERR;
}

void pg_listen_ready(pg_t *p)
{
    if (p->listen) atomic_store(&p->listen->ready, true);
}

void pg_listen_stop(pg_t *p)
{
    pg_listen_t *l = p->listen;
    if (!l) return;
    p->listen = NULL;
    char b = 1;
    while (write(l->wake[1], &b, 1) < 0 && errno == EINTR) {}
    pthread_join(l->th, NULL);
    PQfinish(l->conn);
    close(l->wake[0]);
    close(l->wake[1]);
    explicit_bzero(l->dsn, strlen(l->dsn));
    free(l->dsn);
    free(l);
}
