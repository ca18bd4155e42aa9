/*
 * test_smtp_server.c - the smtp provider against a real SMTP server
 * (smtp_sink.py on aiosmtpd, started here on a free local port): the
 * messages that arrive (read back with Python's email parser), the
 * recipients the server refuses (550 -> PERMANENT + address_invalid, 451
 * -> RETRY), header injection, connection reuse, AUTH, and STARTTLS with a
 * self-signed certificate made here with openssl.
 *
 * Skipped with "SKIP: why" when python3-aiosmtpd (or openssl) is missing,
 * unless CI=true: then missing tools fail the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "prov_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *python;      /* an interpreter that imports aiosmtpd */
static char work[64];           /* scratch directory of this run */
static char cert[128], key[128];

typedef struct sink {
    pid_t pid;
    char dir[128];
    int port;
} sink_t;

static int run(char *const argv[], bool quiet)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    int st = -1;
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) == 0) waitpid(pid, &st, 0);
    posix_spawn_file_actions_destroy(&fa);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool missing(const char *why)
{
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("%s (scripts/deps.sh --test installs it)", why);
    print_message("SKIP: %s (scripts/deps.sh --test installs it)\n", why);
    return true;
}

static int setup(void **st)
{
    (void)st;
    /* Debian's python3-aiosmtpd is for the system python; PATH may name
     * another one first. */
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < ARRAY_LEN(cands) && !python; i++) {
        char *argv[] = {(char *)cands[i], "-c", "import aiosmtpd", NULL};
        if (run(argv, true) == 0) python = cands[i];
    }
    snprintf(work, sizeof(work), "/tmp/herald-smtp-XXXXXX");
    if (!mkdtemp(work)) return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", work);
    snprintf(key, sizeof(key), "%s/key.pem", work);
    char *argv[] = {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL};
    if (run(argv, true) != 0) cert[0] = '\0';
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    if (getenv("HERALD_TEST_KEEP")) return 0;
    char *argv[] = {"rm", "-rf", work, NULL};
    run(argv, true);
    return 0;
}

static bool have_python(void) { return python || !missing("python3-aiosmtpd is not installed"); }

/* Starts a sink in <work>/<name>: with STARTTLS (the test certificate)
 * when tls, requiring AUTH as "user:pass" when auth is not NULL. */
