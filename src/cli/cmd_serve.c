/*
 * cmd_serve.c - `herald serve`: runs the stages and the HTTP API the roles
 * name until SIGTERM or SIGINT, then stops gracefully and exits 0.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (threads inherit
 * the mask of the thread that creates them, so they are blocked before any
 * service starts) and the main thread takes them with sigwait(). A signal
 * that arrives while the services start stays pending and is taken then:
 * there is no window between checking a flag and going to sleep.
 */
#include "cli/cli.h"

#include "core/log.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

static const char usage[] =
    "usage: herald serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
    "                    [--roles all|ingest,fanout,dispatch:push,...,status]\n"
    "                    [--bus embedded|kafka] [--kafka-brokers HOST:PORT]\n"
    "                    [--set KEY=VALUE]...\n"
    "Runs the pipeline stages and the HTTP API until SIGTERM/SIGINT.\n"
    "Configuration keys: 'herald config'.\n";

int cmd_serve(int argc, char **argv)
{
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    rc = 1;
    app_t *app = NULL;
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    /* a shell starts background jobs with SIGINT ignored: take it anyway */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    /* Opening may take long (a Kafka cluster that does not answer): the
     * bus's threads start with the signals blocked, while this thread
     * keeps their default action, so Ctrl-C still ends a stuck start. */
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    hr_t r = cli_open(&c, true, true, &app);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != HR_OK) goto out;

    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    char why[256];
    if (app_start_services(app, why, sizeof(why)) != HR_OK) {
        fprintf(stderr, "herald: %s\n", why);
        goto out;
    }
    if (app_http_port(app))
        log_info("serve", "herald %s listening on http://%s (port %d), data in %s, bus %s",
                 HERALD_VERSION, c.cfg.listen, app_http_port(app), c.cfg.data_dir,
                 c.cfg.bus_backend);
    else
        log_info("serve", "herald %s running roles %s, data in %s, bus %s", HERALD_VERSION,
                 c.cfg.roles, c.cfg.data_dir, c.cfg.bus_backend);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    log_info("serve", "signal %d (%s): shutting down", sig, sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    app_close(app);
    return cli_end(&c, rc);
}
