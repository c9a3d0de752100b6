// The nanomq dashboard's script: polls the admin API every 2 s and shows what it answers.
//
// Rules it keeps:
// - Everything from the API (client ids, user names, topics, payloads) is untrusted and goes
//   into the DOM as text only (`el` and `textContent`); nothing here parses HTML.
// - Requests go to this page's origin with the browser's own credentials (the Basic prompt
//   it answered, or the credentials of the page's URL): the script never sees a password.
// - The message-rate history lives in this page only: the last five minutes of samples.
'use strict';

const POLL_MS = 2000;
const WINDOW_S = 300; // the chart's history: five minutes
const MIN_SPAN_S = 60; // the chart's narrowest time axis, while the history is shorter
const LIST_LIMIT = 1000;
const KICK_CONFIRM_MS = 4000;

const state = {
  samples: [], // {t (seconds), received, sent, dropped}
  clients: [],
  clientsCount: 0,
  retained: [],
  retainedCount: 0,
  armedKick: null, // {id, until}: the client whose Kick button asks for a second click
  refreshes: 0,
};

// ---- helpers -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// An element with attributes and children; strings become text nodes, never markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  }
  return node;
}

// An SVG element with attributes (numbers and constants only, or text through textContent).
function svg(tag, attrs, text) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The API's answer to `path`, or an error carrying its message. URLs are built on the
// origin: a page opened as http://user:pass@host/ must not put credentials in a request.
async function api(path, options = {}) {
  const response = await fetch(new URL(path, window.location.origin), {
    credentials: 'same-origin',
    cache: 'no-store',
    ...options,
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    // Not JSON: reported below with the status.
  }
  if (!response.ok || !body || body.code !== 0) {
    const message = body && typeof body.message === 'string' ? body.message : response.statusText;
    throw new Error(`${path}: ${response.status} ${message}`);
  }
  return body;
}

const number = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

function rate(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60;
  const s = seconds % 60;
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${s}s`;
}

// Replaces a table's rows; `empty` is the one row's text when there are none.
function fillTable(table, rows, columns, empty) {
  const body = table.tBodies[0];
  if (rows.length === 0) {
    body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: String(columns) }, empty)));
  } else {
    body.replaceChildren(...rows);
  }
}

function countText(shown, total) {
  return shown < total ? `${number(shown)} of ${number(total)}` : number(total);
}

function notify(text, isError) {
  const notice = $('notice');
  notice.textContent = text;
  notice.className = isError ? 'notice error' : 'notice';
  notice.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { notice.hidden = true; }, 5000);
}

// ---- overview and chart --------------------------------------------------------------

async function loadMetrics() {
  const m = (await api('/api/v4/metrics')).data[0];
  $('stat-connections').textContent = number(m.connections);
  $('stat-sessions').textContent = number(m.sessions);
  $('stat-subscriptions').textContent = number(m.subscriptions);
  $('stat-retained').textContent = number(m.retained_messages);
  $('stat-dropped').textContent = number(m.dropped);
  $('uptime').textContent = `up ${duration(m.uptime_seconds)}`;

  const drops = [
    ['queue full', m.dropped_queue_full],
    ['too large', m.dropped_too_large],
    ['expired', m.dropped_expired],
    ['QoS 0 while offline', m.dropped_offline_qos0],
    ['no subscribers', m.dropped_no_subscribers],
    ['denied by ACL', m.dropped_acl],
  ];
  $('drops').replaceChildren(...drops.map(([label, n]) =>
    el('div', { class: n > 0 ? 'nonzero' : '' }, el('dt', {}, label), el('dd', {}, number(n)))));

  // A refresh right after an action comes early: its sample would make a noisy rate.
  const t = performance.now() / 1000;
  const previous = state.samples[state.samples.length - 1];
  if (!previous || t - previous.t >= 1) {
    state.samples.push({ t, received: m.messages_received, sent: m.messages_sent, dropped: m.dropped });
  }
  while (state.samples.length > 2 && state.samples[1].t < t - WINDOW_S) state.samples.shift();
  const rates = rateSeries();
  const last = rates[rates.length - 1];
  $('stat-in-rate').textContent = last ? rate(last.received) : '–';
  $('stat-out-rate').textContent = last ? rate(last.sent) : '–';
  drawChart(rates, t);
}

// Per-second rates between consecutive samples (a counter that went back, as after a
// restart behind the same address, gives no rate for that step).
function rateSeries() {
  const rates = [];
  for (let i = 1; i < state.samples.length; i += 1) {
    const a = state.samples[i - 1];
    const b = state.samples[i];
    const dt = b.t - a.t;
    if (dt <= 0 || b.received < a.received || b.sent < a.sent || b.dropped < a.dropped) continue;
    rates.push({
      t: b.t,
      received: (b.received - a.received) / dt,
      sent: (b.sent - a.sent) / dt,
      dropped: (b.dropped - a.dropped) / dt,
    });
  }
  return rates;
}

// A round number at or above `n`: 1, 2, 5 times a power of ten.
function niceCeiling(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (n <= step * power) return step * power;
  return 10 * power;
}

function drawChart(rates, now) {
  const chart = $('chart');
  const width = Math.max(chart.clientWidth, 300);
  const height = Math.max(chart.clientHeight, 120);
  const left = 48;
  const right = 8;
  const top = 8;
  const bottom = 20;
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const max = niceCeiling(Math.max(0, ...rates.map((r) => Math.max(r.received, r.sent, r.dropped))));
  // The time axis spans the history kept, from one minute up to five.
  const first = state.samples.length > 0 ? state.samples[0].t : now;
  const span = Math.min(WINDOW_S, Math.max(MIN_SPAN_S, now - first));
  const x = (t) => left + (width - left - right) * (1 - (now - t) / span);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);

  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    parts.push(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    const label = Number.isInteger(value) ? value.toLocaleString('en-US') : value.toFixed(1);
    parts.push(svg('text', { class: 'axis', x: left - 6, y: y(value) + 4, 'text-anchor': 'end' }, label));
  }
  const step = span > 150 ? 60 : span > 90 ? 30 : 15;
  for (let ago = 0; ago <= span; ago += step) {
    const label = ago === 0 ? 'now' : ago % 60 === 0 ? `−${ago / 60} min` : `−${ago} s`;
    const anchor = ago === 0 ? 'end' : ago + step > span ? 'start' : 'middle';
    parts.push(svg('text', { class: 'axis', x: x(now - ago), y: height - 4, 'text-anchor': anchor }, label));
  }
  for (const series of ['dropped', 'received', 'sent']) {
    const points = rates.map((r) => `${x(r.t).toFixed(1)},${y(r[series]).toFixed(1)}`).join(' ');
    parts.push(svg('polyline', { class: `series ${series}`, points }));
  }
  if (rates.length === 0) {
    parts.push(svg('text', { class: 'axis', x: width / 2, y: height / 2, 'text-anchor': 'middle' },
      'collecting samples…'));
  }
  chart.replaceChildren(...parts);
}

// ---- clients -------------------------------------------------------------------------

async function loadClients() {
  const answer = await api(`/api/v4/clients?_limit=${LIST_LIMIT}`);
  state.clients = answer.data;
  state.clientsCount = answer.meta.count;
  renderClients();
}

function renderClients() {
  const query = $('client-search').value.trim().toLowerCase();
  const matches = (c) => !query
    || String(c.client_id).toLowerCase().includes(query)
    || (c.username !== null && String(c.username).toLowerCase().includes(query));
  const shown = state.clients.filter(matches);
  const rows = shown.map((c) => {
    const peer = c.peerhost ? `${c.peerhost}:${c.peerport}` : '';
    const connected = c.conn_state === 'connected';
    return el('tr', {},
      el('td', { class: 'id', title: c.client_id }, c.client_id),
      el('td', {}, c.username ?? ''),
      el('td', {}, el('span', { class: connected ? 'badge ok' : 'badge off' }, c.conn_state)),
      el('td', {}, c.proto_ver ? `v${c.proto_ver} ${c.transport ?? ''}` : ''),
      el('td', { class: 'mono' }, peer),
      el('td', { class: 'num' }, number(c.subscriptions_count)),
      el('td', { class: 'num' }, number(c.queued)),
      el('td', { class: 'num' }, number(c.in_flight)),
      el('td', { class: 'muted' }, c.connected_at ?? ''),
      el('td', {}, c.transport === 'internal' ? internalLabel(c.client_id) : kickButton(c.client_id, connected)));
  });
  fillTable($('clients'), rows, 10, query ? 'No client matches the search.' : 'No clients.');
  $('clients-count').textContent = query
    ? `${number(shown.length)} shown of ${number(state.clientsCount)}`
    : countText(state.clients.length, state.clientsCount);
}

// The broker's own sessions (a bridge's local end) are not the operator's to kick here.
function internalLabel(id) {
  return el('span', { class: 'muted' }, String(id).startsWith('$bridge/') ? 'bridge' : 'internal');
}

// Kick asks for a second click: a disconnected client's kick removes its session.
function kickButton(id, connected) {
  const armed = state.armedKick && state.armedKick.id === id && state.armedKick.until > Date.now();
  return el('button', {
    type: 'button',
    class: armed ? 'kick armed' : 'kick',
    title: connected ? 'Disconnect this client' : 'Remove this session',
    onclick: () => kick(id),
  }, armed ? 'Confirm' : connected ? 'Kick' : 'Remove');
}

async function kick(id) {
  const armed = state.armedKick && state.armedKick.id === id && state.armedKick.until > Date.now();
  if (!armed) {
    state.armedKick = { id, until: Date.now() + KICK_CONFIRM_MS };
    renderClients();
    setTimeout(renderClients, KICK_CONFIRM_MS + 50);
    return;
  }
  state.armedKick = null;
  try {
    const answer = await api(`/api/v4/clients/${encodeURIComponent(id)}`, { method: 'DELETE' });
    notify(`${id}: ${answer.data.kicked.replace('_', ' ')}`, false);
  } catch (e) {
    notify(e.message, true);
  }
  refresh();
}

// ---- subscriptions, retained messages, bridges ---------------------------------------

async function loadSubscriptions() {
  const answer = await api(`/api/v4/subscriptions?_limit=${LIST_LIMIT}`);
  const rows = answer.data.map((s) => {
    const options = [];
    if (s.no_local) options.push('no local');
    if (s.retain_as_published) options.push('RAP');
    if (s.retain_handling) options.push(`RH ${s.retain_handling}`);
    return el('tr', {},
      el('td', { class: 'id', title: s.clientid }, s.clientid),
      el('td', { class: 'mono' }, s.topic),
      el('td', { class: 'num' }, s.qos),
      el('td', { class: 'muted', title: 'RAP: retain as published; RH: retain handling' },
        options.join(' · ')));
  });
  fillTable($('subscriptions'), rows, 4, 'No subscriptions.');
  $('subscriptions-count').textContent = countText(answer.data.length, answer.meta.count);
}

async function loadRetained() {
  const answer = await api(`/api/v4/retained?_limit=${LIST_LIMIT}`);
  state.retained = answer.data;
  state.retainedCount = answer.meta.count;
  renderRetained();
}

// The broker's own `$SYS` topics are many and retained: hidden unless asked for.
function renderRetained() {
  const withSys = $('retained-sys').checked;
  const shown = state.retained.filter((r) => withSys || !String(r.topic).startsWith('$'));
  const rows = shown.map((r) => {
    const preview = r.preview + (r.truncated ? '…' : '');
    return el('tr', {},
      el('td', { class: 'mono' }, r.topic),
      el('td', { class: 'num' }, r.qos),
      el('td', { class: 'num' }, bytes(r.payload_size)),
      el('td', { class: 'payload', title: preview },
        r.preview_encoding === 'hex' ? el('span', { class: 'tag' }, 'hex') : '',
        el('span', { class: 'mono' }, preview)));
  });
  const hidden = state.retained.length - shown.length;
  fillTable($('retained'), rows, 4, hidden ? `No retained messages outside $SYS (${hidden} hidden).` : 'No retained messages.');
  $('retained-count').textContent = hidden
    ? `${countText(shown.length, state.retainedCount - hidden)} · ${number(hidden)} $SYS hidden`
    : countText(shown.length, state.retainedCount);
}

async function loadBridges() {
  const answer = await api('/api/v4/bridges');
  const rows = answer.data.map((b) => el('tr', {},
    el('td', {}, b.name),
    el('td', { class: 'mono' }, b.servers.join(', ')),
    el('td', {}, el('span', { class: b.connected ? 'badge ok' : 'badge bad' },
      b.connected ? 'connected' : 'disconnected')),
    el('td', { class: 'num' }, number(b.forwarded)),
    el('td', { class: 'num' }, number(b.received)),
    el('td', { class: 'num' }, number(b.queued)),
    el('td', { class: 'num' }, number(b.dropped)),
    el('td', { class: 'num' }, number(b.reconnects))));
  fillTable($('bridges'), rows, 8, 'No bridges configured.');
  $('bridges-count').textContent = number(answer.data.length);
}

// ---- publish -------------------------------------------------------------------------

async function publish(event) {
  event.preventDefault();
  const form = event.target;
  const result = $('publish-result');
  const message = {
    topic: form.elements.topic.value,
    payload: form.elements.payload.value,
    qos: Number(form.elements.qos.value),
    retain: form.elements.retain.checked,
    clientid: 'dashboard',
  };
  try {
    const answer = await api('/api/v4/mqtt/publish', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
    });
    result.className = 'result ok';
    result.textContent = `Published to ${message.topic}: queued for ${answer.data.queued} session(s).`;
  } catch (e) {
    result.className = 'result error';
    result.textContent = e.message;
  }
  refresh();
}

// ---- the loop ------------------------------------------------------------------------

// Metrics every time (the chart needs every sample); the lists, which cost the broker a walk
// of its sessions, only while the page is in view.
async function refresh() {
  const loads = [loadMetrics()];
  if (!document.hidden) loads.push(loadClients(), loadSubscriptions(), loadRetained(), loadBridges());
  const outcomes = await Promise.allSettled(loads);
  const failure = outcomes.find((o) => o.status === 'rejected');
  const status = $('status');
  if (failure) {
    status.textContent = `error: ${failure.reason.message}`;
    status.className = 'status error';
  } else {
    status.textContent = `live · ${new Date().toLocaleTimeString('en-GB')}`;
    status.className = 'status ok';
  }
  state.refreshes += 1;
  document.body.dataset.refreshes = String(state.refreshes);
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

async function start() {
  $('client-search').addEventListener('input', renderClients);
  $('retained-sys').addEventListener('change', renderRetained);
  $('publish').addEventListener('submit', publish);
  try {
    const broker = (await api('/api/v4/brokers')).data[0];
    $('version').textContent = `${broker.sysdescr} ${broker.version}`;
  } catch (_) {
    // The status line reports the API's failures at the first refresh.
  }
  poll();
}

start();