static void sink_start(sink_t *s, const char *name, bool tls, const char *auth)
{
    static const char script[] = HERALD_TEST_DIR "/smtp_sink.py";
    snprintf(s->dir, sizeof(s->dir), "%s/%s", work, name);
    assert_int_equal(mkdir(s->dir, 0700), 0);
    char pf[160];
    snprintf(pf, sizeof(pf), "%s/port", s->dir);
    char *argv[16];
    int a = 0;
    argv[a++] = (char *)python;
    argv[a++] = (char *)script;
    argv[a++] = "--dir";
    argv[a++] = s->dir;
    argv[a++] = "--port-file";
    argv[a++] = pf;
    if (tls) {
        argv[a++] = "--cert";
        argv[a++] = cert;
        argv[a++] = "--key";
        argv[a++] = key;
    }
    if (auth) {
        argv[a++] = "--auth";
        argv[a++] = (char *)auth;
    }
    argv[a] = NULL;
    /* its log (aiosmtpd's warnings, TLS handshakes we make fail) beside its mail */
    char log[160];
    snprintf(log, sizeof(log), "%s/sink.log", s->dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(posix_spawnp(&s->pid, python, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    FILE *f = NULL;
    for (int i = 0; i < 1000 && !(f = fopen(pf, "r")); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &s->port), 1);
    fclose(f);
}

static void sink_stop(sink_t *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

/* Message i the sink stored (1-based), as its JSON summary; NULL if none. */
static json_t *sink_msg(sink_t *s, int i)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/msg-%04d.json", s->dir, i);
    return json_load_file(p, 0, NULL);
}

static int sink_count(sink_t *s)
{
    int n = 0;
    while (true) {
        json_t *m = sink_msg(s, n + 1);
        if (!m) return n;
        json_decref(m);
        n++;
    }
}

/* The stored message whose To is addr. */
static json_t *sink_find(sink_t *s, const char *addr)
{
    for (int i = 1;; i++) {
        json_t *m = sink_msg(s, i);
        if (!m) return NULL;
        const char *to = json_string_value(json_object_get(json_object_get(m, "headers"), "To"));
        if (to && strcmp(to, addr) == 0) return m;
        json_decref(m);
    }
}

static provider_set_t *open_smtp(fx_t *f, sink_t *s, const char *extra_k1, const char *extra_v1,
                                 const char *extra_k2, const char *extra_v2, const char *max)
{
    char url[64];
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", s->port);
    fx_init(f, "channel.email.providers", "mail", "provider.mail.type", "smtp", "provider.mail.url", url,
            "provider.mail.from", "herald@example.com", "provider.mail.from_name", "Herald Ops",
            "provider.mail.max_in_flight", max, "provider.mail.timeout_ms", "10000", extra_k1, extra_v1,
            extra_k2, extra_v2, NULL);
    provider_set_t *ps = NULL;
    char why[256] = "";
    if (provider_set_open(&f->cfg, NULL, CH_EMAIL, fx_done, f, &ps, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    return ps;
}

static notif_t *mail(fx_t *f, int i, const char *addr, const char *title, const char *body)
{
    notif_t *n = fx_notif(f, i, CH_EMAIL, title, "");
    n->address = HSTR(addr);
    n->body = HSTR(body);
    return n;
}

static const char *hdr(json_t *m, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(m, "headers"), name));
    return v ? v : "";
}

/* Messages arrive whole: headers decoded by Python's email package equal
 * what we sent (non-ASCII subject and sender name through RFC 2047), the
 * envelope names the recipient, and the body is multipart/alternative with
 * the text and the HTML part (escaped body, or the metadata's html). */
static void test_delivers_messages(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "plain", false, NULL);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, "provider.mail.from_name", "Hérald Öps", NULL, NULL, "4");
    static char addrs[8][64];
    for (int i = 0; i < 8; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "user%d@example.org", i);
        mail(&f, i, addrs[i], "Café ☕ is ready", "Hello <you> & co\nsecond line");
    }
    f.n[1].title = HSTR("Plain subject");
    f.n[2].metadata = HSTR("{\"html\":\"<p>Custom <b>HTML</b> é</p>\"}");
    f.n[3].title = HSTR("A very long subject that goes on and on, with ünïcödé, long enough to need "
                        "several encoded words folded over more than one header line in the message");
    fx_deliver(&f, ps, 8, 4);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        assert_int_equal(f.res[i].code, 250);
        char want[64];
        snprintf(want, sizeof(want), "n-%d@example.com", i);
        assert_string_equal(f.res[i].msg_id, want);
    }
    assert_int_equal(sink_count(&s), 8);

    json_t *m = sink_find(&s, "user0@example.org");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "mail_from")), "herald@example.com");
    json_t *rc = json_object_get(m, "rcpt_tos");
    assert_int_equal(json_array_size(rc), 1);
    assert_string_equal(json_string_value(json_array_get(rc, 0)), "user0@example.org");
    assert_string_equal(hdr(m, "Subject"), "Café ☕ is ready");
    assert_string_equal(hdr(m, "From"), "Hérald Öps <herald@example.com>");
    assert_string_equal(hdr(m, "Message-ID"), "<n-0@example.com>");
    assert_string_equal(hdr(m, "MIME-Version"), "1.0");
    assert_true(strlen(hdr(m, "Date")) > 20);
    assert_int_equal(json_integer_value(json_object_get(m, "defects")), 0);
    json_t *mp = json_object_get(m, "multiparts");
    bool alt = false;
    for (size_t k = 0; k < json_array_size(mp); k++)
        alt = alt || strcmp(json_string_value(json_array_get(mp, k)), "multipart/alternative") == 0;
    assert_true(alt);
    json_t *parts = json_object_get(m, "parts");
    assert_int_equal(json_array_size(parts), 2);
    json_t *t = json_array_get(parts, 0), *h = json_array_get(parts, 1);
    assert_string_equal(json_string_value(json_object_get(t, "type")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(t, "charset")), "utf-8");
    assert_string_equal(json_string_value(json_object_get(t, "text")), "Hello <you> & co\nsecond line");
    assert_string_equal(json_string_value(json_object_get(h, "type")), "text/html");
    assert_string_equal(json_string_value(json_object_get(h, "text")),
                        "Hello &lt;you&gt; &amp; co<br>\nsecond line");
    json_decref(m);

    m = sink_find(&s, "user1@example.org");
    assert_string_equal(hdr(m, "Subject"), "Plain subject");
    json_decref(m);
    m = sink_find(&s, "user2@example.org");
    h = json_array_get(json_object_get(m, "parts"), 1);
    assert_string_equal(json_string_value(json_object_get(h, "text")), "<p>Custom <b>HTML</b> é</p>");
    json_decref(m);
    m = sink_find(&s, "user3@example.org");
    assert_string_equal(hdr(m, "Subject"), f.n[3].title.p);
    json_decref(m);

    provider_set_close(ps);
    fx_release(&f);
    sink_stop(&s);
}

