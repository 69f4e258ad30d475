// The page `serve` answers GET / with: the browser's own WebSocketStream (or WebSocket where there
// is none) talking to this server. One self-contained HTML string: package.json ships only dist/,
// and the page must work without internet, so there are no files or external resources.
import { createHash } from 'node:crypto';

// Plain ES2020 in a String.raw, so that regular expressions keep their backslashes. Messages are
// shown with textContent only: in broadcast mode they come from other people's browsers.
const SCRIPT = String.raw`
'use strict';
const $ = (id) => document.getElementById(id);
const forceWebSocket = new URLSearchParams(location.search).get('api') === 'websocket';
const useStream = 'WebSocketStream' in globalThis && !forceWebSocket;
$('api').textContent = useStream ? 'WebSocketStream' : 'WebSocket';
$('api-note').textContent = useStream ? '' : forceWebSocket ? ' (chosen with ?api=websocket)' : ' (this browser has no WebSocketStream)';
$('url').value = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';

let connection = null;
let sent = 0;
let received = 0;

function show(kind, text) {
  const line = document.createElement('li');
  line.className = kind;
  line.textContent = new Date().toISOString().slice(11, 23) + '  ' + text;
  const log = $('log');
  log.append(line);
  log.scrollTop = log.scrollHeight;
}

function setState(state) {
  $('state').textContent = state;
  document.body.dataset.state = state;
  const open = state === 'open';
  $('connect').disabled = state !== 'closed';
  for (const id of ['send-text', 'send-binary', 'close']) $(id).disabled = !open;
}

// Chromium's WebSocketStream may hand binary messages over as ArrayBuffer or as Uint8Array.
function toBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function describe(data) {
  if (typeof data === 'string') return 'text (' + data.length + ' chars): ' + data;
  const bytes = toBytes(data);
  if (bytes === null) return 'unexpected ' + Object.prototype.toString.call(data);
  const shown = Array.from(bytes.subarray(0, 64), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return 'binary (' + bytes.length + ' bytes): ' + shown + (bytes.length > 64 ? ' …' : '');
}

function errorText(error) {
  if (error === null || typeof error !== 'object') return String(error);
  let text = (error.name ? error.name + ': ' : '') + (error.message || '(no message)');
  if (typeof error.closeCode === 'number') text += ' [code ' + error.closeCode + (error.reason ? ', reason ' + JSON.stringify(error.reason) : '') + ']';
  return text;
}

function closeInfo() {
  const code = $('code').value.trim();
  const reason = $('reason').value;
  const info = {};
  if (code !== '') info.closeCode = Number(code);
  if (reason !== '') info.reason = reason;
  return info;
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
    ({ closeCode, reason }) => show('closed', 'closed cleanly: code ' + closeCode + ', reason ' + JSON.stringify(reason)),
    (error) => { if (opened) show('error', 'closed uncleanly: ' + errorText(error)); },
  ).finally(() => { connection = null; setState('closed'); });
  stream.opened.then(async ({ readable, writable, protocol, extensions }) => {
    opened = true;
    writer = writable.getWriter();
    show('status', 'open' + (protocol ? ', protocol ' + protocol : '') + (extensions ? ', extensions ' + extensions : ''));
    setState('open');
    const reader = readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received++;
      show('in', '← ' + describe(value));
    }
  }, (error) => show('error', 'could not connect: ' + errorText(error))).catch(() => {
    // The readable errors on an unclean close, which the closed handler reports.
  });
}

function connectWithWebSocket(url) {
  const socket = new WebSocket(url, protocols());
  socket.binaryType = 'arraybuffer';
  connection = {
    send: (data) => { socket.send(data); return Promise.resolve(); },
    close: (info) => {
      if (info.closeCode === undefined && info.reason !== undefined) info.closeCode = 1000;
      socket.close(info.closeCode, info.reason);
    },
  };
  socket.onopen = () => {
    show('status', 'open' + (socket.protocol ? ', protocol ' + socket.protocol : '') + (socket.extensions ? ', extensions ' + socket.extensions : ''));
    setState('open');
  };
  socket.onmessage = (event) => { received++; show('in', '← ' + describe(event.data)); };
  socket.onerror = () => show('error', 'WebSocket error (browsers do not say more; see the close code)');
  socket.onclose = (event) => {
    show(event.wasClean ? 'closed' : 'error', (event.wasClean ? 'closed cleanly' : 'closed uncleanly') + ': code ' + event.code + ', reason ' + JSON.stringify(event.reason));
    connection = null;
    setState('closed');
  };
}

async function send(data) {
  if (connection === null) return;
  sent++;
  show('out', '→ ' + describe(data));
  try {
    await connection.send(data);
  } catch (error) {
    show('error', 'send failed: ' + errorText(error));
  }
}

$('connect-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (connection !== null) return;
  setState('connecting');
  show('status', 'connecting to ' + $('url').value + ' with ' + (useStream ? 'WebSocketStream' : 'WebSocket'));
  try {
    (useStream ? connectWithStream : connectWithWebSocket)($('url').value);
  } catch (error) {
    show('error', errorText(error));
    connection = null;
    setState('closed');
  }
});
$('send-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void send($('message').value);
});
$('send-binary').addEventListener('click', () => void send(new TextEncoder().encode($('message').value)));
$('close-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (connection === null) return;
  try {
    connection.close(closeInfo());
    show('status', 'closing');
  } catch (error) {
    show('error', 'close refused: ' + errorText(error));
  }
});
$('clear').addEventListener('click', () => $('log').replaceChildren());
setState('closed');
`;

