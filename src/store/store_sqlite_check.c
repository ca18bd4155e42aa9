/*
 * store_sqlite_check.c - finding damage in the SQLite files instead of
 * serving a silently shortened store: SQLite's error log routed to
 * herald's log, a check of the write-ahead log before SQLite reads it, and
 * a time-bounded PRAGMA quick_check.
 *
 * DESIGN
 * Why our own WAL check: when a frame of the WAL fails its checksum, SQLite's
 * recovery ends the log there and silently drops every later frame,
 * committed transactions included (SQLite logs only "recovered N frames").
 * Frames are checksummed in a chain and carry the WAL header's salts, so a
 * frame past the break that still carries the current salts and marks a
 * commit proves that committed data lies beyond the damage; a clean WAL
 * (even one being rewritten after a checkpoint, whose stale frames carry
 * old salts, or one torn by a crash in the middle of its last append)
 * never shows that. The format is SQLite's documented WAL format
 * (https://www.sqlite.org/fileformat2.html#walformat); nothing in the
 * SQLite API exposes this check.
 */
#include "store/store_sqlite_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG SQ_LOG

/* ---- SQLite's error log ---- */

/* SQLite reports corruption here before it answers SQLITE_CORRUPT. */
static _Atomic uint64_t corrupt_reports;

/* At most LOG_BURST lines per LOG_WINDOW_MS; the rest are counted and
 * summarised when the window ends. */
#define LOG_BURST 20
#define LOG_WINDOW_MS 10000

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t log_start_ms;
static int log_lines;
static long long log_dropped;

static void sqlite_log(void *arg, int code, const char *msg)
{
    (void)arg;
    int prim = code & 0xff;
    if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB) atomic_fetch_add(&corrupt_reports, 1);
    pthread_mutex_lock(&log_mu);
    int64_t now = hclock_now_ms();
    if (now - log_start_ms >= LOG_WINDOW_MS || now < log_start_ms) {
        if (log_dropped)
            log_warn(LOG, "sqlite: %lld more messages in the last %d s", log_dropped, LOG_WINDOW_MS / 1000);
        log_start_ms = now;
        log_lines = 0;
        log_dropped = 0;
    }
    bool say = log_lines < LOG_BURST;
    if (say) log_lines++;
    else log_dropped++;
    pthread_mutex_unlock(&log_mu);
    if (!say) return;
    if (prim == SQLITE_NOTICE)
        log_info(LOG, "sqlite: %s", msg);
    else if (prim == SQLITE_WARNING || prim == SQLITE_BUSY || prim == SQLITE_LOCKED || prim == SQLITE_SCHEMA ||
             prim == SQLITE_CONSTRAINT)
        log_warn(LOG, "sqlite (%d): %s", code, msg);
    else
        log_error(LOG, "sqlite (%d): %s", code, msg);
}

void sq_log_install(void)
{
    /* Only possible before SQLite initialises; the first store_open in the
     * process does it, before any connection. */
    int rc = sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL);
    if (rc != SQLITE_OK) log_debug(LOG, "cannot install SQLite's error log: %s", sqlite3_errstr(rc));
}

uint64_t sq_corrupt_reports(void) { return atomic_load(&corrupt_reports); }

/* ---- the WAL ---- */

#define WAL_HDR 32
#define FRAME_HDR 24

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), continuing s[2];
 * big: the words are big-endian (magic 0x377f0683), else little-endian. */
static void wal_cksum(bool big, const unsigned char *d, size_t n, uint32_t s[2])
{
    uint32_t s0 = s[0], s1 = s[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint32_t x0, x1;
        if (big) {
            x0 = be32(d + i);
            x1 = be32(d + i + 4);
        } else {
            x0 = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
            x1 = (uint32_t)d[i + 4] | (uint32_t)d[i + 5] << 8 | (uint32_t)d[i + 6] << 16 |
                 (uint32_t)d[i + 7] << 24;
        }
        s0 += x0 + s1;
        s1 += x1 + s0;
    }
    s[0] = s0;
    s[1] = s1;
}

