/*
 * cmd_topics.c - `herald topics create` (every topic herald uses, with the
 * configured partitions, replication and retention) and `herald topics
 * plan` (the sizing model, stage/topics_plan.c).
 */
#include "cli/cli.h"

#include "stage/topics.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: herald topics create [--bus kafka --kafka-brokers B] [--set topics.*=...]\n"
    "       herald topics plan --events-per-sec N --fanout F [...]\n";

int cmd_topics(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "plan") == 0) return topics_plan_main(argc - 1, argv + 1);
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    if (c.argi >= argc || strcmp(argv[c.argi], "create") != 0) {
        fputs(usage, stdout);
        return cli_end(&c, 2);
    }
    app_t *app = NULL;
    rc = 1;
    if (cli_open(&c, false, true, &app) == HR_OK) {
        printf("topics ready on the %s bus\n", c.cfg.bus_backend);
        rc = 0;
        app_close(app);
    }
    return cli_end(&c, rc);
}
