/*
 * cli.c - the preamble every command shares (cli.h).
 */
#include "cli/cli.h"

#include "core/log.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_CONFIG = 1000, OPT_DATA_DIR, OPT_LISTEN, OPT_ROLES, OPT_BUS, OPT_BROKERS, OPT_SET,
       OPT_URL, OPT_FILE, OPT_GROUP, OPT_TOPIC, OPT_EARLIEST, OPT_DATETIME, OPT_HELP,
       OPT_SINCE, OPT_REASON, OPT_LIMIT, OPT_ID, OPT_ALL, OPT_KEY, OPT_TENANT, OPT_SCOPES,
       OPT_NAME };

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
    {"since", required_argument, NULL, OPT_SINCE},
    {"reason", required_argument, NULL, OPT_REASON},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"id", required_argument, NULL, OPT_ID},
    {"all", no_argument, NULL, OPT_ALL},
    {"key", required_argument, NULL, OPT_KEY},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"scopes", required_argument, NULL, OPT_SCOPES},
    {"name", required_argument, NULL, OPT_NAME},
    {NULL, 0, NULL, 0},
};

/* Flags that are shorthands for configuration keys. */
static const char *flag_key(int opt)
{
    switch (opt) {
    case OPT_DATA_DIR: return "data_dir";
    case OPT_LISTEN: return "http.listen";
    case OPT_ROLES: return "roles";
    case OPT_BUS: return "bus.backend";
    case OPT_BROKERS: return "kafka.bootstrap.servers";
    default: return NULL;
    }
}

/* Config file first, then the environment, then flags. 0 or exit code 2. */
static int parse(cli_t *c, int argc, char **argv)
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
        const char *key = flag_key(opt);
        if (key) {
            r = config_set(&c->cfg, key, optarg, why, sizeof(why));
        } else {
            switch (opt) {
            case OPT_CONFIG: break;
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
            case OPT_SINCE: c->since = optarg; break;
            case OPT_REASON: c->reason = optarg; break;
            case OPT_LIMIT: c->limit = optarg; break;
            case OPT_ID: c->id = optarg; break;
            case OPT_ALL: c->all = true; break;
            case OPT_KEY: c->key = optarg; break;
            case OPT_TENANT: c->tenant = optarg; break;
            case OPT_SCOPES: c->scopes = optarg; break;
            case OPT_NAME: c->name = optarg; break;
            default: config_release(&c->cfg); return 2; /* getopt said why */
            }
        }
        if (r != HR_OK) goto bad;
    }
    c->argi = optind;
    int lvl = hlog_parse_level(c->cfg.log_level);
    if (lvl >= 0) hlog_set_level(lvl);
    int fmt = hlog_parse_format(c->cfg.log_format);
    if (fmt >= 0) hlog_set_format(fmt);
    return 0;
bad:
    fprintf(stderr, "herald: %s\n", why);
    config_release(&c->cfg);
    return 2;
}

int cli_begin(cli_t *c, int argc, char **argv, const char *usage)
{
    if (parse(c, argc, argv) != 0) return 2;
    if (c->help) {
        fputs(usage, stdout);
        return cli_end(c, 0);
    }
    return -1;
}

int cli_end(cli_t *c, int rc)
{
    config_release(&c->cfg);
    return rc;
}

struct curl_slist *cli_auth_header(cli_t *c, struct curl_slist *h)
{
    char line[200];
    const char *key = c->key ? c->key : getenv("HERALD_API_KEY");
    char file_key[128] = "";
    if (!key || !*key) {
        char *path = c->cfg.auth_bootstrap_file[0] ? xstrdup(c->cfg.auth_bootstrap_file)
                                                   : xasprintf("%s/admin.key", c->cfg.data_dir);
        FILE *f = fopen(path, "r");
        free(path);
        if (f) {
            if (fgets(file_key, sizeof(file_key), f)) file_key[strcspn(file_key, "\r\n")] = '\0';
            fclose(f);
        }
        key = file_key;
    }
    if (!*key) return h;
    snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
    h = curl_slist_append(h, line);
    memset(file_key, 0, sizeof(file_key));
    memset(line, 0, sizeof(line));
    return h;
}

hr_t cli_open(cli_t *c, bool store, bool topics, app_t **out)
{
    app_open_opts_t o = {.store = store, .topics = topics};
    hr_t r = app_open(&c->cfg, &o, out);
    if (r != HR_OK) fprintf(stderr, "herald: %s\n", o.why);
    return r;
}
