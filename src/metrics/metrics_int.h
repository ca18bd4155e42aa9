/*
 * metrics_int.h - what the files of src/metrics/ share. Not for use outside
 * src/metrics/.
 *
 *   metrics.c     the counter registry and the list as a table
 *   exposition.c  collecting a scrape, the text format and its parser
 *   process.c     the process_* values, from /proc/self
 */
#ifndef HERALD_METRICS_INT_H
#define HERALD_METRICS_INT_H

/* What the Prometheus client libraries call the process collector. A value
 * that could not be read is NaN. */
typedef struct metrics_process {
    double cpu_s;               /* user + system */
    double rss_bytes;
    double vm_bytes;
    double open_fds;
    double max_fds;             /* the soft limit; +Inf when unlimited */
    double start_time_s;        /* since the Unix epoch */
} metrics_process_t;

/* Reads the calling process's figures. Any thread; a few system calls. */
void metrics_process_read(metrics_process_t *p);

#endif
