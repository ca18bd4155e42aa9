"""Drives the embeddable inbox page (/inbox) in headless Chromium for
inbox_page.sh.

Environment: HERALD_BASE, HERALD_KEY (an admin key), INBOX_TOKEN (a user
token of INBOX_USER), INBOX_USER.

Asserts, in order: the page files carry the CSP and nosniff; opened with
the token in the fragment it goes live and shows an empty inbox; each of
EVENTS events posted to POST /v1/events (channel inapp, inline content)
appears on the page without a reload (median within a second of the POST,
each within five; after one warm-up event for another user), and the bell
counts it; text from the server stays text; marking one read (its
button) lowers the bell by one, and the API agrees; "mark all as read"
clears the bell; an item marked read through the API (another device)
turns read on the page. Prints the latency from each POST to the item on
the page (min / median / max).
"""
import hashlib
import json
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

BASE = os.environ["HERALD_BASE"]
KEY = os.environ["HERALD_KEY"]
TOKEN = os.environ["INBOX_TOKEN"]
USER = os.environ["INBOX_USER"]
EVENTS = 10
LIMIT_MS = 1000
HARD_MS = 5000


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def api(method, path, body=None, key=KEY):
    data = json.dumps(body).encode() if body is not None else None
    rq = urllib.request.Request(BASE + path, data=data, method=method)
    rq.add_header("Authorization", "Bearer " + key)
    if data is not None:
        rq.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(rq, timeout=10) as r:
        return r.status, json.load(r)


def notif_hash(event, user, channel):
    """The hash part of a notification id (its last 20 hex digits): the first
    12 are the event's accepted time in ms, which only herald knows."""
    return hashlib.sha256(f"{event}\0{user}\0{channel}".encode()).hexdigest()[:20]


def page_id(b, event, user):
    """The full id of event's in-app notification for user, as the page got it."""
    suffix = json.dumps(notif_hash(event, user, "inapp"))
    return b.eval(f"Object.keys(window.heraldInbox.arrivals).find(k => k.endsWith({suffix})) || ''")


def badge(b):
    return b.eval("(e => e.hidden ? 0 : parseInt(e.dataset.count || '0', 10))(document.getElementById('unread'))")


