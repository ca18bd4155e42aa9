/* fake_http.c - see fake_http.h. */
#include "fake_http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEN 4096

struct fake_http {
    struct MHD_Daemon *d;
    int port;
    char url[256];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int requests, current, max_concurrent;
    int hold_k, hold_total;
    char *keys[MAX_SEEN];
    char *paths[MAX_SEEN];
    char *auths[MAX_SEEN];
    char *traces[MAX_SEEN];     /* the traceparent header of each request ("" when none) */
    char *signed_[MAX_SEEN];    /* "id\nts\nsig\nbody" of each request */
    int nseen;
    /* The token endpoint (fake_http_token). */
    char token_path[128];
    int token_expires_in, token_status, tokens;
    char token_body[8192], token_ctype[128];
};

typedef struct conn {
    char *body;
    size_t len;
} conn_t;

static void answer_script(const char *title, int *status, char *retry_after, size_t ra_cap,
                          char *msgid, size_t id_cap, int *delay_ms)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", title ? title : "");
    for (char *save = NULL, *w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strncmp(w, "status=", 7) == 0) *status = atoi(w + 7);
        else if (strncmp(w, "delay=", 6) == 0) *delay_ms = atoi(w + 6);
        else if (strncmp(w, "msgid=", 6) == 0) snprintf(msgid, id_cap, "%s", w + 6);
        else if (strncmp(w, "retry-after=", 12) == 0) {
            snprintf(retry_after, ra_cap, "%s", w + 12);
            for (char *p = retry_after; *p; p++)
                if (*p == '_') *p = ' ';
        }
    }
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    fake_http_t *f = cls;
    conn_t *k = *con_cls;
    if (!k) {
        *con_cls = calloc(1, sizeof(conn_t));
        return MHD_YES;
    }
    if (*upload_size) {
        k->body = realloc(k->body, k->len + *upload_size + 1);
        memcpy(k->body + k->len, upload, *upload_size);
        k->len += *upload_size;
        k->body[k->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    json_t *j = k->body ? json_loadb(k->body, k->len, 0, NULL) : NULL;
    int status = 200, delay_ms = 0;
    char ra[128] = "", msgid[96] = "";
    const char *title = json_string_value(json_object_get(j, "title"));
    if (!title)
        title = json_string_value(json_object_get(
            json_object_get(json_object_get(j, "message"), "notification"), "title"));
    answer_script(title, &status, ra, sizeof(ra), msgid, sizeof(msgid), &delay_ms);
    json_decref(j);
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *trace = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent");
    char answer[512] = "{}";
    const char *wid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
    const char *wts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
    const char *wsig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
    char *sg = NULL;
    if (asprintf(&sg, "%s\n%s\n%s\n%s", wid ? wid : "", wts ? wts : "", wsig ? wsig : "",
                 k->body ? k->body : "") < 0)
        sg = NULL;

    pthread_mutex_lock(&f->mu);
    f->requests++;
    f->current++;
    if (f->current > f->max_concurrent) f->max_concurrent = f->current;
    if (f->nseen < MAX_SEEN) {
        f->keys[f->nseen] = strdup(key ? key : "");
        f->paths[f->nseen] = strdup(url);
        f->auths[f->nseen] = strdup(auth ? auth : "");
        f->traces[f->nseen] = strdup(trace ? trace : "");
        f->signed_[f->nseen] = sg;
        sg = NULL;
        f->nseen++;
    }
    free(sg);
    if (f->token_path[0] && strcmp(url, f->token_path) == 0) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        snprintf(f->token_body, sizeof(f->token_body), "%s", k->body ? k->body : "");
        snprintf(f->token_ctype, sizeof(f->token_ctype), "%s", ct ? ct : "");
        status = f->token_status;
        ra[0] = msgid[0] = '\0';
        delay_ms = 0;
        if (status == 200)
            snprintf(answer, sizeof(answer),
                     "{\"access_token\":\"tok-%d\",\"expires_in\":%d,\"token_type\":\"Bearer\"}",
                     ++f->tokens, f->token_expires_in);
        else if (status == 400)
            snprintf(answer, sizeof(answer),
                     "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
    } else if (msgid[0]) {
        snprintf(answer, sizeof(answer), "{\"name\":\"%s\"}", msgid);
    }
    pthread_cond_broadcast(&f->cv);
    if (f->hold_k) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (f->max_concurrent < f->hold_k && f->requests < f->hold_total)
            if (pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0) break;
    }
    pthread_mutex_unlock(&f->mu);
    if (delay_ms) usleep((useconds_t)delay_ms * 1000);

    /* No longer counted as in flight before the client can see the answer,
     * so max_concurrent never exceeds what the client had outstanding. */
    pthread_mutex_lock(&f->mu);
    f->current--;
    pthread_mutex_unlock(&f->mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(answer), answer, MHD_RESPMEM_MUST_COPY);
    if (ra[0]) MHD_add_response_header(r, "Retry-After", ra);
    if (msgid[0]) MHD_add_response_header(r, "X-Message-Id", msgid);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    conn_t *k = *con_cls;
    if (k) free(k->body);
    free(k);
    *con_cls = NULL;
}