const STYLE = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .6rem 0; }
input { font: inherit; padding: .25rem .4rem; }
#url { flex: 1 1 18rem; } #message { flex: 1 1 18rem; } #code { width: 6rem; }
button { font: inherit; padding: .25rem .8rem; }
#log { list-style: none; margin: .8rem 0; padding: .5rem; height: 24rem; overflow: auto; background: #f6f6f6; border: 1px solid #ddd; font: 13px/1.5 ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.in { color: #05508a; } .out { color: #555; } .error { color: #b00020; } .closed { color: #7a4d00; } .status { color: #1b6e20; }
.note { color: #666; font-size: .9rem; }
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * Only this inline script and style may run, and the page may connect only to WebSocket servers:
 * a message shown on the page can never become markup or code.
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
<p>This page talks to the server that served it with the browser's own <b id="api">WebSocketStream</b><span id="api-note"></span>.
Server mode: <b id="mode">${escapeHtml(mode)}</b> (${escapeHtml(modeNote[mode] ?? '')}). State: <b id="state">closed</b>.</p>
<form id="connect-form">
  <label for="url">URL</label> <input id="url" autocomplete="off">
  <label for="protocols">Subprotocols</label> <input id="protocols" value="${escapeHtml(protocols.join(', '))}" placeholder="comma-separated" size="14">
  <button id="connect">Connect</button>
</form>
<form id="send-form">
  <input id="message" placeholder="message" autocomplete="off">
  <button id="send-text">Send text</button>
  <button type="button" id="send-binary" title="sends the UTF-8 bytes of the message as a binary message">Send binary</button>
</form>
<form id="close-form">
  <label for="code">Close code</label> <input id="code" type="number" value="1000" min="1000" max="4999">
  <label for="reason">Reason</label> <input id="reason" maxlength="123" autocomplete="off">
  <button id="close">Close</button>
  <button type="button" id="clear">Clear log</button>
</form>
<ol id="log" aria-live="polite"></ol>
<p class="note">Close codes: 1000, or 3000–4999 for your own; a reason of at most 123 UTF-8 bytes. Add <code>?api=websocket</code> to the address to try the WebSocket fallback.</p>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
