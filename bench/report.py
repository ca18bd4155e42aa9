#!/usr/bin/env python3
"""Turns bench/results/*.json (written by `herald bench`) into BENCHMARKS.md
and a PNG chart (gnuplot) of throughput and p99 latency against offered load.

Usage: bench/report.py RESULTS_DIR BENCHMARKS.md CHART.png
Standard library only; the chart needs gnuplot (skipped, with a note, if absent).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ORDER = ["embedded-null", "embedded-file", "kafka-null"]
CHANNELS = ["push", "inapp", "email", "sms"]
TITLES = {
    "embedded-null": "embedded bus, sandbox null",
    "embedded-file": "embedded bus, sandbox file",
    "kafka-null": "Kafka (1 KRaft broker), sandbox null",
}


def load(results):
    runs = {}
    for name in os.listdir(results):
        if name.endswith(".json"):
            with open(os.path.join(results, name)) as f:
                try:
                    d = json.load(f)
                except ValueError:
                    continue
            runs[d.get("label", name[:-5])] = d
    return runs


def k(n):
    """12345 -> '12.3k', 1234567 -> '1.23M'."""
    if n is None:
        return "-"
    n = float(n)
    if n >= 1e6:
        return "%.2fM" % (n / 1e6)
    if n >= 1e4:
        return "%.0fk" % (n / 1e3)
    if n >= 1e3:
        return "%.1fk" % (n / 1e3)
    return "%.0f" % n


def ms(x):
    if x is None:
        return "-"
    return "%.0f" % x if x >= 100 else "%.1f" % x


def mb(b):
    return "-" if not b else "%.0f MB" % (b / 1048576.0)


def g(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def lat_cell(lat, ch, q="p99_ms"):
    return ms(g(lat, ch, q))


def p99_at(d, pct, ch="push"):
    for p in d.get("sweep", []) if d else []:
        if abs(p["pct"] - pct) < 0.5:
            return g(p, "latency", ch, "p99_ms")
    return None


def load_cell(d):
    a = g(d, "loadavg_start", "1m")
    if a is None:
        a = g(d, "machine", "loadavg_1m")
    b = g(d, "loadavg_end", "1m")
    return "%s → %s" % ("-" if a is None else "%.1f" % a, "-" if b is None else "%.1f" % b)


def summary_table(runs):
    rows = [
        "| mode | **sustained** notifications/s (events/s) | burst notifications/s | herald ÷ raw bus "
        "(sustained / burst) | CPU s per million notifications: sustained, every stage / burst window / "
        "burst counted until the sink caught up / raw bus | status sink rows/s (sustained / alone) "
        "| push p99 at ½ sustained | peak RSS | load average (start → end) · other processes' cores "
        "at the sustained step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ORDER:
        d = runs.get(label)
        if not d:
            continue
        if d.get("skipped"):
            rows.append("| %s | skipped: %s | | | | | | | |" % (TITLES[label], d["skipped"]))
            continue
        m = d.get("max", {})
        su = d.get("sustained") or {}
        raw = d.get("raw")
        rb = d.get("ratio_vs_raw_burst")
        rs = d.get("ratio_vs_raw") if su else None
        if rb is None and not su:
            rb = d.get("ratio_vs_raw")  # results from before the sustained search
        drained = m.get("cpu_s_per_m_drained")
        half = p99_at(d, 50) if d.get("sweep_base") == "sustained" else None
        oc = su.get("others_cores")
        rows.append(
            "| %s | **%s** (%s) | %s | %s / %s | **%s** / %.1f / %s / %s | %s / %s | %s | %s | %s · %s |"
            % (
                TITLES[label],
                k(su.get("notifs_per_s")) if su else "-",
                k(su.get("events_per_s")) if su else "-",
                k(m.get("notifs_per_s")),
                ("**%.0f %%**" % (100 * rs)) if rs is not None else "-",
                ("%.0f %%" % (100 * rb)) if rb else "-",
                ("%.1f" % su["cpu_s_per_m"]) if su.get("cpu_s_per_m") else "-",
                m.get("cpu_s_per_m", 0),
                ("%.1f" % drained) if drained else "-",
                ("%.1f" % raw["cpu_s_per_m"]) if raw else "-",
                k(su.get("status_rows_per_s")) if su.get("status_rows_per_s") else "-",
                k(m.get("sink_rows_per_s_after")) if m.get("sink_rows_per_s_after") else "-",
                ("%s ms" % ms(half)) if half is not None else "-",
                mb(d.get("peak_rss_bytes")),
                load_cell(d),
                ("%.2f" % oc) if oc is not None and oc >= 0 else "-",
            )
        )
    return "\n".join(rows)


THREAD_GROUPS = ["ingest", "fanout", "dispatch", "retry", "status", "store-ckpt", "bus-io", "main",
                 "librdkafka", "other"]


def stages_table(runs):
    """CPU-µs per notification by thread group: at the sustained step and
    in the burst window."""
    have = [(l, runs[l]) for l in ORDER if l in runs and not runs[l].get("skipped")
            and (g(runs[l], "sustained", "threads") or g(runs[l], "max", "threads"))]
    if not have:
        return "(no per-thread figures in these results)"
    groups = [x for x in THREAD_GROUPS
              if any(g(d, "sustained", "threads", x) or g(d, "max", "threads", x) for _, d in have)]
    rows = ["| mode | window | " + " | ".join(groups) + " | total |",
            "| --- | --- | " + " | ".join("---:" for _ in groups) + " | ---: |"]
    for label, d in have:
        for name, th in (("sustained step", g(d, "sustained", "threads")),
                         ("burst window", g(d, "max", "threads"))):
            if not th:
                continue
            vals = [g(th, x, "cpu_us_per_notif") for x in groups]
            tot = sum(v for v in vals if v)
            rows.append("| %s | %s | %s | **%.1f** |" % (
                TITLES[label], name, " | ".join("-" if v is None else "%.2f" % v for v in vals), tot))
    return "\n".join(rows)


def steps_table(runs):
    out = []
    for label in ORDER:
        d = runs.get(label)
        steps = g(d, "sustained", "steps") if d and not d.get("skipped") else None
        if not steps:
            continue
        out += ["**%s**: %d steps of %.0f s measured after %.0f s unmeasured; precision %.0f %%." % (
                    TITLES[label], len(steps), g(d, "sustained", "hold_s", default=0),
                    g(d, "sustained", "warmup_s", default=0), 100 * g(d, "sustained", "tolerance", default=0)),
                "",
                "| # | drained first (s) | offered notifications/s | settled/s | status rows/s | backlog growth per s "
                "(ingest / fan-out / dispatch / sink) | herald cores | CPU s per million | other processes' cores "
                "| load average | kept up? |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for i, st in enumerate(steps, 1):
            sg = st.get("stages", {})
            dr = st.get("drained_s")
            out.append("| %d | %s | %s | %s | %s | %s | %.2f | %.1f | %s | %s | %s |" % (
                i, "-" if dr is None else ("fresh herald" if dr < 0 else "%.1f" % dr),
                k(st.get("offered_notifs_per_s")), k(st.get("delivered_per_s")),
                k(st.get("status_rows_per_s")),
                " / ".join("%.0f" % g(sg, x, "growth_per_s", default=0) for x in ("ingest", "fanout", "dispatch", "status")),
                st.get("cpu_cores", 0), st.get("cpu_s_per_m", 0),
                ("%.2f" % st["others_cores"]) if st.get("others_cores", -1) >= 0 else "-",
                ("%.1f" % g(st, "loadavg_start", "1m")) if g(st, "loadavg_start", "1m") is not None else "-",
                "yes" if st.get("kept_up") else "no: " + st.get("why_not", "")))
        out.append("")
    return "\n".join(out) if out else "(no sustained search in these results)"


def sweep_table(runs):
    rows = [
        "| mode | offered (% of the sustained rate, or of the max) | offered notifications/s | settled/s | "
        + " | ".join("%s p50 / p99 / max (ms)" % c for c in CHANNELS)
        + " | sink backlog at start |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in CHANNELS) + " | ---: |",
    ]
    for label in ORDER:
        d = runs.get(label)
        if not d or d.get("skipped"):
            continue
        for p in d.get("sweep", []):
            lat = p.get("latency", {})
            rows.append(
                "| %s | %.0f %% of %s | %s | %s | %s | %s |"
                % (
                    TITLES[label],
                    p["pct"],
                    d.get("sweep_base", "max"),
                    k(p.get("offered_notifs_per_s")),
                    k(p.get("notifs_per_s")),
                    " | ".join(
                        "%s / **%s** / %s" % (lat_cell(lat, c, "p50_ms"), lat_cell(lat, c), lat_cell(lat, c, "max_ms"))
                        for c in CHANNELS
                    ),
                    k(p.get("status_lag_at_start")),
                )
            )
    return "\n".join(rows)


def max_latency_table(runs):
    rows = [
        "| mode | " + " | ".join("%s p50 / p95 / p99 / max (ms)" % c for c in CHANNELS) + " |",
        "| --- | " + " | ".join("---:" for _ in CHANNELS) + " |",
    ]
    for label in ORDER:
        d = runs.get(label)
        if not d or d.get("skipped"):
            continue
        lat = g(d, "max", "latency", default={})
        rows.append(
            "| %s | %s |"
            % (
                TITLES[label],
                " | ".join(
                    "%s / %s / %s / %s"
                    % tuple(lat_cell(lat, c, q) for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
                    for c in CHANNELS
                ),
            )
        )
    return "\n".join(rows)


def targets(runs):
    out = []
    e = runs.get("embedded-null", {})
    kf = runs.get("kafka-null", {})

    def line(goal, got, ok):
        out.append("| %s | %s | %s |" % (goal, got, "met" if ok else "**not met**"))

    out.append("| goal | measured | |")
    out.append("| --- | --- | --- |")
    if e and not e.get("skipped"):
        n = g(e, "sustained", "notifs_per_s", default=0)
        line("embedded: sustained ≥ 300,000 notifications/s, the sink keeping up (goal 1,000,000/s)",
             "%s/s (burst %s/s)" % (k(n), k(g(e, "max", "notifs_per_s"))), n >= 3e5)
        r = e.get("ratio_vs_raw") if e.get("sustained") else None
        line("embedded: sustained ≥ 60 % of the raw embedded bus", "%.0f %%" % (100 * (r or 0)), (r or 0) >= 0.6)
        s = g(e, "sustained", "status_rows_per_s", default=0)
        alone = g(e, "max", "sink_rows_per_s_after")
        sk = runs.get("sink-sqlite") or {}
        parts = []
        if alone:
            parts.append("%s rows/s alone after the burst" % k(alone))
        if (sk.get("total") or {}).get("rows_per_s"):
            parts.append("%s rows/s alone through `herald bench sink`, %s rows" % (
                k(sk["total"]["rows_per_s"]), k(sk["total"].get("rows"))))
        lg = runs.get("sink-sqlite-lag") or {}
        if (lg.get("total") or {}).get("rows_per_s"):
            parts.append("%s rows/s with late ids (`--lag`)" % k(lg["total"]["rows_per_s"]))
        alone_txt = "; ".join(parts) if parts else "-"
        line("status sink: ≥ 300k rows/s sustained into SQLite",
             "%s rows/s in the pipeline; %s" % (k(s), alone_txt), s >= 3e5)
        p = p99_at(e, 50) if e.get("sweep_base") == "sustained" else None
        line("embedded: p99 event → push delivered < 100 ms at half the sustained rate", "%s ms" % ms(p),
             p is not None and p < 100)
        rss = e.get("peak_rss_bytes") or 0
        line("RSS < 256 MB with {:,} users (embedded)".format(g(e, "mode", "users", default=0)), mb(rss),
             rss < 256 * 1048576)
    if kf and not kf.get("skipped"):
        r = kf.get("ratio_vs_raw") or 0
        line("Kafka: ≥ 50 % of the raw broker rate", "%.0f %%" % (100 * r), r >= 0.5)
        p = p99_at(kf, 50) if kf.get("sweep_base") == "sustained" else None
        line("Kafka: p99 event → push delivered < 100 ms at half the sustained rate", "%s ms" % ms(p),
             p is not None and p < 100)
        rss = kf.get("peak_rss_bytes") or 0
        line("RSS < 256 MB with {:,} users (Kafka)".format(g(kf, "mode", "users", default=0)), mb(rss),
             rss < 256 * 1048576)
    elif kf.get("skipped"):
        out.append("| Kafka mode | skipped: %s | |" % kf["skipped"])
    return "\n".join(out)


PUSH_LABELS = ["push-apns-0ms", "push-apns-20ms"]


def providers_section(runs):
    """The HTTP engine alone and the push pipeline, both against the fake
    APNs of tests/fakeprov (http-engine.json, push-apns-*.json)."""
    out = ["## Push over HTTP/2: the engine alone and the pipeline", ""]
    e = runs.get("http-engine")
    if not e:
        out.append("(no http-engine result: `HERALD_BENCH_ONLY=http-engine make bench`)")
    elif e.get("skipped"):
        out.append("Engine alone: skipped: %s." % e["skipped"])
    else:
        out += [
            "**The HTTP engine alone** (`herald bench http-engine`): one thread drives `src/provider/http.c`'s "
            "libcurl multi engine with %s requests in flight against the fake APNs (`tests/fakeprov`, Go, "
            "`GOMAXPROCS=1`, recording off) over HTTP/2 + TLS: APNs-sized alert POSTs to `/3/device/<token>`, no "
            "pipeline and no provider logic. Commit %s. CPU is the bench process's (getrusage: the engine and libcurl), "
            "the fake's from its own getrusage; connections are those the engine opened (`http_engine_stats`) and "
            "the fake accepted; streams are the most the fake saw in flight on one connection. "
            "1-minute load average when it started: %s (%s cores)."
            % ("{:,}".format(g(e, "mode", "in_flight", default=0)), e.get("commit", "?"),
               g(e, "machine", "loadavg_1m", default="?"), g(e, "machine", "cores", default="?")),
            "",
            "| injected delay | requests | requests/s | CPU s per million (engine / fake) | connections (engine / fake) "
            "| max concurrent streams |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in e.get("runs", []):
            out.append("| %d ms | %s | **%s** | %.1f / %.1f | %d / %d | %d |" % (
                r["delay_ms"], k(r["requests"]), k(r["requests_per_s"]), r["cpu_s_per_m"], r["fake_cpu_s_per_m"],
                r["connections"], r["fake_tls_connections"], r["max_concurrent_streams"]))
    out.append("")
    push = [runs[l] for l in PUSH_LABELS if l in runs]
    if not push:
        out.append("(no push pipeline result: it needs the APNs provider; `HERALD_BENCH_ONLY=\"push-apns-0ms "
                   "push-apns-20ms\" make bench`)")
    elif all(d.get("skipped") for d in push):
        out.append("Push pipeline: skipped: %s." % push[0]["skipped"])
    else:
        d0 = next(d for d in push if not d.get("skipped"))
        out += [
            "**The push pipeline** (`herald bench --push-only --device-platform apns --fake-control ...`): the "
            "whole pipeline of the tables above, embedded bus, every event a push to users whose one device is an "
            "APNs token, delivered by the APNs provider (token auth, ES256 JWT from a test .p8; TLS with the fake's "
            "CA) to the fake APNs, which verifies every token. %s users; closed loop as in **max**, with at most %s "
            "notifications in flight (so the latency is mostly that queue). CPU is the `herald serve` process's. "
            "1-minute load average when the runs started: %s."
            % ("{:,}".format(g(d0, "mode", "users", default=0)), "{:,}".format(g(d0, "max", "window_notifs", default=0)),
               " / ".join(str(g(d, "machine", "loadavg_1m", default="?")) for d in push)),
            "",
            "| injected delay | notifications/s delivered | herald CPU s per million | fake CPU s per million "
            "| APNs connections | max concurrent streams | push p50 / p99 (ms) | settings |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for d in push:
            if d.get("skipped"):
                out.append("| %s | skipped: %s | | | | | | |" % (d.get("label"), d["skipped"]))
                continue
            m = d.get("max", {})
            f = d.get("fake", {})
            lat = m.get("latency", {})
            out.append("| %s ms | **%s** | %.1f | %.1f | %s | %s | %s / %s | `%s` |" % (
                f.get("delay_ms", "?"), k(m.get("notifs_per_s")), m.get("cpu_s_per_m", 0),
                f.get("fake_cpu_s_per_m", 0), f.get("tls_connections", "-"), f.get("max_concurrent_streams", "-"),
                lat_cell(lat, "push", "p50_ms"), lat_cell(lat, "push"),
                "`, `".join(x for x in g(d, "mode", "serve_settings", default=[])
                           if "_file=" not in x and ".url=" not in x and "key_id=" not in x and "team_id=" not in x)))
    return "\n".join(out)


def stores_section(runs):
    """The status stores alone (sink-sqlite.json, pg-sink*.json) and three
    instances on a local cluster (cluster3.json)."""
    out = ["## The status stores alone, and three instances", ""]
    sq = runs.get("sink-sqlite")
    if sq and not sq.get("skipped"):
        out += ["**SQLite** (`herald bench sink`): status rows through `store_notif_write_batch` in batches of "
                "%s into a fresh file (schema %s), per slice of about a million rows. CPU is every thread's "
                "(generating the rows left out). Commit %s." % (sq.get("batch"), sq.get("schema_version"),
                                                                  sq.get("commit", "?")), "",
                "| rows so far | rows/s (wall) | rows per CPU-s | CPU-µs per row | bytes written per row |"
                " GET by id p50 / p99 µs | listing (50) p50 / p99 µs | sent? p50 / p99 µs |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

        def lat(r, key):
            x = (r.get("reads") or {}).get(key)
            return "%.0f / %.0f" % (x["p50_us"], x["p99_us"]) if x else "-"
        for r in sq.get("slices", []):
            out.append("| %s | %s | %s | %.1f | %.0f | %s | %s | %s |" % (
                k(r["rows_end"]), k(r["rows_per_s"]), k(r["rows_per_cpu_s"]), r["cpu_us_per_row"],
                r.get("wchar_per_row", 0), lat(r, "get"), lat(r, "list"), lat(r, "sent")))
        out += ["", "The reads (since round 29; \"-\" in results from before) are timed after each slice on "
                "500 random notifications written so far: GET by id with its history, the user's newest 50 "
                "(every per-user run is read: up to 31 a level) and \"already sent?\".", ""]
    else:
        out += ["(no SQLite store result: `HERALD_BENCH_ONLY=sink-sqlite make bench`)", ""]
    lg = runs.get("sink-sqlite-lag")
    if lg and not lg.get("skipped") and lg.get("total"):
        t, mach = lg["total"], lg.get("machine") or {}
        out += ["**SQLite with late ids** (`herald bench sink --lag`, since round 30): the same rows, but each "
                "new notification's id made from an accepted time set back as dispatch's lag does at high "
                "rates (up to 20 ms for 60 %%, 0.5 s for 30 %%, 3 s for 10 %%), so that a transaction's ids "
                "land across the last seconds of the id index, as in the pipeline: %s rows in batches of %s, "
                "**%s rows/s**, %s rows per CPU-s, %.2f CPU-µs per row, %.0f bytes written per row (%s, "
                "load %.1f at the start)." % (
                    k(lg.get("rows")), lg.get("batch"), k(t.get("rows_per_s")), k(t.get("rows_per_cpu_s")),
                    t.get("cpu_us_per_row", 0), t.get("wchar_per_row", 0), mach.get("cpu_model", "?"),
                    mach.get("loadavg_1m") or 0), ""]
    pg = [runs[l] for l in ("pg-sink", "pg-sink-load") if l in runs]
    if pg and not all(d.get("skipped") for d in pg):
        out += ["**PostgreSQL** (`herald bench pg-sink`): status rows through `store_notif_write_batch` "
                "(COPY into a staging table, one merge per batch) on a throw-away server, then the same ids "
                "again as `sent`; the second run with reader threads doing the API's reads meanwhile. "
                "PostgreSQL runs on the same two cores.", "",
                "| run | rows | inserts/s | updates/s | reads/s | worst read | load average at the start |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for d in pg:
            if d.get("skipped"):
                continue
            st = d.get("settings", {})
            ins, upd = d.get("insert", {}), d.get("update", {})
            la = (d.get("machine") or {}).get("loadavg_1m")
            out.append("| %d reader(s), batch %s | %s | %s | %s | %s | %s ms | %s |" % (
                st.get("readers", 0), st.get("batch"), k(st.get("rows")), k(ins.get("rows_per_s")),
                k(upd.get("rows_per_s")), k(ins.get("reads_per_s")), ms(ins.get("worst_read_ms")),
                "%.1f" % la if la is not None else "-"))
        out.append("")
    else:
        out += ["(no PostgreSQL store result: `HERALD_BENCH_ONLY=pg-sink make bench`, needs postgresql)", ""]
    cl = runs.get("cluster3")
    if cl and not cl.get("skipped"):
        out += ["**Three instances** (`bench/cluster3.py` on `scripts/cluster.sh`: three Kafka brokers, "
                "PostgreSQL, Redis, three `herald serve` with every role, all on this machine): %s events "
                "of %s recipients each produced into raw-events by kcat, delivered to the sandbox. CPU is the "
                "three herald processes' only (the brokers, PostgreSQL and Redis share the same cores). "
                "Load average at the start: %.1f." % ("{:,}".format(cl["events"]), cl["fanout"],
                                                      cl.get("load_avg_start", 0)), "",
                "| fan-out | notifications/s | herald CPU s per million | lost | duplicate deliveries "
                "| share per instance |",
                "| --- | ---: | ---: | ---: | ---: | --- |"]
        for mode, r in cl.get("runs", {}).items():
            out.append("| %s | %s | %.1f | %d | %d | %s |" % (
                mode.replace("_", "-"), k(r["notifications_per_s"]), r["herald_cpu_s_per_million"],
                r["lost"], r["duplicate_deliveries"], " / ".join("%.0f %%" % (x * 100)
                                                                  for x in r["per_instance_share"])))
        out.append("")
    else:
        out += ["(no three-instance result: `HERALD_BENCH_ONLY=cluster3 make bench`, needs Java, kcat, "
                "postgresql, redis-server)", ""]
    return "\n".join(out)


def chart(runs, png):
    if not shutil.which("gnuplot"):
        return "(gnuplot not found: chart not drawn)"
    tmp = tempfile.mkdtemp()
    plots_t, plots_l = [], []
    colors = {"embedded-null": "#7b2cbf", "embedded-file": "#2a9d8f", "kafka-null": "#1d6fd1"}
    for i, label in enumerate(ORDER):
        d = runs.get(label)
        if not d or d.get("skipped") or not d.get("sweep"):
            continue
        path = os.path.join(tmp, label + ".dat")
        with open(path, "w") as f:
            for p in d["sweep"]:
                f.write("%g %g %g %g\n" % (
                    p["pct"], p.get("notifs_per_s", 0), g(p, "latency", "push", "p99_ms", default=0) or 0,
                    g(p, "latency", "inapp", "p99_ms", default=0) or 0))
            if d.get("sweep_base") == "sustained":
                f.write("%g %g NaN NaN\n" % (100, g(d, "sustained", "notifs_per_s", default=0)))
            else:
                f.write("%g %g NaN NaN\n" % (100, g(d, "max", "notifs_per_s", default=0)))
        raw = g(d, "raw", "notifs_per_s")
        title = TITLES[label] + (" (raw bus: %s/s)" % k(raw) if raw else "")
        lc = "lc rgb '%s'" % colors.get(label, "#444444")
        plots_t.append("'%s' using 1:($2/1000) with linespoints lw 2 pt 7 %s title '%s'" % (path, lc, title))
        plots_l.append("'%s' using 1:3 with linespoints lw 2 pt 7 %s title '%s, push'" % (path, lc, TITLES[label]))
        plots_l.append("'%s' using 1:4 with linespoints lw 1 dt 2 pt 6 %s title '%s, in-app'" % (path, lc, TITLES[label]))
    if not plots_t:
        return "(no sweep results: chart not drawn)"
    script = """
