"""Drives the status page (/ui) in headless Chromium for ui_status.sh.

Environment: HERALD_BASE (http://127.0.0.1:port), HERALD_KEY (an admin key),
UI_DEAD_ID (a notification that went failed x3 -> dead and into the DLQ),
UI_ODD_ID (a notification of the user "<i>eve</i>"), UI_EVENTS (events
accepted so far), UI_SHOT (where to save the screenshot).

Asserts, in order: the page and its assets carry the security headers; the
page asks for a key and shows nothing without one; a wrong key is refused
(the prompt again, with herald's reason); with the admin key it shows the
totals of the workload, then the rate and the new total after more events
are posted while it is open; consumer lag per group; the sandbox breakers
closed; the DLQ size and the dead letter's reason; looking a notification
up shows its status history as the API has it; text from the server is
never parsed as HTML; an inline script is refused by the CSP; a key that
stops working (401) brings the prompt back. Then a screenshot.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

BASE = os.environ["HERALD_BASE"]
KEY = os.environ["HERALD_KEY"]
DEAD_ID = os.environ["UI_DEAD_ID"]
ODD_ID = os.environ["UI_ODD_ID"]
EVENTS = int(os.environ["UI_EVENTS"])
SHOT = os.environ["UI_SHOT"]
LIVE_EVENTS = 5


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    rq = urllib.request.Request(BASE + path, data=data, method=method)
    rq.add_header("Authorization", "Bearer " + KEY)
    if data is not None:
        rq.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(rq, timeout=10) as r:
        return r.status, json.load(r)


def headers_of(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as r:
        return r.status, r.headers


def q(sel):
    """JS: the textContent of a selector."""
    return f"(document.querySelector({json.dumps(sel)}) || {{}}).textContent"


def visible(sel):
    return f"(e => !!e && !e.hidden)(document.querySelector({json.dumps(sel)}))"


def login(b, key):
    b.type_into("#key-input", key)
    b.eval("document.querySelector('#key-save').click()")


def main():
    t0 = time.monotonic()
    # --- the files: no key needed, safe headers
    for path, ctype in (("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        st, h = headers_of(path)
        check(st == 200 and h["Content-Type"].startswith(ctype), f"{path}: {st} {h['Content-Type']}")
        csp = h["Content-Security-Policy"] or ""
        check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, f"{path}: CSP {csp!r}")
        check(h["X-Content-Type-Options"] == "nosniff", f"{path}: no nosniff")
    try:
        urllib.request.urlopen(BASE + "/v1/ops/summary", timeout=10)
        raise AssertionError("/v1/ops/summary answered without a key")
    except urllib.error.HTTPError as e:
        check(e.code == 401, f"/v1/ops/summary without a key: {e.code}")
    log("page files served without a key, with CSP and nosniff; the summary needs one")

    with cdp.Browser() as b:
        log(f"chromium up in {time.monotonic() - t0:.1f} s")
        b.goto(BASE + "/ui?every=1")
        b.wait(visible("#login"), what="the key prompt")
        check(not b.eval(visible("#main")), "data shown without a key")

        login(b, "hk_wrong_" + "x" * 40)
        b.wait(f"{visible('#login')} && {q('#notice')}.length > 0", what="the prompt after a wrong key")
        check(not b.eval(visible("#main")), "data shown with a wrong key")
        check(b.eval("sessionStorage.getItem('herald.apiKey')") is None, "a refused key was kept")
        log(f"wrong key refused: {b.eval(q('#notice'))!r}")

        login(b, KEY)
        b.wait(visible("#main"), what="the page after the key")
        b.wait(f"{q('#total-events_accepted')} === '{EVENTS}'", what=f"{EVENTS} events accepted")
        check(b.eval(q("#total-dlq_records")) == "1", "dlq_records total: " + b.eval(q("#total-dlq_records")))
        check(b.eval(q("#meta-bus")) == "bus embedded", b.eval(q("#meta-bus")))

        # --- live traffic while the page is open: the total and the rate move
        for i in range(LIVE_EVENTS):
            st, _ = api("POST", "/v1/events", {"event_id": f"ev-live-{i}", "type": "welcome",
                                               "audience": {"users": ["ann"]}, "data": {}})
            check(st == 202, f"POST /v1/events: {st}")
        want = EVENTS + LIVE_EVENTS
        rate = b.wait(f"(() => {{ const r = parseFloat({q('#rate-events_accepted')});"
                      f" return {q('#total-events_accepted')} === '{want}' && r > 0 ? r : 0; }})()",
                      what=f"{want} events accepted and a rate above 0")
        log(f"live events: total {want}, {rate} events/s between two samples")
        b.wait(f"parseInt({q('#total-notifications_sent')}) >= {want}", what="notifications sent")
        _, s = api("GET", "/v1/ops/summary")
        check(int(b.eval(q("#total-notifications_sent"))) == s["counters"]["notifications_sent"],
              "notifications_sent differs from the API's")

        # --- lag, breakers, DLQ
        lag = b.eval("[...document.querySelectorAll('#lag-rows tr')].map(r => [...r.cells].map(c => c.textContent))")
        groups = {row[0]: row for row in lag}
        for g in ("fanout", "dispatch-push", "status"):
            check(g in groups and groups[g][2].isdigit(), f"lag row {g}: {lag}")
        check(groups["fanout"][1] == "raw-events", groups["fanout"])
        brk = b.eval("[...document.querySelectorAll('#breaker-rows tr')].map(r => [...r.cells].map(c => c.textContent))")
        check(["sandbox", "push", "closed"] in [row[:3] for row in brk], f"breakers: {brk}")
        check(b.eval(q("#dlq-size")) == "1", "DLQ size " + b.eval(q("#dlq-size")))
        dlq = b.eval("[...document.querySelectorAll('#dlq-rows tr')].map(r => [...r.cells].map(c => c.textContent))")
        check(len(dlq) == 1 and "retries exhausted" in dlq[0][4] and dlq[0][3] == "notifications-push"
              and dlq[0][5] == "no", f"DLQ rows: {dlq}")
        log(f"lag for {len(lag)} groups; breakers {[r[:3] for r in brk]}; DLQ 1: {dlq[0][4]!r}")

        # --- text from the server stays text
        b.eval("document.querySelector('#lookup-id').value = ''")
        b.type_into("#lookup-id", ODD_ID)
        b.eval("document.querySelector('#lookup-go').click()")
        b.wait(f"{visible('#lookup-result')} && {q('#lookup-fields .f-notification_id')} === {json.dumps(ODD_ID)}",
               what="the lookup of eve's notification")
        check(b.eval(q("#lookup-fields .f-user_id")) == "<i>eve</i>", b.eval(q("#lookup-fields .f-user_id")))
        check(b.eval("document.querySelectorAll('#lookup i, #lookup-fields b').length") == 0,
              "server text was parsed as HTML")
        log("a user id '<i>eve</i>' shows as text")

        # --- an unknown id says so
        b.eval("document.querySelector('#lookup-id').value = ''")
        b.type_into("#lookup-id", "no-such-notification")
        b.eval("document.querySelector('#lookup-go').click()")
        b.wait(f"{q('#lookup-msg')}.startsWith('Not found')", what="the answer for an unknown id")
        check(not b.eval(visible("#lookup-result")), "a result shown for an unknown id")

        # --- the looked-up notification's history, as the API has it
        b.eval("document.querySelector('#lookup-id').value = ''")
        b.type_into("#lookup-id", DEAD_ID)
        b.eval("document.querySelector('#lookup-go').click()")
        b.wait(f"{q('#lookup-fields .f-notification_id')} === {json.dumps(DEAD_ID)}", what="the lookup")
        hist = b.eval("[...document.querySelectorAll('#lookup-history tr')].map(r => [...r.cells].map(c => c.textContent))")
        _, n = api("GET", "/v1/notifications/" + DEAD_ID)
        want_hist = [[h["at"], h["status"], str(h["attempt"]), h["detail"] or "–"] for h in n["history"]]
        check(hist == want_hist, f"history shown {hist} != API {want_hist}")
        check([h[1] for h in hist] == ["failed", "failed", "failed", "dead"], f"history {hist}")
        check(b.eval(q("#lookup-fields .f-status")) == "dead", "status " + b.eval(q("#lookup-fields .f-status")))
        log(f"lookup {DEAD_ID}: {' -> '.join(h[1] for h in hist)}")

        # --- the CSP is in force: an inline script does not run
        v = b.eval("""new Promise(res => {
            document.addEventListener('securitypolicyviolation', e => res(e.violatedDirective), {once: true});
            const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
            document.body.appendChild(s);
            setTimeout(() => res('no violation, inline ran: ' + (window.__inline === 1)), 2000); })""")
        check(str(v).startswith("script-src") and not b.eval("window.__inline === 1"), f"inline script: {v}")
        log(f"inline script refused by the CSP ({v})")

        b.screenshot(SHOT)
        log(f"screenshot: {SHOT}")

        # --- a key that stops working brings the prompt back
        b.eval("sessionStorage.setItem('herald.apiKey', 'hk_revoked_' + 'y'.repeat(40))")
        b.wait(visible("#login"), timeout=5, what="the prompt after a 401")
        check(not b.eval(visible("#main")), "data still shown after a 401")
        log("a 401 shows the key prompt again")

        errs = b.console_errors()
        check(not errs, f"script errors: {errs}")
    log(f"ui_status: all checks passed in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except cdp.Unavailable as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    except (AssertionError, cdp.CDPError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
