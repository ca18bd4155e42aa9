/*
 * tmpfs_private.h - a small tmpfs for disk-full tests, mounted in a mount
 * namespace of the test process only, so it disappears with the process
 * whatever happens to the test.
 *
 * As root, unshare(CLONE_NEWNS) is enough; otherwise an unprivileged user
 * namespace maps the caller to root inside it (where the kernel allows
 * them). Call while the process is single-threaded - first thing in main():
 * a user namespace cannot be entered by a threaded process.
 */
#ifndef HERALD_TEST_TMPFS_PRIVATE_H
#define HERALD_TEST_TMPFS_PRIVATE_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static inline int tmpfs_put_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, text, strlen(text));
    close(fd);
    return w == (ssize_t)strlen(text) ? 0 : -1;
}

/* Mounts a tmpfs of bytes at dir (which exists). 0, or -1 with why filled
 * (the test then skips, saying why). */
static inline int tmpfs_private_mount(const char *dir, size_t bytes, char *why, size_t why_len)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWNS) != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            snprintf(why, why_len, "no mount namespace for a tmpfs (%s): not root and no user namespaces",
                     strerror(errno));
            return -1;
        }
        char map[64];
        tmpfs_put_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        if (tmpfs_put_file("/proc/self/uid_map", map) != 0) {
            snprintf(why, why_len, "cannot map the user into a namespace: %s", strerror(errno));
            return -1;
        }
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        tmpfs_put_file("/proc/self/gid_map", map);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, why_len, "cannot make mounts private: %s", strerror(errno));
        return -1;
    }
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%zu,mode=0700", bytes);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        snprintf(why, why_len, "cannot mount a tmpfs on %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

#endif