set terminal pngcairo size 1200,520 font ',10'
set output '%s'
set multiplot layout 1,2 title 'herald: throughput and p99 latency against offered load'
set grid
set key top left
set xlabel 'offered load, %% of the sustained rate (100 %% = the sustained rate)'
set ylabel 'notifications delivered per second (thousands)'
set xrange [0:105]
set yrange [0:*]
plot %s
set ylabel 'p99 event -> delivered (ms, log scale)'
set xlabel 'offered load, %% of the sustained rate'
set logscale y
set yrange [*:*]
set xrange [0:100]
plot %s
unset multiplot
""" % (png, ", ".join(plots_t), ", ".join(plots_l))
    gp = os.path.join(tmp, "chart.gp")
    with open(gp, "w") as f:
        f.write(script)
    try:
        subprocess.run(["gnuplot", gp], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as e:
        return "(gnuplot failed: %s)" % e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def main():
    results, md, png = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = load(results)
    if not runs:
        sys.exit("no results in %s" % results)
    any_run = next(d for d in (runs.get(l) for l in ORDER) if d and not d.get("skipped"))
    mach = any_run.get("machine", {})
    commits = sorted({d.get("commit", "?") for d in runs.values() if not d.get("skipped")})
    chart_note = chart(runs, png)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "notes.md")) as f:
        notes = f.read()
    fmt = figures(runs)
    try:
        notes = notes.format_map(fmt)
    except (KeyError, IndexError, ValueError) as e:
        notes += "\n\n(figures missing from this run: %s)\n" % e
    mix = g(any_run, "workload", "channel_mix", default={})
    text = """# herald benchmarks

