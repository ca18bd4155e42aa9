/*
 * cmd_replay.c - `herald replay`: resets a consumer group's committed
 * offsets so that it processes records again.
 */
#include "cli/cli.h"

#include "model/event.h"

#include <stdio.h>

static const char usage[] =
    "usage: herald replay --group G (--to-earliest | --to-datetime RFC3339)\n"
    "                     [--topic T] [--data-dir DIR | --bus kafka ...]\n"
    "Resets the group's committed offsets so it processes records again.\n"
    "Groups: fanout, dispatch-<channel>, <channel>-retry-30s|5m|30m, status.\n"
    "Stop the group's consumers\n"
    "first (the embedded bus belongs to one process: stop 'herald serve').\n";

int cmd_replay(int argc, char **argv)
{
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    if (!c.group || (!c.earliest && !c.datetime)) {
        fputs(usage, stdout);
        return cli_end(&c, 2);
    }
    const char *topic = c.topic ? c.topic : names_group_topic(c.group);
    if (!topic) {
        fprintf(stderr, "herald: --topic is required for group %s\n", c.group);
        return cli_end(&c, 2);
    }
    int64_t t = 0;
    if (c.datetime && parse_rfc3339_ms(c.datetime, &t) != HR_OK) {
        fprintf(stderr, "herald: --to-datetime: '%s' is not an RFC 3339 time\n", c.datetime);
        return cli_end(&c, 2);
    }
    app_t *app = NULL;
    rc = 1;
    if (cli_open(&c, false, false, &app) == HR_OK) {
        hr_t r = bus_group_reset(app->bus, c.group, topic, t);
        if (r == HR_OK) {
            printf("group %s on %s reset to %s\n", c.group, topic,
                   c.earliest ? "earliest" : c.datetime);
            rc = 0;
        } else {
            fprintf(stderr, "herald: reset failed: %s\n", hr_str(r));
        }
        app_close(app);
    }
    return cli_end(&c, rc);
}
