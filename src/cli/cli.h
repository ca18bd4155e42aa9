/*
 * cli.h - the herald command line: one cmd_<name>.c per command, sharing one
 * preamble (cli_begin: options from the config file, the environment and
 * flags; --help) and one way to open the services (cli_open -> app_open).
 *
 * Every command returns the process exit code: 0 done, 1 failed, 2 bad
 * usage.
 */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#include "app.h"
#include "config/config.h"

#include <stdbool.h>
#include <stdio.h>

/* The options every command accepts, parsed once. */
typedef struct cli {
    config_t cfg;
    const char *url;
    const char *file;
    const char *group;
    const char *topic;
    bool earliest;
    const char *datetime;
    const char *since;          /* dlq: --since, --reason, --limit, --id, --all */
    const char *reason;
    const char *limit;
    const char *id;
    bool all;
    const char *key;            /* --key: the API key commands that call the API send */
    const char *tenant;         /* keys: --tenant, --scopes, --name */
    const char *scopes;
    const char *name;
    bool help;
    int argi;                   /* first positional argument */
} cli_t;

/* The preamble: loads the config (file named by --config, then HERALD_*
 * variables, then flags) and sets the log level. With --help prints usage
 * to stdout. Returns -1 when the command should go on, else the exit code
 * to return right away (0 after --help, 2 for a bad option; the config is
 * released then). */
int cli_begin(cli_t *c, int argc, char **argv, const char *usage);
/* Releases the config; returns rc. */
int cli_end(cli_t *c, int rc);
/* Appends "Authorization: Bearer <key>" to h for commands that call the
 * API: --key, else $HERALD_API_KEY, else the bootstrap key file
 * (auth.bootstrap_key_file, default <data_dir>/admin.key) when readable;
 * h unchanged when there is none. */
struct curl_slist;
struct curl_slist *cli_auth_header(cli_t *c, struct curl_slist *h);
/* app_open() that prints why it failed. */
hr_t cli_open(cli_t *c, bool store, bool topics, app_t **out);

/* The commands (argv[0] is the command's name). */
int cmd_serve(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_version(int argc, char **argv);

#endif