/* The server refuses recipients: 550 is PERMANENT with address_invalid,
 * 451 is RETRY; a good recipient after them still goes through. */
static void test_refused_recipients(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "refuse", false, NULL);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, NULL, NULL, NULL, NULL, "1");
    mail(&f, 0, "reject-me@example.org", "t", "b");
    mail(&f, 1, "defer-me@example.org", "t", "b");
    mail(&f, 2, "fine@example.org", "t", "b");
    fx_deliver(&f, ps, 3, 1);
    assert_int_equal(f.res[0].cls, SEND_PERMANENT);
    assert_true(f.res[0].address_invalid);
    assert_int_equal(f.res[0].code, 550);
    assert_non_null(strstr(f.res[0].error, "550 5.1.1"));
    assert_int_equal(f.res[1].cls, SEND_RETRY);
    assert_false(f.res[1].address_invalid);
    assert_int_equal(f.res[1].code, 451);
    assert_non_null(strstr(f.res[1].error, "451"));
    assert_int_equal(f.res[2].cls, SEND_OK);
    assert_int_equal(sink_count(&s), 1);
    provider_set_close(ps);
    fx_release(&f);
    sink_stop(&s);
}

/* CR/LF never splits a header: an address carrying one is refused before
 * anything is sent, a title carrying one arrives as one Subject line. */
static void test_header_injection(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "inject", false, NULL);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, NULL, NULL, NULL, NULL, "2");
    mail(&f, 0, "a@example.org\r\nBcc: evil@example.net", "t", "b");
    mail(&f, 1, "b@example.org", "Hi\r\nBcc: evil@example.net\r\n\r\nbody", "b");
    fx_deliver(&f, ps, 2, 2);
    assert_int_equal(f.res[0].cls, SEND_PERMANENT);
    assert_false(f.res[0].address_invalid);
    assert_int_equal(f.res[1].cls, SEND_OK);
    assert_int_equal(sink_count(&s), 1);
    json_t *m = sink_find(&s, "b@example.org");
    assert_non_null(m);
    json_t *names = json_object_get(m, "header_names");
    for (size_t k = 0; k < json_array_size(names); k++)
        assert_true(strcasecmp(json_string_value(json_array_get(names, k)), "Bcc") != 0);
    assert_int_equal(json_array_size(json_object_get(m, "rcpt_tos")), 1);
    assert_null(strchr(hdr(m, "Subject"), '\n'));
    assert_non_null(strstr(hdr(m, "Subject"), "Bcc: evil@example.net"));
    json_decref(m);
    provider_set_close(ps);
    fx_release(&f);
    sink_stop(&s);
}

/* 24 messages, 2 in flight: curl reuses the connections, so the server
 * sees at most 2. */
static void test_connection_reuse(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "reuse", false, NULL);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, NULL, NULL, NULL, NULL, "2");
    static char addrs[24][64];
    for (int i = 0; i < 24; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "r%d@example.org", i);
        mail(&f, i, addrs[i], "t", "b");
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fx_deliver(&f, ps, 24, 2);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int conns = 0;
    for (int i = 1; i <= 24; i++) {
        json_t *m = sink_msg(&s, i);
        assert_non_null(m);
        int c = (int)json_integer_value(json_object_get(m, "conn"));
        if (c > conns) conns = c;
        json_decref(m);
    }
    for (int i = 0; i < 24; i++) assert_int_equal(f.res[i].cls, SEND_OK);
    print_message("smtp: 24 messages over %d connections in %.0f ms\n", conns,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_true(conns >= 1 && conns <= 2);
    provider_set_close(ps);
    fx_release(&f);
    sink_stop(&s);
}

/* AUTH: the right password (from password_file) passes; a wrong one is
 * FATAL (535) and its text never shows the password. */