def main():
    t0 = time.monotonic()
    for path, ctype in (("/inbox", "text/html"), ("/inbox/inbox.js", "text/javascript"),
                        ("/inbox/inbox.css", "text/css")):
        with urllib.request.urlopen(BASE + path, timeout=10) as r:
            check(r.status == 200 and r.headers["Content-Type"].startswith(ctype), f"{path}: {r.status}")
            csp = r.headers["Content-Security-Policy"] or ""
            check("default-src 'self'" in csp and "script-src" not in csp, f"{path}: CSP {csp!r}")
            check(r.headers["X-Content-Type-Options"] == "nosniff", f"{path}: no nosniff")

    with cdp.Browser() as b:
        log(f"chromium up in {time.monotonic() - t0:.1f} s")
        b.goto(BASE + "/inbox#token=" + TOKEN)
        b.wait("document.getElementById('live').textContent === 'live'", what="the live stream")
        b.wait("!document.getElementById('empty').hidden", what="the empty inbox")
        check(badge(b) == 0, "bell not 0 at start")

        # warm the pipeline (fan-out's recipient cache, the dispatcher, the store) with an
        # event for another user, so the figures below are the steady path, not a cold start
        st, _ = api("POST", "/v1/events", {
            "event_id": "inbox-warm", "type": "inbox_note", "audience": {"users": ["yan"]},
            "channels": ["inapp"], "content": {"title": "warm", "body": "up"}})
        check(st == 202, f"POST /v1/events (warm-up): {st}")
        b.wait("fetch('/v1/users/yan/inbox', {headers: {Authorization: 'Bearer %s'}})"
               ".then(r => r.json()).then(d => d.items.length === 1)" % KEY, what="the warm-up item stored")

        lat = []
        for i in range(EVENTS):
            ev = f"inbox-ev-{i}"
            nid = notif_hash(ev, USER, "inapp")
            title = f"<b>Hello {i}</b>"
            sent = time.time() * 1000
            st, _ = api("POST", "/v1/events", {
                "event_id": ev, "type": "inbox_note", "audience": {"users": [USER]},
                "channels": ["inapp"], "content": {"title": title, "body": f"body {i}"}})
            check(st == 202, f"POST /v1/events: {st}")
            seen = b.wait(f"(a => Object.keys(a).filter(k => k.endsWith({json.dumps(nid)})).map(k => a[k])[0])"
                          f"(window.heraldInbox.arrivals) || 0", timeout=5,
                          what=f"item {i} on the page")
            lat.append(seen - sent)
            b.wait(f"parseInt(document.getElementById('unread').dataset.count || '0', 10) === {i + 1}",
                   timeout=5, what=f"the bell at {i + 1}")
        log("latency POST /v1/events -> item on the page, ms: " + " ".join(f"{x:.0f}" for x in lat))
        log(f"SSE latency over {EVENTS} events: min {min(lat):.0f} ms, median {statistics.median(lat):.0f} ms, "
            f"max {max(lat):.0f} ms")
        # "within a second": the median must be; every item within HARD_MS, so that a
        # loaded machine's one slow turn does not fail the run (the figures are printed)
        check(statistics.median(lat) < LIMIT_MS, f"median {statistics.median(lat):.0f} ms (limit {LIMIT_MS})")
        check(max(lat) < HARD_MS, f"an item took {max(lat):.0f} ms (limit {HARD_MS})")
        check(b.eval("location.href").endswith("#token=" + TOKEN), "the page reloaded")

        # text stays text, newest first
        titles = b.eval("[...document.querySelectorAll('#items .item-title')].map(e => e.textContent)")
        check(titles[0] == f"<b>Hello {EVENTS - 1}</b>" and len(titles) == EVENTS, f"titles {titles}")
        check(b.eval("document.querySelectorAll('#items b').length") == 0, "server text parsed as HTML")

        # mark one read with its button
        first = page_id(b, "inbox-ev-0", USER)
        check(len(first) == 32, f"the page got inbox-ev-0: {first!r}")
        b.eval(f"document.querySelector('#items li[data-id=\"{first}\"] .mark').click()")
        b.wait(f"parseInt(document.getElementById('unread').dataset.count, 10) === {EVENTS - 1}",
               what="the bell after one mark")
        b.wait(f"!document.querySelector('#items li[data-id=\"{first}\"]').classList.contains('unread')",
               what="the item shown read")
        _, c = api("GET", f"/v1/users/{USER}/inbox/counts")
        check(c["unread"] == EVENTS - 1, f"API counts {c}")
        log(f"marked one read: bell {EVENTS - 1}, API unread {c['unread']}")

        # another device marks one read: the page follows
        other = page_id(b, "inbox-ev-1", USER)
        check(len(other) == 32, f"the page got inbox-ev-1: {other!r}")
        api("POST", f"/v1/users/{USER}/inbox/{other}/read")
        b.wait(f"!document.querySelector('#items li[data-id=\"{other}\"]').classList.contains('unread')"
               f" && parseInt(document.getElementById('unread').dataset.count, 10) === {EVENTS - 2}",
               what="a mark made elsewhere")

        # mark all
        b.eval("document.getElementById('read-all').click()")
        b.wait("document.getElementById('unread').hidden", what="the bell cleared")
        _, c = api("GET", f"/v1/users/{USER}/inbox/counts")
        check(c["unread"] == 0, f"API counts after mark all {c}")
        log("mark all as read: bell cleared, API unread 0")

        errs = b.console_errors()
        check(not errs, f"script errors: {errs}")
    log(f"inbox_page: all checks passed in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except cdp.Unavailable as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    except (AssertionError, cdp.CDPError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