fake_http_t *fake_http_start(void)
{
    fake_http_t *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                            NULL, on_req, f, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    if (!f->d) {
        free(f);
        return NULL;
    }
    f->port = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return f;
}

void fake_http_stop(fake_http_t *f)
{
    if (!f) return;
    MHD_stop_daemon(f->d);
    for (int i = 0; i < f->nseen; i++) {
        free(f->keys[i]);
        free(f->paths[i]);
        free(f->auths[i]);
        free(f->traces[i]);
        free(f->signed_[i]);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

const char *fake_http_url(fake_http_t *f, const char *path)
{
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d%s", f->port, path);
    return f->url;
}

void fake_http_hold(fake_http_t *f, int k, int total)
{
    pthread_mutex_lock(&f->mu);
    f->hold_k = k;
    f->hold_total = total;
    pthread_mutex_unlock(&f->mu);
}

#define GETTER(name, field)                 \
    int name(fake_http_t *f)                \
    {                                       \
        pthread_mutex_lock(&f->mu);         \
        int v = f->field;                   \
        pthread_mutex_unlock(&f->mu);       \
        return v;                           \
    }
GETTER(fake_http_requests, requests)
GETTER(fake_http_max_concurrent, max_concurrent)

static int count_in(fake_http_t *f, char **arr, const char *s)
{
    pthread_mutex_lock(&f->mu);
    int n = 0;
    for (int i = 0; i < f->nseen; i++) n += strcmp(arr[i], s) == 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int fake_http_key_count(fake_http_t *f, const char *key) { return count_in(f, f->keys, key); }
int fake_http_path_count(fake_http_t *f, const char *path) { return count_in(f, f->paths, path); }
int fake_http_auth_count(fake_http_t *f, const char *auth) { return count_in(f, f->auths, auth); }

int fake_http_trace_count(fake_http_t *f, const char *traceparent)
{
    return count_in(f, f->traces, traceparent);
}

void fake_http_token(fake_http_t *f, const char *path, int expires_in, int status)
{
    pthread_mutex_lock(&f->mu);
    snprintf(f->token_path, sizeof(f->token_path), "%s", path);
    f->token_expires_in = expires_in;
    f->token_status = status;
    pthread_mutex_unlock(&f->mu);
}

void fake_http_token_last(fake_http_t *f, char *body, size_t body_cap, char *ctype, size_t ctype_cap)
{
    pthread_mutex_lock(&f->mu);
    snprintf(body, body_cap, "%s", f->token_body);
    snprintf(ctype, ctype_cap, "%s", f->token_ctype);
    pthread_mutex_unlock(&f->mu);
}

bool fake_http_signed(fake_http_t *f, const char *key, char *id, char *ts, char *sig, char *body,
                      size_t cap)
{
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (int i = f->nseen - 1; i >= 0 && !found; i--) {
        if (strcmp(f->keys[i], key) != 0 || !f->signed_[i]) continue;
        char *out[4] = {id, ts, sig, body};
        const char *p = f->signed_[i];
        for (int k = 0; k < 4; k++) {
            const char *e = k < 3 ? strchr(p, '\n') : p + strlen(p);
            snprintf(out[k], cap, "%.*s", (int)(e - p), p);
            p = k < 3 ? e + 1 : e;
        }
        found = true;
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}
