/*
 * http_engine.c - `herald bench http-engine`: the HTTP engine alone
 * (src/provider/http.c, no pipeline, no provider) against the fake APNs
 * (tests/fakeprov) over HTTP/2 + TLS. The ceiling the push providers work
 * under: what one dispatcher thread's engine moves with K requests in
 * flight, and at what CPU cost.
 *
 * Each run: reset the fake, set its injected delay, then N POSTs of an
 * APNs-sized alert to /3/device/<token> with K in flight (a completed
 * transfer is restarted until N have started). Reported: requests/s, this
 * process's CPU seconds per million requests (getrusage: the engine and
 * libcurl, nothing else runs here), connections opened
 * (http_engine_stats), and the fake's view: TLS connections accepted and
 * the most streams it saw in flight on one connection, and its own CPU.
 *
 * Threads: one, the engine's.
 */
#include "bench/bench_int.h"

#include "core/log.h"
#include "provider/http.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HB_MAX_DELAYS 8

typedef struct hb_opts {
    const char *url;            /* the fake's TLS base, https://127.0.0.1:port */
    const char *ca_file;
    int control_port;
    int64_t requests;
    int in_flight;
    double max_seconds;         /* no request starts after this, even if N were not done */
    int delays[HB_MAX_DELAYS];
    int ndelays;
    const char *authorization;  /* sent as is when the fake checks tokens */
    const char *out;
    const char *commit;
} hb_opts_t;

typedef struct hb_run {
    int delay_ms;
    int64_t done, ok, failed, transport;
    double elapsed_s, cpu_s;
    int64_t connects;
    int64_t fake_conns, fake_streams;
    double fake_cpu_s;
} hb_run_t;

typedef struct hb_ctx {
    const hb_opts_t *o;
    http_engine_t *e;
    prov_http_req_t req;
    http_xfer_t **x;
    int *ready;                 /* transfers done, to restart after the engine returns */
    int nready;
    int64_t started;
    hb_run_t *run;
} hb_ctx_t;

static void hb_done(void *ud, http_xfer_t *x, const prov_http_resp_t *resp)
{
    hb_ctx_t *c = ud;
    c->run->done++;
    if (resp->result != HTTP_DONE) c->run->transport++;
    else if (resp->status == 200) c->run->ok++;
    else c->run->failed++;
    for (int i = 0; i < c->o->in_flight; i++)
        if (c->x[i] == x) {
            c->ready[c->nready++] = i;
            break;
        }
}

/* The request of transfer number seq: a 64-hex device token per request. */
static void hb_build(hb_ctx_t *c, int64_t seq)
{
    prov_http_req_t *r = &c->req;
    prov_http_req_reset(r);
    r->ca_file = c->o->ca_file;
    r->timeout_ms = 30000;
    unsigned long long k = (unsigned long long)seq * 0x9e3779b97f4a7c15ull;
    buf_printf(&r->url, "%s/3/device/%016llx%016llx%016llx%016llx", c->o->url, k, k ^ 0xbf58476d1ce4e5b9ull,
               k * 3, k ^ 0x94d049bb133111ebull);
    buf_cstr(&r->url);
    buf_append_str(&r->headers, "apns-topic: com.example.herald\napns-push-type: alert\napns-priority: 10\n"
                                "Content-Type: application/json\n");
    if (c->o->authorization) buf_printf(&r->headers, "authorization: %s\n", c->o->authorization);
    buf_printf(&r->body,
               "{\"aps\":{\"alert\":{\"title\":\"u%07lld posted something new\",\"body\":\"Hi, "
               "Kylie commented on the photo you shared this morning.\"},\"sound\":\"default\"},"
               "\"notification_id\":\"%032llx\"}",
               (long long)(seq % 10000000), k);
}

static hr_t hb_fake_stats(int port, int64_t *conns, int64_t *streams, double *cpu)
{
    buf_t b;
    buf_init(&b, 0);
    hr_t r = http_get(port, "/stats", &b, 5000);
    json_t *j = r == HR_OK ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    if (!j) r = HR_ERR;
    else {
        *conns = json_integer_value(json_object_get(j, "tls_connections"));
        *streams = json_integer_value(json_object_get(j, "max_concurrent_streams"));
        *cpu = json_number_value(json_object_get(j, "cpu_s"));
    }
    json_decref(j);
    buf_release(&b);
    return r;
}

