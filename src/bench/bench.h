/*
 * bench.h - `herald bench`: measures the whole pipeline (ingest, fan-out,
 * dispatch, status events, the status sink) against the raw bus it runs on.
 * See BENCHMARKS.md for what is measured and how.
 */
#ifndef HERALD_BENCH_H
#define HERALD_BENCH_H

/* The `bench` command; argv[0] is "bench". Returns a process exit code. */
int bench_main(int argc, char **argv);

#endif
