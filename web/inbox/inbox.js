// herald inbox page: one user's in-app inbox, live.
//
// Opened as /inbox#token=<user token> (POST /v1/users/{id}/inbox/token
// makes one; the fragment never reaches a server log or a Referer). The user
// id is read from the token itself. The page opens the live stream first
// (EventSource: GET .../inbox/stream?token=..., since EventSource cannot
// send headers), then lists the inbox with the token as a Bearer token, and
// merges both by notification id. Marks go through the API and the stream
// brings the counts back. Everything from the server reaches the DOM through
// textContent.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const PAGE = 30;

  function fromFragment() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    return p.get('token') || new URLSearchParams(location.search).get('token') || '';
  }

  // "hu1.<base64url payload>.<mac>": payload "<tenant>\n<exp>\n<user id>"
  function userOf(tok) {
    const parts = tok.split('.');
    if (parts.length !== 3 || parts[0] !== 'hu1') return null;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b64 + '='.repeat((4 - b64.length % 4) % 4));
      const text = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
      const f = text.split('\n');
      return f.length >= 3 ? { tenant: f[0], exp: parseInt(f[1], 10), user: f.slice(2).join('\n') } : null;
    } catch (e) {
      return null;
    }
  }

  const token = fromFragment();
  const who = userOf(token);
  const items = new Map();   // notification_id -> {data, el}
  let cursor = null;
  let source = null;
  // for measurements: when each item reached the page (ms since the epoch)
  window.heraldInbox = { arrivals: {} };

  function notice(msg) {
    $('notice').textContent = msg || '';
    $('notice').hidden = !msg;
  }

  function base() {
    return '/v1/users/' + encodeURIComponent(who.user) + '/inbox';
  }

  async function api(method, path) {
    const r = await fetch(base() + path, {
      method: method,
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
    });
    if (r.status === 401 || r.status === 403) {
      notice('This link has expired; reload the page from the app.');
      if (source) source.close();
      throw new Error('HTTP ' + r.status);
    }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return r.status === 204 ? null : r.json();
  }

  function setCounts(c) {
    if (!c || typeof c.unread !== 'number') return;
    const b = $('unread');
    b.textContent = c.unread > 99 ? '99+' : String(c.unread);
    b.hidden = c.unread === 0;
    b.dataset.count = String(c.unread);
    document.title = c.unread ? '(' + c.unread + ') Notifications' : 'Notifications';
  }

  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleString();
  }

  function render(it) {
    const el = $('item-tpl').content.firstElementChild.cloneNode(true);
    el.dataset.id = it.notification_id;
    el.querySelector('.item-title').textContent = it.title || '';
    el.querySelector('.item-text').textContent = it.body || '';
    const t = el.querySelector('.item-time');
    t.textContent = when(it.created_at);
    t.dateTime = it.created_at || '';
    el.classList.toggle('unread', !it.read_at);
    el.querySelector('.mark').addEventListener('click', () => markRead(it.notification_id));
    return el;
  }

  // Newest first by (created_at, notification_id), the store's order.
  function before(a, b) {
    if (a.created_at !== b.created_at) return a.created_at > b.created_at;
    return a.notification_id > b.notification_id;
  }

  function add(it, live) {
    if (it.archived_at) return;
    const known = items.get(it.notification_id);
    if (known) {
      known.data = it;
      known.el.classList.toggle('unread', !it.read_at);
      return;
    }
    const el = render(it);
    const list = $('items');
    let next = null;
    for (const child of list.children) {
      const other = items.get(child.dataset.id);
      if (other && before(it, other.data)) { next = child; break; }
    }
    list.insertBefore(el, next);
    items.set(it.notification_id, { data: it, el: el });
    if (live) window.heraldInbox.arrivals[it.notification_id] = Date.now();
    $('empty').hidden = true;
  }

  function setRead(id) {
    const x = items.get(id);
    if (!x) return;
    x.data.read_at = x.data.read_at || new Date().toISOString();
    x.el.classList.remove('unread');
  }

  function remove(id) {
    const x = items.get(id);
    if (!x) return;
    x.el.remove();
    items.delete(id);
    $('empty').hidden = items.size > 0;
  }

  async function markRead(id) {
    setRead(id);
    try {
      setCounts(await api('POST', '/' + encodeURIComponent(id) + '/read'));
    } catch (e) { /* the notice says why */ }
  }

  async function markAll() {
    for (const id of items.keys()) setRead(id);
    try {
      setCounts(await api('POST', '/read-all'));
    } catch (e) { /* the notice says why */ }
  }

  async function load(reset) {
    if (reset) {
      items.clear();
      $('items').replaceChildren();
      cursor = null;
    }
    const q = '?limit=' + PAGE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await api('GET', q);
    for (const it of page.items) add(it, false);
    cursor = page.next_cursor;
    $('more').hidden = !cursor;
    $('empty').hidden = items.size > 0;
  }

  function parse(e) {
    try { return JSON.parse(e.data); } catch (x) { return null; }
  }

  function connect() {
    source = new EventSource(base() + '/stream?token=' + encodeURIComponent(token));
    source.addEventListener('open', () => { $('live').className = 'live on'; $('live').textContent = 'live'; });
    source.addEventListener('error', () => { $('live').className = 'live off'; $('live').textContent = 'reconnecting'; });
    source.addEventListener('item', (e) => { const it = parse(e); if (it) add(it, true); });
    source.addEventListener('counts', (e) => setCounts(parse(e)));
    source.addEventListener('mark', (e) => {
      const m = parse(e);
      if (!m || (m.mark !== 'read' && m.mark !== 'archive')) return;
      if (m.notification_id === null) {
        for (const id of [...items.keys()]) m.mark === 'archive' ? remove(id) : setRead(id);
      } else {
        m.mark === 'archive' ? remove(m.notification_id) : setRead(m.notification_id);
      }
    });
    source.addEventListener('delete', (e) => { const m = parse(e); if (m) remove(m.notification_id); });
    source.addEventListener('reset', () => { load(true).catch(() => {}); });
  }

  function start() {
    if (!who) {
      notice('Open this page with a user token: /inbox#token=<token>.');
      $('read-all').hidden = true;
      return;
    }
    $('read-all').addEventListener('click', markAll);
    $('more').addEventListener('click', () => load(false).catch(() => {}));
    $('bell').addEventListener('click', () => {
      const open = $('panel').hidden;
      $('panel').hidden = !open;
      $('bell').setAttribute('aria-expanded', String(open));
    });
    connect();
    load(true).then(() => api('GET', '/counts')).then(setCounts).catch(() => {});
  }

  start();
})();
