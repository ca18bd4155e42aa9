/*
 * cmd_produce.c - `herald produce`: validates events locally, then posts
 * them to a running server's API or, on Kafka, produces them to raw-events.
 */
#include "cli/cli.h"

#include "model/event.h"
#include "stage/ingest.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: herald produce [EVENT_JSON | --file FILE | < stdin]\n"
    "                      [--url http://HOST:PORT] [--bus kafka --kafka-brokers B]\n"
    "Publishes one event, or a JSON array of events. With the embedded bus the\n"
    "event goes through the running server's API (--url, default from http.listen);\n"
    "with --bus kafka it is produced straight to raw-events.\n";

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = xmalloc(cap);
    size_t got;
    while ((got = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) p = xrealloc(p, cap *= 2);
    }
    p[n] = '\0';
    *len = n;
    return p;
}

static size_t curl_sink(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    fwrite(ptr, size, nmemb, (FILE *)userdata);
    return size * nmemb;
}

/* Straight to raw-events (Kafka: other processes consume it). */
static int publish(cli_t *c, event_t *evs, size_t n)
{
    app_t *app = NULL;
    if (cli_open(c, false, false, &app) != HR_OK) return 1;
    hr_t r = ingest_publish(app, evs, (int)n);
    app_close(app);
    if (r != HR_OK) {
        fprintf(stderr, "herald: publish failed: %s\n", hr_str(r));
        return 1;
    }
    printf("{\"accepted\":%zu}\n", n);
    return 0;
}

/* Through the running server's API (the embedded bus belongs to it). */
static int post(cli_t *c, const char *text, size_t len)
{
    int rc = 1;
    char *url = c->url ? xasprintf("%s/v1/events", c->url)
                       : xasprintf("http://%s/v1/events", c->cfg.listen);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = cli_auth_header(c, curl_slist_append(NULL, "Content-Type: application/json"));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stdout);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    printf("\n");
    if (cr != CURLE_OK)
        fprintf(stderr, "herald: POST %s: %s (is 'herald serve' running?)\n", url,
                curl_easy_strerror(cr));
    else if (status == 202)
        rc = 0;
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(url);
    return rc;
}

int cmd_produce(int argc, char **argv)
{
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    size_t len;
    char *text;
    if (c.argi < argc) {
        text = xstrdup(argv[c.argi]);
        len = strlen(text);
    } else if (c.file) {
        FILE *f = fopen(c.file, "rb");
        if (!f) {
            fprintf(stderr, "herald: cannot open %s\n", c.file);
            return cli_end(&c, 2);
        }
        text = read_all(f, &len);
        fclose(f);
    } else {
        text = read_all(stdin, &len);
    }
    rc = 1;
    /* Validate locally first: a bad event never leaves this process. */
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "herald: body: invalid JSON at line %d column %d: %s\n", jerr.line,
                jerr.column, jerr.text);
        free(text);
        return cli_end(&c, 2);
    }
    size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
    event_t *evs = xcalloc(n ? n : 1, sizeof(*evs));
    size_t parsed = 0;
    for (; parsed < n; parsed++) {
        problem_t pb;
        json_t *obj = json_is_array(doc) ? json_array_get(doc, parsed) : doc;
        if (event_from_json(obj, &evs[parsed], &pb) != HR_OK) {
            fprintf(stderr, "herald: event %zu: %s: %s\n", parsed, pb.field, pb.detail);
            rc = 2;
            goto out;
        }
    }
    rc = strcmp(c.cfg.bus_backend, "kafka") == 0 ? publish(&c, evs, n) : post(&c, text, len);
out:
    for (size_t i = 0; i < parsed && i < n; i++) event_clear(&evs[i]);
    free(evs);
    json_decref(doc);
    free(text);
    return cli_end(&c, rc);
}
