// The demo page `serve` answers GET / with: a WebSocket console for the browser, on the browser's own
// WebSocketStream (or WebSocket where there is none), that talks to this server or any other. One
// self-contained HTML string: package.json ships only dist/, and the page must work without
// internet, so there are no files or external resources.
import { createHash } from 'node:crypto';

// Plain ES2020 in a String.raw, so that regular expressions keep their backslashes (and so no
// backquotes or dollar-braces inside). Messages are shown with textContent only: in broadcast mode
// they come from other people's browsers.
const SCRIPT = String.raw`
'use strict';
/** Rows kept in the message list: a page left open on a busy feed must not grow without bound. */
const MAX_LOG_ROWS = 500;
/** Seconds of history on the plot. */
const PLOT_SECONDS = 60;
/** Sent messages remembered to time their echo; the oldest are forgotten first. */
const MAX_PENDING_ECHOES = 1000;
/** Shortest interval for "repeat every … ms". */
const MIN_REPEAT_MS = 10;
/** What a log row shows of a message. */
const PREVIEW_BYTES = 64;
const PREVIEW_CHARS = 300;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const forceWebSocket = params.get('api') === 'websocket';
const useStream = 'WebSocketStream' in globalThis && !forceWebSocket;
$('api').textContent = useStream ? 'WebSocketStream' : 'WebSocket';
$('api-note').textContent = useStream ? '' : forceWebSocket ? ' (chosen with ?api=websocket)' : ' (this browser has no WebSocketStream)';
$('url').value = params.get('url') || (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
if (params.get('protocols') !== null) $('protocols').value = params.get('protocols');

const encoder = new TextEncoder();
let connection = null;
let repeatTimer = null;
const stats = { sent: 0, received: 0, bytesSent: 0, bytesReceived: 0, lastRtt: null };
/** Per-second buckets, oldest first: { second, in, out, rttSum, rttCount }. */
let series = [];
/** Messages sent and not yet seen coming back: { key, at }, oldest first. */
let pending = [];

// ---- formatting

function pad(number, width) {
  return String(number).padStart(width, '0');
}

function clock(date) {
  return pad(date.getHours(), 2) + ':' + pad(date.getMinutes(), 2) + ':' + pad(date.getSeconds(), 2) + '.' + pad(date.getMilliseconds(), 3);
}

function formatSize(bytes) {
  if (bytes < 1024) return bytes + ' B';
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
  return (bytes / 1024 / 1024).toFixed(1) + ' MiB';
}

function formatMs(ms) {
  return ms === null ? '–' : (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';
}

// Chromium's WebSocketStream may hand binary messages over as ArrayBuffer or as Uint8Array.
function toBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function hexOf(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function isJson(text) {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** { kind, size, preview, key } of a message; key identifies it to match an echo with its send. */
function describe(data) {
  if (typeof data === 'string') {
    const size = encoder.encode(data).length;
    const preview = data.length > PREVIEW_CHARS ? data.slice(0, PREVIEW_CHARS) + ' …' : data;
    return { kind: isJson(data) ? 'JSON' : 'text', size, preview, key: 't' + size + ':' + data.slice(0, 256) };
  }
  const bytes = toBytes(data);
  if (bytes === null) return { kind: 'unexpected', size: 0, preview: Object.prototype.toString.call(data), key: '' };
  const shown = hexOf(bytes.subarray(0, PREVIEW_BYTES));
  return { kind: 'binary', size: bytes.length, preview: shown + (bytes.length > PREVIEW_BYTES ? ' …' : ''), key: 'b' + bytes.length + ':' + shown };
}

function errorText(error) {
  if (error === null || typeof error !== 'object') return String(error);
  let text = (error.name ? error.name + ': ' : '') + (error.message || '(no message)');
  if (typeof error.closeCode === 'number') text += ' [code ' + error.closeCode + (error.reason ? ', reason ' + JSON.stringify(error.reason) : '') + ']';
  return text;
}

// ---- the message list

function addRow(direction, kind, size, text) {
  const row = document.createElement('tr');
  row.className = direction;
  row.dataset.dir = direction;
  row.dataset.kind = kind;
  const arrows = { in: '←', out: '→', status: '•', error: '!' };
  const cells = [clock(new Date()), arrows[direction] || '', kind, size === null ? '' : formatSize(size), text];
  const names = ['time', 'dir', 'kind', 'size', 'data'];
  cells.forEach((content, index) => {
    const cell = document.createElement('td');
    cell.className = names[index];
    cell.textContent = content;
    row.append(cell);
  });
  if (size !== null) row.dataset.size = String(size);
  const body = $('log-body');
  const box = $('log');
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  body.append(row);
  while (body.rows.length > MAX_LOG_ROWS) body.deleteRow(0);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function note(text) {
  addRow('status', 'status', null, text);
}

function problem(text) {
  addRow('error', 'error', null, text);
}

// ---- statistics and the plot

function currentBucket() {
  const now = Math.floor(Date.now() / 1000);
  let last = series[series.length - 1];
  if (last === undefined || now - last.second > PLOT_SECONDS) {
    series = [];
    last = { second: now, in: 0, out: 0, rttSum: 0, rttCount: 0 };
    series.push(last);
  }
  while (last.second < now) {
    last = { second: last.second + 1, in: 0, out: 0, rttSum: 0, rttCount: 0 };
    series.push(last);
  }
  while (series.length > PLOT_SECONDS) series.shift();
  return last;
}

function countSent(info) {
  stats.sent++;
  stats.bytesSent += info.size;
  currentBucket().out++;
  document.body.dataset.sent = String(stats.sent);
  pending.push({ key: info.key, at: performance.now() });
  if (pending.length > MAX_PENDING_ECHOES) pending.shift();
}

function countReceived(info) {
  stats.received++;
  stats.bytesReceived += info.size;
  document.body.dataset.received = String(stats.received);
  const bucket = currentBucket();
  bucket.in++;
  // An echo: the first message sent with the same content that has not come back yet.
  const index = pending.findIndex((entry) => entry.key === info.key);
  if (index !== -1) {
    const rtt = performance.now() - pending[index].at;
    pending.splice(index, 1);
    stats.lastRtt = rtt;
    bucket.rttSum += rtt;
    bucket.rttCount++;
  }
}

function showStats() {
  currentBucket();
  const complete = series.length > 1 ? series[series.length - 2] : { in: 0, out: 0 };
  let rttSum = 0;
  let rttCount = 0;
  for (const bucket of series) {
    rttSum += bucket.rttSum;
    rttCount += bucket.rttCount;
  }
  $('stat-sent').textContent = stats.sent + ' (' + formatSize(stats.bytesSent) + ')';
  $('stat-received').textContent = stats.received + ' (' + formatSize(stats.bytesReceived) + ')';
  $('stat-rate').textContent = complete.out + ' out/s, ' + complete.in + ' in/s';
  $('stat-rtt').textContent = formatMs(stats.lastRtt);
  $('stat-rtt-avg').textContent = formatMs(rttCount === 0 ? null : rttSum / rttCount);
  document.body.dataset.rttSamples = String(rttCount);
  draw();
}

let statsScheduled = false;
function scheduleStats() {
  if (statsScheduled) return;
  statsScheduled = true;
  setTimeout(() => {
    statsScheduled = false;
    showStats();
  }, 100);
}

/** Bars: messages per second (sent, then received, stacked); line: mean round-trip time per second. */
function draw() {
  const canvas = $('plot');
  const context = canvas.getContext('2d');
  const width = canvas.width;
  const height = canvas.height;
  const left = 44;
  const right = 52;
  const top = 12;
  const bottom = 20;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  context.clearRect(0, 0, width, height);
  context.fillStyle = '#fcfcfc';
  context.fillRect(0, 0, width, height);
  context.strokeStyle = '#ccc';
  context.strokeRect(left + 0.5, top + 0.5, plotWidth, plotHeight);

  const now = Math.floor(Date.now() / 1000);
  const slot = plotWidth / PLOT_SECONDS;
  const x = (second) => left + (PLOT_SECONDS - 1 - (now - second)) * slot;
  let maxRate = 1;
  let maxRtt = 0;
  for (const bucket of series) {
    maxRate = Math.max(maxRate, bucket.in + bucket.out);
    if (bucket.rttCount > 0) maxRtt = Math.max(maxRtt, bucket.rttSum / bucket.rttCount);
  }
  maxRtt = maxRtt === 0 ? 1 : maxRtt * 1.1;

  let bars = 0;
  for (const bucket of series) {
    const outHeight = (bucket.out / maxRate) * plotHeight;
    const inHeight = (bucket.in / maxRate) * plotHeight;
    const barX = x(bucket.second) + 1;
    context.fillStyle = '#9aa5b1';
    context.fillRect(barX, top + plotHeight - outHeight, Math.max(1, slot - 2), outHeight);
    context.fillStyle = '#3d7cc9';
    context.fillRect(barX, top + plotHeight - outHeight - inHeight, Math.max(1, slot - 2), inHeight);
    if (bucket.in + bucket.out > 0) bars++;
  }

  let points = 0;
  context.strokeStyle = '#d9480f';
  context.fillStyle = '#d9480f';
  context.lineWidth = 2;
  context.beginPath();
  for (const bucket of series) {
    if (bucket.rttCount === 0) continue;
    const pointX = x(bucket.second) + slot / 2;
    const pointY = top + plotHeight - (bucket.rttSum / bucket.rttCount / maxRtt) * plotHeight;
    if (points === 0) context.moveTo(pointX, pointY);
    else context.lineTo(pointX, pointY);
    context.fillRect(pointX - 2, pointY - 2, 4, 4);
    points++;
  }
  context.stroke();

  context.fillStyle = '#555';
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  context.fillText(maxRate + '/s', left - 4, top + 9);
  context.fillText('0', left - 4, top + plotHeight);
  context.textAlign = 'left';
  context.fillText(formatMs(maxRtt), left + plotWidth + 4, top + 9);
  context.fillText('-' + PLOT_SECONDS + ' s', left, height - 5);
  context.textAlign = 'right';
  context.fillText('now', left + plotWidth, height - 5);
  canvas.dataset.bars = String(bars);
  canvas.dataset.rttPoints = String(points);
}

// ---- connection state

function setState(state) {
  $('state').textContent = state;
  document.body.dataset.state = state;
  $('connect').disabled = state !== 'closed';
  $('url').disabled = state !== 'closed';
  $('protocols').disabled = state !== 'closed';
  $('send').disabled = state !== 'open';
  $('close').disabled = state !== 'open' && state !== 'connecting';
  if (state !== 'open') stopRepeat();
}

function showClose(code, reason, clean) {
  $('close-code').textContent = code === null || code === undefined ? '–' : String(code);
  $('close-reason').textContent = reason ? JSON.stringify(reason) : '""';
  $('close-clean').textContent = clean ? 'yes' : 'no';
  $('close-clean').className = clean ? 'clean' : 'unclean';
  document.body.dataset.clean = clean ? 'yes' : 'no';
}

function showOpen(protocol, extensions) {
  $('protocol').textContent = protocol || '(none)';
  $('extensions').textContent = extensions || '(none)';
  note('open' + (protocol ? ', protocol ' + protocol : '') + (extensions ? ', extensions ' + extensions : ''));
  setState('open');
}

function closed() {
  connection = null;
  setState('closed');
  showStats();
}

function received(data) {
  const info = describe(data);
  countReceived(info);
  addRow('in', info.kind, info.size, info.preview);
  scheduleStats();
}

function protocols() {
  return $('protocols').value.split(',').map((p) => p.trim()).filter((p) => p !== '');
}

function connectWithStream(url) {
  const stream = new WebSocketStream(url, { protocols: protocols() });
  let writer = null;
  let opened = false;
  connection = {
    send: (data) => (writer === null ? Promise.reject(new Error('not open')) : writer.write(data)),
    close: (info) => stream.close(info),
  };
  stream.closed.then(
    ({ closeCode, reason }) => {
      note('closed cleanly: code ' + closeCode + ', reason ' + JSON.stringify(reason));
      showClose(closeCode, reason, true);
    },
    (error) => {
      if (opened) problem('closed uncleanly: ' + errorText(error));
      showClose(error.closeCode, error.reason, false);
    },
  ).finally(closed);
  stream.opened.then(async ({ readable, writable, protocol, extensions }) => {
    opened = true;
    writer = writable.getWriter();
    showOpen(protocol, extensions);
    const reader = readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received(value);
    }
  }, (error) => problem('could not connect: ' + errorText(error) + ' (browsers do not say why; the server may)')).catch(() => {
    // The readable errors on an unclean close, which the closed handler reports.
  });
}

function connectWithWebSocket(url) {
  const socket = new WebSocket(url, protocols());
  socket.binaryType = 'arraybuffer';
  connection = {
    send: (data) => {
      socket.send(data);
      return Promise.resolve();
    },
    close: (info) => {
      if (info.closeCode === undefined && info.reason !== undefined) info.closeCode = 1000;
      socket.close(info.closeCode, info.reason);
    },
  };
  socket.onopen = () => showOpen(socket.protocol, socket.extensions);
  socket.onmessage = (event) => received(event.data);
  socket.onerror = () => problem('WebSocket error (browsers do not say more; see the close code)');
  socket.onclose = (event) => {
    if (event.wasClean) note('closed cleanly: code ' + event.code + ', reason ' + JSON.stringify(event.reason));
    else problem('closed uncleanly: code ' + event.code + ', reason ' + JSON.stringify(event.reason));
    showClose(event.code, event.reason, event.wasClean);
    closed();
  };
}

// ---- sending

function parseHex(text) {
  const digits = text.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) return null;
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function parseBase64(text) {
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  const unpadded = compact.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return null;
  const binary = atob(unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The message the form describes, or an error message. */
function composeMessage() {
  const text = $('message').value;
  const format = $('format').value;
  if (format === 'text') return { data: text };
  if (format === 'json') {
    try {
      JSON.parse(text);
    } catch (error) {
      return { error: 'not JSON: ' + error.message };
    }
    return { data: text };
  }
  if (format === 'utf8') return { data: encoder.encode(text) };
  const bytes = format === 'hex' ? parseHex(text) : parseBase64(text);
  return bytes === null ? { error: 'not ' + format + ': ' + JSON.stringify(text.slice(0, 60)) } : { data: bytes };
}

let writing = false;
async function send() {
  if (connection === null) return;
  const message = composeMessage();
  $('send-error').textContent = message.error || '';
  if (message.error) return;
  const info = describe(message.data);
  countSent(info);
  addRow('out', info.kind, info.size, info.preview);
  scheduleStats();
  writing = true;
  try {
    await connection.send(message.data);
  } catch (error) {
    problem('send failed: ' + errorText(error));
  } finally {
    writing = false;
  }
}

function startRepeat() {
  stopRepeat();
  const ms = Math.max(MIN_REPEAT_MS, Number($('repeat-ms').value) || 1000);
  $('repeat').checked = true;
  // A send still waiting for the network skips a turn: the page never queues without bound.
  repeatTimer = setInterval(() => {
    if (!writing) void send();
  }, ms);
}

function stopRepeat() {
  if (repeatTimer !== null) clearInterval(repeatTimer);
  repeatTimer = null;
  $('repeat').checked = false;
}

// ---- the forms

$('connect-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (connection !== null) return;
  let url = $('url').value.trim();
  // The WebSocket constructors take http(s) URLs too; the page's CSP allows ws: and wss: only.
  url = url.replace(/^http(s?):/i, 'ws$1:');
  setState('connecting');
  $('protocol').textContent = '–';
  $('extensions').textContent = '–';
  $('close-code').textContent = '–';
  $('close-reason').textContent = '–';
  $('close-clean').textContent = '–';
  $('close-clean').className = '';
  delete document.body.dataset.clean;
  pending = [];
  note('connecting to ' + url + ' with ' + (useStream ? 'WebSocketStream' : 'WebSocket'));
  try {
    (useStream ? connectWithStream : connectWithWebSocket)(url);
  } catch (error) {
    problem(errorText(error));
    closed();
  }
});
$('send-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});
$('repeat').addEventListener('change', () => {
  if ($('repeat').checked && connection !== null && document.body.dataset.state === 'open') startRepeat();
  else stopRepeat();
});
$('close-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (connection === null) return;
  const info = {};
  const code = $('code').value.trim();
  const reason = $('reason').value;
  if (code !== '') info.closeCode = Number(code);
  if (reason !== '') info.reason = reason;
  try {
    connection.close(info);
    note('closing' + (code !== '' ? ' with code ' + code : '') + (reason !== '' ? ', reason ' + JSON.stringify(reason) : ''));
    if (document.body.dataset.state === 'open') setState('closing');
  } catch (error) {
    problem('close refused: ' + errorText(error));
  }
});
$('clear').addEventListener('click', () => $('log-body').replaceChildren());
setState('closed');
document.body.dataset.sent = '0';
document.body.dataset.received = '0';
setInterval(showStats, 1000);
showStats();
`;