static hr_t hb_run(const hb_opts_t *o, int delay_ms, hb_run_t *run)
{
    memset(run, 0, sizeof(*run));
    run->delay_ms = delay_ms;
    buf_t ans;
    buf_init(&ans, 0);
    char body[96];
    snprintf(body, sizeof(body), "{\"route\":\"apns\",\"ms\":%d}", delay_ms);
    hr_t r = http_post(o->control_port, "/reset", "", &ans, 5000);
    if (r == HR_OK) r = http_post(o->control_port, "/control/record", "{\"on\":false}", &ans, 5000);
    if (r == HR_OK) r = http_post(o->control_port, "/control/latency", body, &ans, 5000);
    buf_release(&ans);
    double fake_cpu0 = 0;
    int64_t c0, s0;
    if (r == HR_OK) r = hb_fake_stats(o->control_port, &c0, &s0, &fake_cpu0);
    if (r != HR_OK) {
        fprintf(stderr, "herald bench http-engine: the fake's control port %d does not answer\n", o->control_port);
        return r;
    }

    hb_ctx_t c = {.o = o, .run = run};
    if ((r = http_engine_new(&c.e)) != HR_OK) return r;
    prov_http_req_init(&c.req);
    c.x = xcalloc((size_t)o->in_flight, sizeof(*c.x));
    c.ready = xcalloc((size_t)o->in_flight, sizeof(*c.ready));
    for (int i = 0; i < o->in_flight; i++) {
        c.x[i] = http_xfer_new();
        c.ready[c.nready++] = i;
    }
    double cpu0 = self_cpu_s(), t0 = now_s();
    /* Past max_seconds no more start; what is in flight finishes (up to
     * 10 s more) and counts. */
    while (run->done < c.started || (c.started < o->requests && now_s() - t0 < o->max_seconds)) {
        if (now_s() - t0 > o->max_seconds + 10) break;
        while (c.nready > 0 && c.started < o->requests && now_s() - t0 < o->max_seconds) {
            int i = c.ready[--c.nready];
            hb_build(&c, c.started);
            if (http_xfer_start(c.e, c.x[i], &c.req, hb_done, &c) != HR_OK) {
                fprintf(stderr, "herald bench http-engine: curl refused a transfer\n");
                r = HR_ERR;
                goto out;
            }
            c.started++;
        }
        http_engine_run(c.e, 100);
    }
out:
    run->elapsed_s = now_s() - t0;
    run->cpu_s = self_cpu_s() - cpu0;
    int64_t transfers;
    http_engine_stats(c.e, &transfers, &run->connects);
    http_engine_free(c.e); /* cancels what a timeout left running */
    for (int i = 0; i < o->in_flight; i++) http_xfer_free(c.x[i]);
    free(c.x);
    free(c.ready);
    prov_http_req_release(&c.req);
    double fake_cpu1 = 0;
    if (hb_fake_stats(o->control_port, &run->fake_conns, &run->fake_streams, &fake_cpu1) == HR_OK)
        run->fake_cpu_s = fake_cpu1 - fake_cpu0;
    return r;
}

static void hb_usage(FILE *f)
{
    fprintf(f,
            "usage: herald bench http-engine --url https://127.0.0.1:PORT --ca-file CA.pem --control-port PORT [options]\n"
            "The HTTP engine alone (no pipeline) against the fake APNs of tests/fakeprov, over HTTP/2 + TLS.\n\n"
            "  --url URL            the fake's TLS base URL\n"
            "  --ca-file F          the fake's CA certificate (PEM)\n"
            "  --control-port P     the fake's control port\n"
            "  --requests N         requests per run (default 200000)\n"
            "  --in-flight K        requests in flight (default 500)\n"
            "  --delays MS,MS,...   injected delay of each run (default 0,20)\n"
            "  --max-seconds S      no request starts after S seconds (default 20)\n"
            "  --authorization V    authorization header value (when the fake checks provider tokens)\n"
            "  --commit ID          commit recorded in the result\n"
            "  --out FILE           write the result JSON to FILE\n");
}

