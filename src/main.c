/*
 * main.c - the herald command line: picks the command; each one lives in
 * src/cli/cmd_<name>.c (the benchmark in src/bench/).
 */
#include "bench/bench.h"
#include "cli/cli.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the pipeline and the HTTP API"},
    {"produce", cmd_produce, "publish an event (argument, --file or stdin)"},
    {"replay", cmd_replay, "reset a consumer group to earliest or to a time"},
    {"topics", cmd_topics, "create the topics (create) or size them (plan)"},
    {"keys", cmd_keys, "create, list or revoke API keys (create | list | revoke KEY_ID)"},
    {"dlq", cmd_dlq, "list the dead-letter topic (list) or send entries again (redrive)"},
    {"bench", bench_main, "run the benchmark (make bench)"},
    {"config", cmd_config, "print the configuration reference"},
    {"version", cmd_version, "print the version"},
};

static void usage_main(FILE *f)
{
    fprintf(f, "usage: herald <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'herald <command> --help' for a command's options.\n");
}

/* glibc's allocator, before any thread starts, unless the environment sets
 * it (MALLOC_ARENA_MAX, GLIBC_TUNABLES). By default glibc gives threads
 * that meet in an arena their own, up to 8 per core (herald runs ~55
 * threads), and raises the mmap and trim thresholds to the largest block
 * freed (up to 32 MiB), so that freed large buffers stay in the heaps.
 * Fixed thresholds return them; 4 arenas share the free space of the
 * threads. 1M-user benchmark at 3000 events/s: peak RSS 261-264 -> 239-248
 * MB, no more mmap calls than ~20/s. */
static void malloc_setup(void)
{
    if (getenv("MALLOC_ARENA_MAX") || getenv("GLIBC_TUNABLES")) return;
    mallopt(M_ARENA_MAX, 4);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

int main(int argc, char **argv)
{
    malloc_setup();
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0) cmd = "version";
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage_main(stdout);
        return 0;
    }
    fprintf(stderr, "herald: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