bool sq_wal_damaged(const unsigned char *w, size_t len, char *why, size_t why_len)
{
    why[0] = '\0';
    if (len <= WAL_HDR) return false; /* empty, or a header without frames */
    uint32_t magic = be32(w), psz = be32(w + 8);
    bool big = magic == 0x377f0683;
    bool hdr_ok = (magic & 0xfffffffe) == 0x377f0682 && be32(w + 4) == 3007000 && psz >= 512 &&
                  psz <= 65536 && (psz & (psz - 1)) == 0;
    uint32_t s[2] = {0, 0};
    if (hdr_ok) {
        wal_cksum(big, w, 24, s);
        hdr_ok = s[0] == be32(w + 24) && s[1] == be32(w + 28);
    }
    if (!hdr_ok) {
        snprintf(why, why_len, "the WAL header is damaged: SQLite would ignore all %zu bytes of frames", len - WAL_HDR);
        return true;
    }
    size_t fsz = FRAME_HDR + psz, nframes = (len - WAL_HDR) / fsz;
    uint32_t salt1 = be32(w + 16), salt2 = be32(w + 20);
    size_t valid = 0, last_commit = 0;
    for (; valid < nframes; valid++) {
        const unsigned char *f = w + WAL_HDR + valid * fsz;
        if (be32(f + 8) != salt1 || be32(f + 12) != salt2 || be32(f) == 0) break;
        wal_cksum(big, f, 8, s);
        wal_cksum(big, f + FRAME_HDR, psz, s);
        if (s[0] != be32(f + 16) || s[1] != be32(f + 20)) break;
        if (be32(f + 4) != 0) last_commit = valid + 1;
    }
    /* Past the break: frames of this WAL generation that end a transaction.
     * The damaged frame itself is not counted: a commit frame torn by a
     * power loss (WAL not yet synced) looks the same and loses nothing
     * that was durable. */
    size_t lost_commits = 0, last = 0;
    for (size_t k = valid + 1; k < nframes; k++) {
        const unsigned char *f = w + WAL_HDR + k * fsz;
        if (be32(f + 8) == salt1 && be32(f + 12) == salt2 && be32(f + 4) != 0) {
            lost_commits++;
            last = k + 1;
        }
    }
    if (lost_commits == 0) return false;
    snprintf(why, why_len,
             "WAL frame %zu of %zu is damaged; SQLite would drop frames %zu..%zu (%zu committed "
             "transaction(s))",
             valid + 1, nframes, last_commit + 1, last, lost_commits);
    return true;
}

hr_t sq_wal_check(const char *db_path, char *why, size_t why_len)
{
    why[0] = '\0';
    char *wal = xasprintf("%s-wal", db_path);
    hr_t r = HR_OK;
    unsigned char *data = NULL;
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) log_warn(LOG, "cannot read %s: %s", wal, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= WAL_HDR) goto out;
    size_t len = (size_t)st.st_size;
    data = xmalloc(len);
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, data + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    char detail[256];
    if (!sq_wal_damaged(data, got, detail, sizeof(detail))) goto out;
    /* Keep the damaged log: SQLite rewrites it once the database is used. */
    char *keep = xasprintf("%s.damaged-%lld", wal, (long long)hclock_now_ms());
    int kfd = open(keep, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool kept = kfd >= 0 && write(kfd, data, got) == (ssize_t)got && fsync(kfd) == 0;
    if (kfd >= 0) close(kfd);
    else kept = errno == EEXIST; /* the same log, copied this millisecond */
    snprintf(why, why_len, "%s: %s (a copy is in %s)", wal, detail, kept ? keep : "nowhere: copying failed");
    free(keep);
    r = HR_ERR;
out:
    if (fd >= 0) close(fd);
    free(data);
    free(wal);
    return r;
}

/* ---- quick_check ---- */

static int past_deadline(void *arg)
{
    return hclock_mono_ns() >= *(const int64_t *)arg;
}

hr_t sq_quick_check(sqlite3 *db, const char *path, int time_ms, char *why, size_t why_len)
{
    why[0] = '\0';
    if (time_ms <= 0) {
        log_info(LOG, "%s: integrity check skipped (store.check_ms = 0)", path);
        return HR_OK;
    }
    int64_t t0 = hclock_mono_ns(), deadline = t0 + (int64_t)time_ms * 1000000;
    sqlite3_progress_handler(db, 10000, past_deadline, &deadline);
    sqlite3_stmt *st = NULL;
    hr_t r = HR_OK;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(5)", -1, &st, NULL);
    size_t used = 0;
    int problems = 0;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") == 0) continue;
        problems++;
        if (used < why_len)
            used += (size_t)snprintf(why + used, why_len - used, "%s%s", problems > 1 ? "; " : "",
                                     line ? line : "?");
    }
    for (char *c = why; *c; c++)
        if (*c == '\n') *c = ' '; /* one log line */
    int rc_step = rc;
    sqlite3_finalize(st);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    long long ms = (long long)((hclock_mono_ns() - t0) / 1000000);
    if ((rc_step & 0xff) == SQLITE_INTERRUPT) {
        struct stat sb;
        long long mib = stat(path, &sb) == 0 ? (long long)(sb.st_size >> 20) : -1;
        log_warn(LOG, "%s: integrity check stopped after %lld ms (store.check_ms) on a %lld MiB "
                      "database: not checked completely",
                 path, ms, mib);
        if (problems == 0) return HR_OK;
    } else if (rc_step != SQLITE_DONE && problems == 0) {
        snprintf(why, why_len, "quick_check failed: %s", sqlite3_errstr(rc_step));
        r = HR_ERR;
    }
    if (problems > 0) r = HR_ERR;
    if (r == HR_OK) log_info(LOG, "%s: integrity check passed (%lld ms)", path, ms);
    return r;
}
