/*
 * cmd_dlq.c - `herald dlq list` and `herald dlq redrive`: the dead-letter
 * topic for people (stage/dlq.h). With the embedded bus (owned by the
 * running server) the command goes through the server's API (GET /v1/dlq,
 * POST /v1/dlq/redrive); with --bus kafka it reads the topic itself.
 * Either way it prints the API's JSON.
 */
#include "cli/cli.h"

#include "stage/dlq.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: herald dlq list [--since T] [--reason R] [--limit N]\n"
    "       herald dlq redrive (--id ID | --all [--reason R])\n"
    "                  [--url http://HOST:PORT] [--bus kafka --kafka-brokers B]\n"
    "Lists the dead-letter topic's entries (id <partition>-<offset>, reason,\n"
    "origin, payload), oldest first per partition, or sends entries back to\n"
    "where they came from: events to raw-events (processed as new: their\n"
    "event_id is not taken as a duplicate), notifications to their channel.\n"
    "--all skips entries redriven before. T: ms since the epoch, an RFC 3339\n"
    "time or an age (90s, 15m, 2h, 7d). --reason matches part of the reason.\n"
    "With the embedded bus this goes through the running server's API (--url,\n"
    "default from http.listen).\n";

/* --limit: 1..100000, else -1. */
static int atoi_bounded(const char *s)
{
    char *e = NULL;
    long v = strtol(s, &e, 10);
    return e != s && !*e && v >= 1 && v <= 100000 ? (int)v : -1;
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buf_append((buf_t *)userdata, ptr, size * nmemb);
    return size * nmemb;
}

/* One request to the server; prints the answer. 0 for a 2xx answer. */
static int call(cli_t *c, const char *method, const char *path_query, const char *body)
{
    char *url = c->url ? xasprintf("%s%s", c->url, path_query)
                       : xasprintf("http://%s%s", c->cfg.listen, path_query);
    buf_t out;
    buf_init(&out, 0);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = cli_auth_header(c, curl_slist_append(NULL, "Content-Type: application/json"));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (strcmp(method, "POST") == 0) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    int rc = 1;
    if (cr != CURLE_OK) {
        fprintf(stderr, "herald: %s %s: %s (is 'herald serve' running?)\n", method, url,
                curl_easy_strerror(cr));
    } else {
        FILE *to = status >= 200 && status < 300 ? stdout : stderr;
        fprintf(to, "%.*s\n", (int)out.len, out.data ? out.data : "");
        rc = to == stdout ? 0 : 1;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    buf_release(&out);
    free(url);
    return rc;
}

static void query_add(buf_t *q, CURL *h, const char *name, const char *value)
{
    if (!value) return;
    char *e = curl_easy_escape(h, value, 0);
    buf_append_str(q, q->len ? "&" : "?");
    buf_append_str(q, name);
    buf_append_str(q, "=");
    buf_append_str(q, e);
    curl_free(e);
}

static int list_api(cli_t *c)
{
    buf_t q;
    buf_init(&q, 0);
    CURL *h = curl_easy_init();
    query_add(&q, h, "since", c->since);
    query_add(&q, h, "reason", c->reason);
    query_add(&q, h, "limit", c->limit ? c->limit : "200");
    curl_easy_cleanup(h);
    char *path = xasprintf("/v1/dlq%.*s", (int)q.len, q.data ? q.data : "");
    int rc = call(c, "GET", path, NULL);
    free(path);
    buf_release(&q);
    return rc;
}

static int redrive_api(cli_t *c)
{
    json_t *body = c->id ? json_pack("{s:s}", "id", c->id) : json_pack("{s:b}", "all", 1);
    if (c->reason) json_object_set_new(body, "reason", json_string(c->reason));
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = call(c, "POST", "/v1/dlq/redrive", text);
    free(text);
    json_decref(body);
    return rc;
}

static void print_json(json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT);
    printf("%s\n", t);
    free(t);
    json_decref(o);
}

/* Reads the topic itself (Kafka). */
static int direct(cli_t *c, bool list)
{
    app_t *app = NULL;
    if (cli_open(c, true, false, &app) != HR_OK) return 1;
    int rc = 1;
    hr_t r;
    if (list) {
        dlq_filter_t f = {.reason = c->reason, .limit = c->limit ? atoi_bounded(c->limit) : 0};
        if (c->since) dlq_since_parse(c->since, hclock_now_ms(), &f.since_ms); /* checked before */
        dlq_entry_t *e = NULL;
        int n = 0;
        bool more = false;
        if ((r = dlq_list(app, &f, &e, &n, &more)) == HR_OK) {
            json_t *items = json_array();
            for (int i = 0; i < n; i++) json_array_append_new(items, dlq_entry_json(&e[i]));
            print_json(json_pack("{s:o,s:b}", "items", items, "more", more));
            rc = 0;
        }
        dlq_entries_free(e, n);
    } else if (c->id) {
        char why[256];
        if ((r = dlq_redrive_id(app, c->id, why, sizeof(why))) == HR_OK) {
            print_json(json_pack("{s:s,s:i}", "id", c->id, "redriven", 1));
            rc = 0;
        } else {
            fprintf(stderr, "herald: %s\n", why);
        }
    } else {
        int done = 0, skipped = 0;
        if ((r = dlq_redrive_all(app, c->reason, &done, &skipped)) == HR_OK) {
            print_json(json_pack("{s:i,s:i}", "redriven", done, "skipped", skipped));
            rc = 0;
        }
    }
    if (rc != 0 && r != HR_OK && !c->id) fprintf(stderr, "herald: dlq: %s\n", hr_str(r));
    app_close(app);
    return rc;
}

int cmd_dlq(int argc, char **argv)
{
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    const char *sub = c.argi < argc ? argv[c.argi] : "";
    bool list = strcmp(sub, "list") == 0, redrive = strcmp(sub, "redrive") == 0;
    int64_t t;
    if ((!list && !redrive) || (redrive && (!c.id == !c.all || (c.reason && !c.all))) ||
        (list && (c.id || c.all)) || (redrive && (c.since || c.limit))) {
        fputs(usage, stderr);
        return cli_end(&c, 2);
    }
    if (c.since && !dlq_since_parse(c.since, hclock_now_ms(), &t)) {
        fprintf(stderr, "herald: --since: '%s' is not a time or an age\n", c.since);
        return cli_end(&c, 2);
    }
    if (c.limit && atoi_bounded(c.limit) <= 0) {
        fprintf(stderr, "herald: --limit: '%s' is not a number from 1 to 100000\n", c.limit);
        return cli_end(&c, 2);
    }
    if (strcmp(c.cfg.bus_backend, "kafka") == 0) rc = direct(&c, list);
    else rc = list ? list_api(&c) : redrive_api(&c);
    return cli_end(&c, rc);
}
