#!/usr/bin/env python3
"""Checks the PromQL that herald's operations files carry.

usage: check_promql.py METRICS_DEF DASHBOARD_JSON ALERTS_YML OUT_DIR

- The Grafana dashboard parses as JSON, is importable (no fixed id, a uid, a
  Prometheus data source variable every panel and query uses), has unique
  panel ids and every panel the design names.
- Every PromQL expression of the dashboard and of the alert rules names only
  metrics herald exports (src/metrics/metrics.def; a histogram's _bucket,
  _sum and _count series), and `up` in the alert rules.
- Every dashboard expression is valid PromQL: Grafana's variables are given
  plain values and each expression becomes a recording rule of a file that
  `promtool check rules` must accept (written to OUT_DIR/dashboard-rules.yml).

Exit status 0 when everything holds; otherwise 1 with one line per problem.
"""
import json
import re
import subprocess
import sys

# PromQL words that are not metric names (functions are followed by "(").
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan",
    # aggregations may put their grouping clause before the "("
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
# Panels the dashboard must have (title words, lower case) and a metric each
# must use.
REQUIRED_PANELS = [
    ("events in/s", "herald_events_accepted_total"),
    ("fan-out ratio", "herald_notifications_fanned_out_total"),
    ("delivery success by channel", "herald_delivery_attempts_total"),
    ("delivery outcomes by channel", "herald_delivery_attempts_total"),
    ("consumer lag by group", "herald_bus_lag_records"),
    ("delivery latency by channel", "herald_delivery_latency_seconds_bucket"),
    ("breaker state by channel", "herald_breaker_state"),
    ("dlq growth", "herald_dlq_records_total"),
    ("cpu", "process_cpu_seconds_total"),
    ("resident memory", "process_resident_memory_bytes"),
    ("store writes", "herald_status_write_seconds_bucket"),
]

problems = []


def problem(msg):
    problems.append(msg)


def exported_names(metrics_def):
    """Series names metrics.def declares (histograms: _bucket, _sum, _count)."""
    text = open(metrics_def, encoding="utf-8").read()
    names = set()
    for kind, args in re.findall(r"^METRIC_(COUNTER|HISTOGRAM|READ)\(([^\"]*\"[^\"]+\")", text, re.M):
        name = re.search(r"\"([^\"]+)\"", args).group(1)
        if kind == "HISTOGRAM":
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(name)
    return names


def grafana_to_promql(expr):
    """Grafana's variables replaced with values PromQL accepts."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)
    # $var and ${var} (and ${var:format}) are used only inside label matchers
    return re.sub(r"\$\{\w+(:\w+)?\}|\$\w+", ".+", expr)


def metric_names(expr):
    """Metric names an expression reads: identifiers outside strings, label
    matchers and grouping clauses, not followed by "(", not keywords."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                       # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                      # range and subquery windows
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue                                      # 1e3, 0.5 etc.
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def check_names(where, expr, known, allowed_extra=()):
    names = metric_names(expr)
    if not names:
        problem(f"{where}: no metric in {expr!r}")
    for n in sorted(names):
        if n not in known and n not in allowed_extra:
            problem(f"{where}: {n} is not a metric of metrics.def ({expr!r})")


def check_dashboard(path, known, out_dir):
    try:
        d = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        problem(f"{path}: not JSON: {e}")
        return
    if d.get("id") is not None:
        problem(f"{path}: id must be null so that the dashboard imports anywhere")
    if not d.get("uid") or not d.get("title"):
        problem(f"{path}: uid and title are required")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(f"{path}: needs a Prometheus data source variable named datasource")
    exprs = []
    ids = set()
    panels = d.get("panels", [])
    for p in panels:
        pid, title = p.get("id"), p.get("title", "")
        if pid in ids:
            problem(f"{path}: panel id {pid} used twice")
        ids.add(pid)
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")) or gp["x"] + gp["w"] > 24:
            problem(f"{path}: panel {title!r}: bad gridPos {gp}")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problem(f"{path}: panel {title!r} does not use the datasource variable")
        targets = p.get("targets", [])
        if not targets:
            problem(f"{path}: panel {title!r} has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problem(f"{path}: panel {title!r}: refIds {refs}")
        for t in targets:
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problem(f"{path}: panel {title!r} query {t.get('refId')} does not use the datasource variable")
            where = f"panel {title!r} {t.get('refId')}"
            check_names(where, expr, known)
            exprs.append((where, expr))
    for v in variables.values():
        q = v.get("query")
        if v.get("type") == "query":
            text = q.get("query", "") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", text or "")
            if not m:
                problem(f"variable {v.get('name')}: unexpected query {text!r}")
            else:
                check_names(f"variable {v.get('name')}", m.group(1), known)
                exprs.append((f"variable {v.get('name')}", m.group(1)))
    for words, metric in REQUIRED_PANELS:
        if not any(words in p.get("title", "").lower()
                   and any(metric in t.get("expr", "") for t in p.get("targets", []))
                   for p in panels):
            problem(f"{path}: no panel titled like {words!r} reading {metric}")
    quantiles = [e for _, e in exprs if "herald_delivery_latency_seconds_bucket" in e]
    for q in ("0.5", "0.95", "0.99"):
        if not any(f"histogram_quantile({q}," in e and "channel" in e for e in quantiles):
            problem(f"{path}: no p{q[2:] or '50'} delivery latency by channel")

    # Each expression as a recording rule: promtool parses them all.
    rules = out_dir + "/dashboard-rules.yml"
    with open(rules, "w", encoding="utf-8") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (_, expr) in enumerate(exprs):
            f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(grafana_to_promql(expr))}\n")
    r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"promtool check rules {rules}:\n{r.stdout}{r.stderr}")
    return len(exprs)


def alert_exprs(path):
    """The expr of each rule of a rules file (one line, or a | block)."""
    exprs = []
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, first = len(m.group(1)), m.group(2).strip()
        if first in ("|", ">", "|-", ">-"):
            body = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i].strip())
                i += 1
            first = " ".join(body)
        exprs.append(first)
    return exprs


def check_alerts(path, known):
    """Metric names of the alert rules (promtool checks their syntax)."""
    exprs = alert_exprs(path)
    if not exprs:
        problem(f"{path}: no expr found")
    for k, e in enumerate(exprs):
        check_names(f"alert rule {k + 1}", e, known, allowed_extra=("up",))
    return len(exprs)


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    metrics_def, dashboard, alerts, out_dir = sys.argv[1:]
    known = exported_names(metrics_def)
    if len(known) < 10:
        problem(f"{metrics_def}: only {len(known)} metric names found")
    nd = check_dashboard(dashboard, known, out_dir)
    na = check_alerts(alerts, known)
    for p in problems:
        print("FAIL:", p)
    if problems:
        return 1
    print(f"dashboard: {nd} expressions valid and naming metrics.def metrics; alert rules: {na} expressions name known metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