static void test_auth(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "auth", false, "mailer:s3cret-pw");
    char pwf[160];
    snprintf(pwf, sizeof(pwf), "%s/pw", s.dir);
    FILE *fp = fopen(pwf, "w");
    fputs("s3cret-pw\n", fp);
    fclose(fp);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, "provider.mail.username", "mailer", "provider.mail.password_file",
                                   pwf, "1");
    mail(&f, 0, "a@example.org", "t", "b");
    fx_deliver(&f, ps, 1, 1);
    assert_int_equal(f.res[0].cls, SEND_OK);
    provider_set_close(ps);
    fx_release(&f);

    ps = open_smtp(&f, &s, "provider.mail.username", "mailer", "provider.mail.password", "wrong-pw", "1");
    mail(&f, 0, "a@example.org", "t", "b");
    fx_deliver(&f, ps, 1, 1);
    assert_int_equal(f.res[0].cls, SEND_FATAL);
    assert_int_equal(f.res[0].code, 535);
    assert_null(strstr(f.res[0].error, "wrong-pw"));
    assert_int_equal(sink_count(&s), 1);
    provider_set_close(ps);
    fx_release(&f);
    sink_stop(&s);
}

/* STARTTLS with a self-signed certificate: tls=require with the
 * certificate as ca_file goes over TLS; without the CA it is FATAL (the
 * certificate does not verify); tls=require against a server without
 * STARTTLS is FATAL; tls=try there sends in the clear. */
static void test_starttls(void **st)
{
    if (!have_python()) skip();
    if (!cert[0] && missing("openssl cannot make a test certificate")) skip();
    sink_t s, plain;
    sink_start(&s, "tls", true, NULL);
    sink_start(&plain, "notls", false, NULL);
    static fx_t f;

    provider_set_t *ps = open_smtp(&f, &s, "provider.mail.tls", "require", "provider.mail.ca_file", cert, "2");
    mail(&f, 0, "a@example.org", "over tls", "b");
    fx_deliver(&f, ps, 1, 2);
    assert_int_equal(f.res[0].cls, SEND_OK);
    json_t *m = sink_find(&s, "a@example.org");
    assert_non_null(m);
    assert_true(json_is_true(json_object_get(m, "tls")));
    json_decref(m);
    provider_set_close(ps);
    fx_release(&f);

    ps = open_smtp(&f, &s, "provider.mail.tls", "require", NULL, NULL, "2");
    mail(&f, 0, "b@example.org", "t", "b");
    fx_deliver(&f, ps, 1, 2);
    assert_int_equal(f.res[0].cls, SEND_FATAL);
    assert_non_null(strstr(f.res[0].error, "TLS"));
    provider_set_close(ps);
    fx_release(&f);

    ps = open_smtp(&f, &plain, "provider.mail.tls", "require", "provider.mail.ca_file", cert, "2");
    mail(&f, 0, "c@example.org", "t", "b");
    fx_deliver(&f, ps, 1, 2);
    assert_int_equal(f.res[0].cls, SEND_FATAL);
    assert_non_null(strstr(f.res[0].error, "STARTTLS"));
    assert_int_equal(sink_count(&plain), 0);
    provider_set_close(ps);
    fx_release(&f);

    ps = open_smtp(&f, &plain, "provider.mail.tls", "try", NULL, NULL, "2");
    mail(&f, 0, "d@example.org", "t", "b");
    fx_deliver(&f, ps, 1, 2);
    assert_int_equal(f.res[0].cls, SEND_OK);
    m = sink_find(&plain, "d@example.org");
    assert_false(json_is_true(json_object_get(m, "tls")));
    json_decref(m);
    provider_set_close(ps);
    fx_release(&f);

    assert_int_equal(sink_count(&s), 1);
    sink_stop(&s);
    sink_stop(&plain);
}

/* Closing with messages in flight completes each once, as RETRY. */
static void test_close_in_flight(void **st)
{
    if (!have_python()) skip();
    sink_t s;
    sink_start(&s, "close", false, NULL);
    static fx_t f;
    provider_set_t *ps = open_smtp(&f, &s, NULL, NULL, NULL, NULL, "4");
    for (int i = 0; i < 3; i++) {
        mail(&f, i, "a@example.org", "t", "b");
        assert_int_equal(provider_set_submit(ps, &f.n[i], &f.res[i], (void *)(intptr_t)i), HR_OK);
    }
    assert_int_equal(provider_set_in_flight(ps), 3);
    provider_set_close(ps);
    assert_int_equal(f.done, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.completions[i], 1);
        assert_int_equal(f.res[i].cls, SEND_RETRY);
        assert_non_null(strstr(f.res[i].error, "shutdown"));
    }
    fx_release(&f);
    sink_stop(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivers_messages),
        cmocka_unit_test(test_refused_recipients),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_close_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