Generated by `make bench` (`scripts/bench.sh` → `herald bench` → `bench/report.py`); do not edit by
hand. Raw results: `bench/results/*.json`. Chart: `bench/chart.png`.

Commit {commits}, {started}. Machine: {cores} cores ({cpu}), {mem} GiB RAM, Linux {kernel}.

The benchmark runs the whole pipeline in one `herald serve` process — HTTP ingest, fan-out,
per-channel dispatch with the sandbox provider, status events on the bus, and the status sink
writing SQLite — while the load generator runs in the bench driver's own process. Workload: events
with explicit audiences drawn uniformly from {users} users (mean {aud:.2f} recipients per event, one
event in 250 a burst of 250), one channel per event so that notifications split push
{push:.0%} · in-app {inapp:.0%} · email {email:.0%} · SMS {sms:.0%}; seed 1; bus.partitions 4; the
shipped defaults otherwise (`bus.fsync=interval`, 1 s: status events are durable on the bus within
a second, as every other record).

Settings besides the defaults, per mode: {settings}.

## What the numbers mean

* **sustained** (the headline): the largest offered rate at which every stage keeps up — ingest
  accepts what is offered, and the backlog of fan-out, of dispatch and of the status sink (each
  consumer group's lag on the bus: `herald_bus_lag_records` on the embedded bus, the broker's
  committed offsets on Kafka; fan-out's events counted as their notifications) neither grows nor
  piles up. Found by a search on a fresh `herald serve`: each step offers a fixed rate (open loop)
  for a few unmeasured seconds, then holds it while the backlogs are sampled twice a second. A step
  keeps up when, for ingest and every stage, the least-squares slope of its backlog times the hold stays within
  3 % of what arrived plus 4,096 records (the backlog saws up and down by the status sink's gathered
  transactions of up to 8,192 rows), and the backlog at the end is under 3 s of input (or 32,768
  records). Ingest is judged the same way, its backlog being what the generator's schedule offered
  minus what herald accepted, and no request may be refused. At low rates the 4,096 records limit
  the precision (a 15 s hold at 10k notifications/s allows 5.7 % growth). The first step is an estimate from the burst (the cores herald had, over the
  CPU of a notification plus that of its status row); after a step that fell behind, the next tries
  the rate the slowest stage actually processed (when it lies inside the bracket; just under the
  failed rate, by the precision, when it processed nearly all of it) or bisects. Every step starts
  with every backlog drained - dispatch's and the status sink's, after a step that kept up too (the
  wait is the table's "drained first"; a fresh herald when it does not drain in time). The search stops
  when the highest rate that kept up and the lowest that did not are within the precision. The status
  table grows from step to step, as it would in service.
* **CPU s per million notifications, sustained**: the `herald serve` process's user + system time
  over the hold of the highest step that kept up, divided by the notifications settled in it
  (settled: sent, failed, suppressed by a preference, or over the recipient's rate limit - herald
  runs with its default per-recipient limits, and with a million users the later steps reach them;
  each run prints the rate-limited share). At
  that rate every stage keeps up, so the figure holds each stage's work for those notifications,
  the status sink's and the SQLite checkpointer's included (measured at a steady state, not by
  waiting for a backlog to drain). The per-stage table splits it by thread
  (`/proc/<pid>/task/*/stat`, grouped by thread name: `MHD-*` ingest, `fanout`, `dispatch:*`,
  `retry:*`, `status`, `store-ckpt`, unnamed threads = the bus's I/O threads and the HTTP watchdog).
  Some of that work is paid per second rather than per notification (idle workers woken by every
  bus flush - the `retry` column -, flushes, checkpoints): at a low sustained rate it weighs more per
  notification, so compare runs whose sustained rates are alike, stage by stage.
* **burst** (second column): closed loop — the generator keeps at most {window} notifications
  accepted but not yet delivered. Delivery runs at full speed while the status sink (nice 10, which
  delivery never waits for) writes only part of the rows; the rest is left on the bus. Its CPU per
  million is given for the window alone (the sink's deferred rows excluded, as the figure used to be)
  and counted from before the warm-up until the sink caught up ("-" when it did not within the
  drain timeout). Its latency is that backlog's queueing time, not a service time.
* **raw bus**: in the same run, before herald starts, the same kinds of records in the same
  proportions and sizes (the workload's events, then per event one herald-encoded notification per
  recipient, one status per notification) through the same topics, partitions, hops and consumer
  groups, as fast as they go, with no herald logic: a producer, a relay fanning each event out, four
  relays producing one status per notification, a status reader — each relay storing offsets only
  after its outputs are acknowledged, up to 4 batches in flight. Embedded: the embedded bus
  in-process. Kafka: librdkafka against the same broker. herald ÷ raw compares settled
  notifications per second: the sustained rate first, the burst beside it.
* **sweep**: fixed offered rates at shares of the sustained rate, open loop (requests leave on
  schedule whether or not earlier ones were answered), on the search's herald once every backlog
  has drained. The target's p99 is the push channel's at 50 %.
* **latency**: from the event's `accepted_at_us` (stamped by ingest) to the return of the provider
  call, recorded for every notification in herald's log-linear histograms
  (`herald_delivery_latency_seconds` on `/metrics`; 8 buckets per power of two, so a quantile is
  within 12.5 % above the true value); each window is the difference of two scrapes.
* **peak RSS**: the largest resident set (VmHWM) of every `herald serve` of the run.
* **a shared machine**: wall-clock rates depend on how much of the cores the run had. Each result
  records the load average at the start and the end, and for every measured window the cores the
  other processes used (the machine's busy time from `/proc/stat` minus herald's and the
  generator's). CPU seconds per notification move much less than wall rates between runs; compare
  those, and treat a sustained rate measured while other processes took a core as a lower bound.

## Throughput

{summary}

CPU-µs per notification by thread (the sustained step includes the status sink's rows; the burst
window leaves most of them for later):

{stages}

The search for the sustained rate:

{steps}

![throughput and p99 against offered load](bench/chart.png)
{chart_note}

## Latency under load (event accepted → delivered)

{sweep}

At the max (closed loop, {window} notifications in flight — queueing time):

{maxlat}

## Targets

{targets}

{providers}

{stores}

{notes}
""".format(
        commits=", ".join(commits),
        started=any_run.get("started_at", "?"),
        cores=mach.get("cores", "?"),
        cpu=mach.get("cpu_model", "?"),
        mem=mach.get("mem_gib", "?"),
        kernel=mach.get("kernel", "?"),
        users="{:,}".format(g(any_run, "mode", "users", default=0)),
        window="{:,}".format(g(any_run, "max", "window_notifs", default=0)),
        settings="; ".join(
            "%s: `%s`" % (TITLES[l], "`, `".join(g(runs[l], "mode", "serve_settings", default=[])))
            for l in ORDER if l in runs and not runs[l].get("skipped")),
        aud=g(any_run, "workload", "mean_audience", default=0),
        push=mix.get("push", 0),
        inapp=mix.get("inapp", 0),
        email=mix.get("email", 0),
        sms=mix.get("sms", 0),
        summary=summary_table(runs),
        stages=stages_table(runs),
        steps=steps_table(runs),
        chart_note=("\n" + chart_note + "\n") if chart_note else "",
        sweep=sweep_table(runs),
        maxlat=max_latency_table(runs),
        targets=targets(runs),
        providers=providers_section(runs),
        stores=stores_section(runs),
        notes=notes,
    )
    with open(md, "w") as f:
        f.write(text)


def figures(runs):
    """Named figures for bench/notes.md ({e_max}, {e_ratio}, ...)."""
    f = {}
    for short, label in (("e", "embedded-null"), ("f", "embedded-file"), ("k", "kafka-null")):
        d = runs.get(label) or {}
        m = d.get("max", {})
        f[short + "_max"] = k(m.get("notifs_per_s"))
        f[short + "_sus"] = k(g(d, "sustained", "notifs_per_s"))
        f[short + "_sus_cpu"] = "%.1f" % g(d, "sustained", "cpu_s_per_m", default=0)
        f[short + "_sus_ratio"] = "%.0f %%" % (100 * d["ratio_vs_raw"]) if d.get("sustained") and d.get("ratio_vs_raw") else "-"
        f[short + "_sus_rows"] = k(g(d, "sustained", "status_rows_per_s"))
        f[short + "_events"] = k(m.get("events_per_s"))
        f[short + "_raw"] = k(g(d, "raw", "notifs_per_s"))
        rb = d.get("ratio_vs_raw_burst") or d.get("ratio_vs_raw")  # older results: one ratio
        f[short + "_ratio"] = "%.0f %%" % (100 * rb) if rb else "-"
        f[short + "_cpu"] = "%.1f" % m.get("cpu_s_per_m", 0)
        f[short + "_raw_cpu"] = "%.1f" % g(d, "raw", "cpu_s_per_m", default=0)
        f[short + "_rss"] = mb(d.get("peak_rss_bytes"))
        f[short + "_sink"] = k(m.get("status_rows_per_s"))
        f[short + "_sink_alone"] = k(m.get("sink_rows_per_s_after"))
        for p in d.get("sweep", []):
            f["%s_p99_%d" % (short, round(p["pct"]))] = ms(g(p, "latency", "push", "p99_ms"))
        f[short + "_skipped"] = d.get("skipped", "")
    return _Default(f)


class _Default(dict):
    def __missing__(self, key):
        return "-"


if __name__ == "__main__":
    main()
