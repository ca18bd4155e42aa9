/*
 * main.c - the herald command line: serve, produce, replay, topics, version.
 */
#include "app.h"
#include "bench/bench.h"
#include "bus/bus.h"
#include "config/config.h"
#include "core/log.h"
#include "http/http.h"
#include "model/event.h"
#include "stage/ingest.h"
#include "stage/stage.h"
#include "stage/topics.h"
#include "store/store.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

static void usage_main(FILE *f)
{
    fprintf(f,
            "usage: herald <command> [options]\n\n"
            "commands:\n"
            "  serve     run the pipeline and the HTTP API\n"
            "  produce   publish an event (argument, --file or stdin)\n"
            "  replay    reset a consumer group to earliest or to a time\n"
            "  topics    create the topics (create) or size them (plan)\n"
            "  bench     run the benchmark (make bench)\n"
            "  config    print the configuration reference\n"
            "  version   print the version\n\n"
            "Run 'herald <command> --help' for a command's options.\n");
}

/* Options shared by commands that load config. */
enum { OPT_CONFIG = 1000, OPT_DATA_DIR, OPT_LISTEN, OPT_ROLES, OPT_BUS, OPT_BROKERS, OPT_SET,
       OPT_URL, OPT_FILE, OPT_GROUP, OPT_TOPIC, OPT_EARLIEST, OPT_DATETIME, OPT_HELP };

static const struct option common_opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"roles", required_argument, NULL, OPT_ROLES},
    {"bus", required_argument, NULL, OPT_BUS},
    {"kafka-brokers", required_argument, NULL, OPT_BROKERS},
    {"set", required_argument, NULL, OPT_SET},
    {"url", required_argument, NULL, OPT_URL},
    {"file", required_argument, NULL, OPT_FILE},
    {"group", required_argument, NULL, OPT_GROUP},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"to-earliest", no_argument, NULL, OPT_EARLIEST},
    {"to-datetime", required_argument, NULL, OPT_DATETIME},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct cli {
    config_t cfg;
    const char *url;
    const char *file;
    const char *group;
    const char *topic;
    bool earliest;
    const char *datetime;
    bool help;
    int argi;                   /* first positional argument */
} cli_t;

/* Parses common options; config file first, then env, then flags. */
static int parse_cli(int argc, char **argv, cli_t *c)
{
    char why[512];
    memset(c, 0, sizeof(*c));
    config_init(&c->cfg);
    const char *cfgfile = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) cfgfile = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0) cfgfile = argv[i] + 9;
    }
    if (cfgfile && config_load_file(&c->cfg, cfgfile, why, sizeof(why)) != HR_OK) goto bad;
    if (config_load_env(&c->cfg, why, sizeof(why)) != HR_OK) goto bad;

    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", common_opts, NULL)) != -1) {
        hr_t r = HR_OK;
        switch (opt) {
        case OPT_CONFIG: break;
        case OPT_DATA_DIR: r = config_set(&c->cfg, "data_dir", optarg, why, sizeof(why)); break;
        case OPT_LISTEN: r = config_set(&c->cfg, "http.listen", optarg, why, sizeof(why)); break;
        case OPT_ROLES: r = config_set(&c->cfg, "roles", optarg, why, sizeof(why)); break;
        case OPT_BUS: r = config_set(&c->cfg, "bus.backend", optarg, why, sizeof(why)); break;
        case OPT_BROKERS:
            r = config_set(&c->cfg, "kafka.bootstrap.servers", optarg, why, sizeof(why));
            break;
        case OPT_SET: {
            char *eq = strchr(optarg, '=');
            if (!eq) {
                snprintf(why, sizeof(why), "--set wants KEY=VALUE, got '%s'", optarg);
                goto bad;
            }
            *eq = '\0';
            r = config_set(&c->cfg, optarg, eq + 1, why, sizeof(why));
            *eq = '=';
            break;
        }
        case OPT_URL: c->url = optarg; break;
        case OPT_FILE: c->file = optarg; break;
        case OPT_GROUP: c->group = optarg; break;
        case OPT_TOPIC: c->topic = optarg; break;
        case OPT_EARLIEST: c->earliest = true; break;
        case OPT_DATETIME: c->datetime = optarg; break;
        case OPT_HELP: c->help = true; break;
        default: config_release(&c->cfg); return 2;
        }
        if (r != HR_OK) goto bad;
    }
    c->argi = optind;
    int lvl = hlog_parse_level(c->cfg.log_level);
    if (lvl >= 0) hlog_set_level(lvl);
    return 0;