const STYLE = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.2rem auto; max-width: 64rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.35rem; margin: 0 0 .3rem; }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
input, select, button { font: inherit; padding: .2rem .4rem; }
#url { flex: 1 1 18rem; } #message { flex: 1 1 18rem; } #code { width: 5.5rem; } #repeat-ms { width: 5.5rem; }
.panels { display: flex; flex-wrap: wrap; gap: .4rem 1.6rem; margin: .6rem 0; font-size: .92rem; }
.panels b { font-weight: 600; }
#state { text-transform: uppercase; letter-spacing: .03em; }
body[data-state="open"] #state { color: #1b6e20; } body[data-state="closed"] #state { color: #7a4d00; }
.clean { color: #1b6e20; } .unclean { color: #b00020; }
#plot { width: 100%; height: auto; border: 1px solid #ddd; display: block; margin: .4rem 0; }
.legend { font-size: .85rem; color: #555; } .legend .out { color: #6b7785; } .legend .in { color: #3d7cc9; } .legend .rtt { color: #d9480f; }
#log { height: 22rem; overflow: auto; background: #f6f6f6; border: 1px solid #ddd; margin: .6rem 0; }
#log table { border-collapse: collapse; width: 100%; font: 13px/1.45 ui-monospace, monospace; }
#log td { padding: 0 .4rem; vertical-align: top; white-space: nowrap; }
#log td.data { white-space: pre-wrap; word-break: break-all; width: 100%; }
#log td.size { text-align: right; }
tr.in { color: #05508a; } tr.out { color: #555; } tr.error { color: #b00020; } tr.status { color: #1b6e20; }
#send-error { color: #b00020; }
.note { color: #666; font-size: .88rem; }
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * Only this inline script and style may run, and the page may connect only to WebSocket servers
 * (any of them: it is a console for any URL). A message shown on the page can never become markup
 * or code, and nothing is fetched from anywhere.
 */
export const DEMO_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export interface DemoPageContext {
  mode: string;
  protocols: readonly string[];
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function demoPage({ mode, protocols }: DemoPageContext): string {
  const modeNote: Record<string, string> = {
    echo: 'every message comes back to you',
    broadcast: 'every message goes to every connected page or client, you included: open this page twice',
    print: 'the server prints messages and sends nothing back',
  };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WebSocketStream demo</title>
<style>${STYLE}</style>
</head>
<body>
<h1>WebSocketStream demo</h1>
<p>This page talks to any WebSocket server with the browser's own <b id="api">WebSocketStream</b><span id="api-note"></span>.
The server that served it runs in <b id="mode">${escapeHtml(mode)}</b> mode (${escapeHtml(modeNote[mode] ?? '')}).</p>
<form id="connect-form">
  <label for="url">URL</label> <input id="url" autocomplete="off" spellcheck="false">
  <label for="protocols">Subprotocols</label> <input id="protocols" value="${escapeHtml(protocols.join(', '))}" placeholder="comma-separated" size="14" autocomplete="off">
  <button id="connect">Connect</button>
</form>
<div class="panels">
  <span>State: <b id="state">closed</b></span>
  <span>Protocol: <b id="protocol">–</b></span>
  <span>Extensions: <b id="extensions">–</b></span>
  <span>Close code: <b id="close-code">–</b></span>
  <span>Reason: <b id="close-reason">–</b></span>
  <span>Clean: <b id="close-clean">–</b></span>
</div>
<form id="send-form">
  <input id="message" placeholder="message" autocomplete="off" spellcheck="false" aria-label="message">
  <select id="format" aria-label="send as">
    <option value="text">text</option>
    <option value="json">JSON (checked)</option>
    <option value="hex">binary: hex</option>
    <option value="base64">binary: base64</option>
    <option value="utf8">binary: UTF-8 of the text</option>
  </select>
  <button id="send">Send</button>
  <label><input type="checkbox" id="repeat"> repeat every</label> <input id="repeat-ms" type="number" value="1000" min="10" aria-label="repeat interval in milliseconds"> ms
  <span id="send-error" role="alert"></span>
</form>
<form id="close-form">
  <label for="code">Close code</label> <input id="code" type="number" value="1000" min="1000" max="4999">
  <label for="reason">Reason</label> <input id="reason" maxlength="123" autocomplete="off">
  <button id="close">Close</button>
  <button type="button" id="clear">Clear list</button>
</form>
<div class="panels">
  <span>Sent: <b id="stat-sent">0</b></span>
  <span>Received: <b id="stat-received">0</b></span>
  <span>Rate (last second): <b id="stat-rate">–</b></span>
  <span>Round trip: <b id="stat-rtt">–</b> (mean over the plot: <b id="stat-rtt-avg">–</b>)</span>
</div>
<canvas id="plot" width="960" height="170" aria-label="messages per second and round-trip time over the last minute"></canvas>
<div class="legend">Bars: messages per second, <span class="out">sent</span> and <span class="in">received</span>. Line: <span class="rtt">round-trip time</span>, from each sent message to its echo (echo and broadcast servers).</div>
<div id="log" aria-live="polite"><table><tbody id="log-body"></tbody></table></div>
<p class="note">Close codes: 1000, or 3000–4999 for your own; a reason of at most 123 UTF-8 bytes. <code>?url=…&amp;protocols=…</code> fill in the form; <code>?api=websocket</code> uses WebSocket instead of WebSocketStream.</p>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
