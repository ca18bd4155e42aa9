// herald status page: polls GET /v1/ops/summary every few seconds and looks
// notifications up with GET /v1/notifications/{id}, sending the API key the
// user typed (kept in sessionStorage, this tab only) as a Bearer token.
// Everything that comes from the server reaches the DOM through textContent.
'use strict';

(function () {
  const KEY_ITEM = 'herald.apiKey';
  const RATES = ['events_accepted', 'events_rejected', 'notifications_fanned_out',
    'notifications_sent', 'notifications_failed', 'notifications_retried', 'dlq_records'];
  const STATES = { closed: 'state-closed', 'half-open': 'state-half-open', open: 'state-open' };

  // ?every=N: seconds between samples (1..60; default 3).
  const every = (function () {
    const v = parseInt(new URLSearchParams(location.search).get('every') || '3', 10);
    return Number.isFinite(v) && v >= 1 && v <= 60 ? v : 3;
  })();

  let prev = null;      // the previous summary sample
  let timer = null;

  const $ = (id) => document.getElementById(id);

  function text(v) {
    return v === null || v === undefined ? '–' : String(v);
  }

  function cell(tr, v, cls) {
    const td = document.createElement('td');
    td.textContent = text(v);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function fill(tbody, rows, build) {
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement('tr');
      build(tr, r);
      tbody.appendChild(tr);
    }
  }

  function notice(msg) {
    const n = $('notice');
    n.textContent = msg || '';
    n.hidden = !msg;
  }

  function key() {
    return sessionStorage.getItem(KEY_ITEM) || '';
  }

  function showLogin(msg) {
    if (timer) clearTimeout(timer);
    timer = null;
    prev = null;
    $('main').hidden = true;
    $('login').hidden = false;
    notice(msg);
    $('key-input').focus();
  }

  function start() {
    $('login').hidden = true;
    $('main').hidden = false;
    notice('');
    $('interval').textContent = String(every);
    poll();
  }

  class AuthError extends Error {}

  // GET path with the key; resolves to [status, parsed JSON or null].
  async function api(path) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), 10000);
    try {
      const r = await fetch(path, {
        headers: { Authorization: 'Bearer ' + key(), Accept: 'application/json' },
        cache: 'no-store', credentials: 'omit', signal: ctl.signal,
      });
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      if (r.status === 401) {
        sessionStorage.removeItem(KEY_ITEM);
        throw new AuthError((body && body.detail) || 'the API key was refused');
      }
      return [r.status, body];
    } finally {
      clearTimeout(t);
    }
  }

  function rate(name, cur) {
    if (!prev || !prev.counters || cur.at_ms <= prev.at_ms) return null;
    const d = (cur.counters[name] || 0) - (prev.counters[name] || 0);
    const r = d / ((cur.at_ms - prev.at_ms) / 1000);
    return r < 0 ? null : r.toFixed(r >= 10 ? 0 : 2);
  }

  function render(s) {
    $('meta-version').textContent = 'version ' + text(s.version);
    $('meta-bus').textContent = 'bus ' + text(s.bus);
    $('meta-updated').textContent = new Date(s.at_ms).toISOString();
    for (const n of RATES) {
      $('total-' + n).textContent = text(s.counters ? s.counters[n] : null);
      $('rate-' + n).textContent = text(rate(n, s));
    }
    fill($('lag-rows'), s.lag || [], (tr, l) => {
      cell(tr, l.group);
      cell(tr, l.topic);
      cell(tr, l.records, l.records > 0 ? 'behind' : '');
    });
    const b = s.breakers || [];
    $('breakers-empty').hidden = b.length > 0;
    fill($('breaker-rows'), b, (tr, x) => {
      cell(tr, x.provider);
      cell(tr, x.channel);
      const st = cell(tr, x.state + (x.open_until ? ' until ' + x.open_until : ''));
      st.className = STATES[x.state] || '';
      cell(tr, x.breakers + ' (' + x.open + ' / ' + x.half_open + ')');
      cell(tr, x.transitions);
    });
    const q = s.dlq;
    $('dlq-size').textContent = text(q ? q.size : null);
    $('dlq-latest-at').textContent = text(q ? q.latest_at : null);
    fill($('dlq-rows'), (q && q.latest) || [], (tr, e) => {
      cell(tr, e.id);
      cell(tr, e.at);
      cell(tr, e.stage);
      cell(tr, e.topic);
      cell(tr, e.reason, 'reason');
      cell(tr, e.redriven ? 'yes' : 'no');
    });
    const errs = s.errors || [];
    $('errors').textContent = errs.join('; ');
    $('errors').hidden = errs.length === 0;
    prev = s;
  }

  async function poll() {
    timer = null;
    try {
      const [status, body] = await api('/v1/ops/summary');
      if (status === 200 && body) {
        render(body);
        notice('');
      } else if (status === 403) {
        notice('This key cannot read the summary (it needs the admin scope); the lookup below still works with a read key.');
      } else {
        notice('GET /v1/ops/summary answered ' + status + ((body && body.detail) ? ': ' + body.detail : ''));
      }
    } catch (e) {
      if (e instanceof AuthError) {
        showLogin(e.message);
        return;
      }
      notice('herald did not answer: ' + e.message);
    }
    timer = setTimeout(poll, every * 1000);
  }

  async function lookup(id) {
    const msg = $('lookup-msg');
    const res = $('lookup-result');
    res.hidden = true;
    msg.textContent = 'looking up…';
    try {
      const [status, n] = await api('/v1/notifications/' + encodeURIComponent(id));
      if (status !== 200 || !n) {
        // 404 is also what a process without the ingest role answers: show herald's words
        msg.textContent = (status === 404 ? 'Not found' : 'GET /v1/notifications answered ' + status) +
          ((n && n.detail) ? ': ' + n.detail : '.');
        return;
      }
      msg.textContent = '';
      const fields = ['notification_id', 'status', 'channel', 'user_id', 'event_id', 'address',
        'attempt', 'error', 'created_at', 'updated_at', 'delivered_at'];
      fill($('lookup-fields'), fields, (tr, f) => {
        const th = document.createElement('th');
        th.textContent = f;
        tr.appendChild(th);
        cell(tr, n[f], 'f-' + f);
      });
      fill($('lookup-history'), n.history || [], (tr, h) => {
        cell(tr, h.at);
        cell(tr, h.status, 'status');
        cell(tr, h.attempt);
        cell(tr, h.detail);
      });
      res.hidden = false;
    } catch (e) {
      if (e instanceof AuthError) showLogin(e.message);
      else msg.textContent = 'herald did not answer: ' + e.message;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('key-input').value.trim();
      if (!k) return;
      sessionStorage.setItem(KEY_ITEM, k);
      $('key-input').value = '';
      start();
    });
    $('key-change').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_ITEM);
      showLogin('');
    });
    $('lookup-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('lookup-id').value.trim();
      if (id) lookup(id);
    });
    if (key()) start();
    else showLogin('');
  });
})();
