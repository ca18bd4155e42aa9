/*
 * fuzz_config.c - libFuzzer target: config_load_file(), the INI file an
 * operator writes. The input is the file's content; the defaults are loaded
 * first, as herald does.
 */
#include "config/config.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hlog_set_level(HLOG_OFF);
    fd = memfd_create("config", MFD_CLOEXEC);
    if (fd < 0) abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0) abort();
    if (size && pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    config_t c;
    char why[512];
    config_init(&c);
    (void)config_load_file(&c, path, why, sizeof(why));
    config_release(&c);
    return 0;
}