bad:
    fprintf(stderr, "herald: %s\n", why);
    config_release(&c->cfg);
    return 2;
}

static hr_t open_bus(const config_t *cfg, bus_t **bus)
{
    char *dir = xasprintf("%s/bus", cfg->data_dir);
    bus_opts_t o = {
        .backend = cfg->bus_backend,
        .dir = dir,
        .fsync = cfg->bus_fsync,
        .fsync_interval_ms = cfg->bus_fsync_interval_ms,
        .segment_bytes = cfg->bus_segment_bytes,
        .flush_interval_us = cfg->bus_flush_interval_us,
        .brokers = cfg->kafka_brokers,
        .kv = config_kafka_kv(cfg),
    };
    hr_t r = bus_open(&o, bus);
    free(dir);
    if (r != HR_OK)
        fprintf(stderr, "herald: cannot open the %s bus: %s%s\n", cfg->bus_backend, hr_str(r),
                r == HR_CONFLICT ? " (another herald owns this data dir)" : "");
    return r;
}

static hr_t open_store(const config_t *cfg, store_t **store)
{
    char *dsn = cfg->store_dsn[0] ? xstrdup(cfg->store_dsn)
                                  : xasprintf("%s/herald.db", cfg->data_dir);
    hr_t r = store_open(cfg->store_backend, dsn, store);
    if (r != HR_OK) fprintf(stderr, "herald: cannot open the store %s: %s\n", dsn, hr_str(r));
    free(dsn);
    return r;
}

static int cmd_serve(int argc, char **argv)
{
    cli_t c;
    if (parse_cli(argc, argv, &c)) return 2;
    if (c.help) {
        printf("usage: herald serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
               "                    [--roles all|ingest,fanout,dispatch:push,...,status]\n"
               "                    [--bus embedded|kafka] [--kafka-brokers HOST:PORT]\n"
               "                    [--set KEY=VALUE]...\n"
               "Runs the pipeline stages and the HTTP API until SIGTERM/SIGINT.\n"
               "Configuration keys: 'herald config'.\n");
        config_release(&c.cfg);
        return 0;
    }
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg = &c.cfg;
    int rc = 1;
    pipeline_t *pipe = NULL;
    http_server_t *http = NULL;

    if (mkdir_p(c.cfg.data_dir, 0755) != HR_OK) {
        fprintf(stderr, "herald: cannot create data dir %s\n", c.cfg.data_dir);
        goto out;
    }
    if (open_store(&c.cfg, &app.store) != HR_OK) goto out;
    if (open_bus(&c.cfg, &app.bus) != HR_OK) goto out;
    if (topics_create_all(&app) != HR_OK) goto out;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pipeline_start(&app, &pipe) != HR_OK) goto out;
    bool api = strcmp(c.cfg.roles, "all") == 0 || strstr(c.cfg.roles, "ingest") != NULL;
    if (api) {
        if (http_start(&app, c.cfg.listen, &http) != HR_OK) {
            fprintf(stderr, "herald: cannot listen on %s\n", c.cfg.listen);
            goto out;
        }
        log_info("serve", "herald %s listening on http://%s (port %d), data in %s, bus %s",
                 HERALD_VERSION, c.cfg.listen, http_port(http), c.cfg.data_dir,
                 c.cfg.bus_backend);
    }
    while (!got_signal) pause();
    log_info("serve", "signal %d: shutting down", (int)got_signal);
    rc = 0;
out:
    http_stop(http);            /* no new events */
    pipeline_stop(pipe);        /* drain batches, commit offsets */
    if (app.bus) {
        if (bus_flush(app.bus, 10000) != HR_OK) log_warn("serve", "bus flush timed out");
        bus_close(app.bus);
    }
    store_close(app.store);
    config_release(&c.cfg);
    return rc;
}

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

