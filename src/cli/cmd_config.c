/*
 * cmd_config.c - `herald config` (the configuration reference, generated
 * from the options table) and `herald version`.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_config(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    config_print_reference(stdout);
    return 0;
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("herald %s\n", HERALD_VERSION);
    return 0;
}