int bench_http_engine_main(int argc, char **argv)
{
    enum { H_URL = 1, H_CA, H_CTL, H_REQ, H_K, H_DELAYS, H_MAXS, H_AUTH, H_OUT, H_COMMIT, H_HELP };
    static const struct option lo[] = {
        {"url", required_argument, NULL, H_URL},
        {"ca-file", required_argument, NULL, H_CA},
        {"control-port", required_argument, NULL, H_CTL},
        {"requests", required_argument, NULL, H_REQ},
        {"in-flight", required_argument, NULL, H_K},
        {"delays", required_argument, NULL, H_DELAYS},
        {"max-seconds", required_argument, NULL, H_MAXS},
        {"authorization", required_argument, NULL, H_AUTH},
        {"out", required_argument, NULL, H_OUT},
        {"commit", required_argument, NULL, H_COMMIT},
        {"help", no_argument, NULL, H_HELP},
        {NULL, 0, NULL, 0},
    };
    hb_opts_t o = {.requests = 200000, .in_flight = 500, .max_seconds = 20, .delays = {0, 20}, .ndelays = 2};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case H_URL: o.url = optarg; break;
        case H_CA: o.ca_file = optarg; break;
        case H_CTL: o.control_port = atoi(optarg); break;
        case H_REQ: o.requests = strtoll(optarg, NULL, 10); break;
        case H_K: o.in_flight = atoi(optarg); break;
        case H_MAXS: o.max_seconds = strtod(optarg, NULL); break;
        case H_AUTH: o.authorization = optarg; break;
        case H_OUT: o.out = optarg; break;
        case H_COMMIT: o.commit = optarg; break;
        case H_DELAYS: {
            o.ndelays = 0;
            for (const char *p = optarg; *p && o.ndelays < HB_MAX_DELAYS;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p || v < 0 || v > 10000) break;
                o.delays[o.ndelays++] = (int)v;
                p = *end == ',' ? end + 1 : end;
            }
            break;
        }
        case H_HELP: hb_usage(stdout); return 0;
        default: hb_usage(stderr); return 2;
        }
    }
    if (!o.url || !o.ca_file || o.control_port <= 0 || o.requests < 1 || o.in_flight < 1 ||
        o.in_flight > 10000 || o.ndelays < 1) {
        hb_usage(stderr);
        return 2;
    }
    hlog_set_level(HLOG_WARN);
    time_t now = time(NULL);
    char started[32];
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *res = json_pack("{s:i,s:s,s:s,s:s,s:o,s:{s:I,s:i,s:s}}", "schema", 1, "label", "http-engine",
                            "commit", o.commit ? o.commit : "unknown", "started_at", started, "machine",
                            bench_machine_json(), "mode", "requests", (json_int_t)o.requests, "in_flight",
                            o.in_flight, "target", "fake APNs, HTTP/2 + TLS");
    json_t *runs = json_array();
    json_object_set_new(res, "runs", runs);
    int rc = 0;
    printf("herald bench http-engine: %lld requests, %d in flight, against %s\n", (long long)o.requests,
           o.in_flight, o.url);
    for (int i = 0; i < o.ndelays && rc == 0; i++) {
        hb_run_t run;
        if (hb_run(&o, o.delays[i], &run) != HR_OK) {
            rc = 1;
            break;
        }
        double rps = run.elapsed_s > 0 ? (double)run.done / run.elapsed_s : 0;
        double cpm = run.done ? run.cpu_s / ((double)run.done / 1e6) : 0;
        double fcpm = run.done ? run.fake_cpu_s / ((double)run.done / 1e6) : 0;
        printf("delay %3d ms: %.0f requests/s (%lld in %.1f s; %lld ok, %lld refused, %lld transport errors), "
               "%.1f CPU s per million (the fake: %.1f), %lld connection(s) opened (the fake accepted %lld), "
               "max %lld streams on one connection\n",
               run.delay_ms, rps, (long long)run.done, run.elapsed_s, (long long)run.ok, (long long)run.failed,
               (long long)run.transport, cpm, fcpm, (long long)run.connects, (long long)run.fake_conns,
               (long long)run.fake_streams);
        fflush(stdout);
        if (run.ok != run.done) {
            fprintf(stderr, "herald bench http-engine: %lld of %lld requests did not succeed\n",
                    (long long)(run.done - run.ok), (long long)run.done);
            rc = 1;
        }
        json_array_append_new(
            runs, json_pack("{s:i,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:i}", "delay_ms", run.delay_ms,
                            "requests", (json_int_t)run.done, "ok", (json_int_t)run.ok, "refused",
                            (json_int_t)run.failed, "transport_errors", (json_int_t)run.transport, "elapsed_s",
                            run.elapsed_s, "requests_per_s", rps, "cpu_s_per_m", cpm, "fake_cpu_s_per_m", fcpm,
                            "connections", (json_int_t)run.connects, "fake_tls_connections",
                            (json_int_t)run.fake_conns, "max_concurrent_streams", (json_int_t)run.fake_streams,
                            "in_flight", o.in_flight));
    }
    if (rc == 0 && o.out) {
        if (json_dump_file(res, o.out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            fprintf(stderr, "herald bench http-engine: cannot write %s\n", o.out);
            rc = 1;
        } else {
            printf("result: %s\n", o.out);
        }
    }
    json_decref(res);
    return rc;
}