static int cmd_produce(int argc, char **argv)
{
    cli_t c;
    if (parse_cli(argc, argv, &c)) return 2;
    if (c.help) {
        printf("usage: herald produce [EVENT_JSON | --file FILE | < stdin]\n"
               "                      [--url http://HOST:PORT] [--bus kafka --kafka-brokers B]\n"
               "Publishes one event, or a JSON array of events. With the embedded bus the\n"
               "event goes through the running server's API (--url, default from http.listen);\n"
               "with --bus kafka it is produced straight to raw-events.\n");
        config_release(&c.cfg);
        return 0;
    }
    size_t len;
    char *text;
    if (c.argi < argc) {
        text = xstrdup(argv[c.argi]);
        len = strlen(text);
    } else if (c.file) {
        FILE *f = fopen(c.file, "rb");
        if (!f) {
            fprintf(stderr, "herald: cannot open %s\n", c.file);
            config_release(&c.cfg);
            return 2;
        }
        text = read_all(f, &len);
        fclose(f);
    } else {
        text = read_all(stdin, &len);
    }
    int rc = 1;
    /* Validate locally first: a bad event never leaves this process. */
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "herald: body: invalid JSON at line %d column %d: %s\n", jerr.line,
                jerr.column, jerr.text);
        free(text);
        config_release(&c.cfg);
        return 2;
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
    if (strcmp(c.cfg.bus_backend, "kafka") == 0) {
        app_t app;
        memset(&app, 0, sizeof(app));
        app.cfg = &c.cfg;
        if (open_bus(&c.cfg, &app.bus) != HR_OK) goto out;
        hr_t r = ingest_publish(&app, evs, (int)n);
        bus_flush(app.bus, 10000);
        bus_close(app.bus);
        if (r == HR_OK) {
            printf("{\"accepted\":%zu}\n", n);
            rc = 0;
        } else {
            fprintf(stderr, "herald: publish failed: %s\n", hr_str(r));
        }
        goto out;
    }
    char *url = c.url ? xasprintf("%s/v1/events", c.url)
                      : xasprintf("http://%s/v1/events", c.cfg.listen);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
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
out:
    for (size_t i = 0; i < parsed && i < n; i++) event_clear(&evs[i]);
    free(evs);
    json_decref(doc);
    free(text);
    config_release(&c.cfg);
    return rc;
}

static int cmd_replay(int argc, char **argv)
{
    cli_t c;
    if (parse_cli(argc, argv, &c)) return 2;
    if (c.help || !c.group || (!c.earliest && !c.datetime)) {
        printf("usage: herald replay --group G (--to-earliest | --to-datetime RFC3339)\n"
               "                     [--topic T] [--data-dir DIR | --bus kafka ...]\n"
               "Resets the group's committed offsets so it processes records again.\n"
               "Groups: fanout, dispatch-<channel>, status. Stop the group's consumers\n"
               "first (the embedded bus belongs to one process: stop 'herald serve').\n");
        config_release(&c.cfg);
        return c.help ? 0 : 2;
    }
    const char *topic = c.topic ? c.topic : names_group_topic(c.group);
    if (!topic) {
        fprintf(stderr, "herald: --topic is required for group %s\n", c.group);
        config_release(&c.cfg);
        return 2;
    }
    int64_t t = 0;
    if (c.datetime && parse_rfc3339_ms(c.datetime, &t) != HR_OK) {
        fprintf(stderr, "herald: --to-datetime: '%s' is not an RFC 3339 time\n", c.datetime);
        config_release(&c.cfg);
        return 2;
    }
    bus_t *bus = NULL;
    int rc = 1;
    if (open_bus(&c.cfg, &bus) == HR_OK) {
        hr_t r = bus_group_reset(bus, c.group, topic, t);
        if (r == HR_OK) {
            printf("group %s on %s reset to %s\n", c.group, topic,
                   c.earliest ? "earliest" : c.datetime);
            rc = 0;
        } else {
            fprintf(stderr, "herald: reset failed: %s\n", hr_str(r));
        }
        bus_close(bus);
    }
    config_release(&c.cfg);
    return rc;
}

static int cmd_topics(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "plan") == 0) return topics_plan_main(argc - 1, argv + 1);
    cli_t c;
    if (parse_cli(argc, argv, &c)) return 2;
    if (c.help || c.argi >= argc || strcmp(argv[c.argi], "create") != 0) {
        printf("usage: herald topics create [--bus kafka --kafka-brokers B] [--set topics.*=...]\n"
               "       herald topics plan --events-per-sec N --fanout F [...]\n");
        config_release(&c.cfg);
        return c.help ? 0 : 2;
    }
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg = &c.cfg;
    int rc = 1;
    if (open_bus(&c.cfg, &app.bus) == HR_OK) {
        if (topics_create_all(&app) == HR_OK) {
            printf("topics ready on the %s bus\n", c.cfg.bus_backend);
            rc = 0;
        }
        bus_close(app.bus);
    }
    config_release(&c.cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "produce") == 0) return cmd_produce(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0) return cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "topics") == 0) return cmd_topics(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return bench_main(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0) {
        config_print_reference(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("herald %s\n", HERALD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage_main(stdout);
        return 0;
    }
    fprintf(stderr, "herald: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
