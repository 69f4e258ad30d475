// The standard Autobahn client loop, for our WebSocketStream client: echo every message of every
// case back to the fuzzingserver. Environment: AUTOBAHN_URL (ws://host:port), AGENT;
// AUTOBAHN_PROXY_URL to connect there instead (a proxy in front of the fuzzingserver), and
// AUTOBAHN_HTTP2=1 for WebSockets over HTTP/2 (RFC 8441; autobahn/run-h2.mjs).
import { WebSocketStream } from '../dist/esm/index.js';

const base = process.env.AUTOBAHN_PROXY_URL ?? process.env.AUTOBAHN_URL ?? 'ws://127.0.0.1:9001';
const agent = encodeURIComponent(process.env.AGENT ?? 'websocketstream-node');
const options = process.env.AUTOBAHN_HTTP2 === '1' ? { http2: true } : {};

async function textOf(url) {
  const stream = new WebSocketStream(url, options);
  const { readable } = await stream.opened;
  let text = '';
  for await (const message of readable) text += message;
  await stream.closed.catch(() => {});
  return text;
}

async function runCase(n) {
  const stream = new WebSocketStream(`${base}/runCase?case=${n}&agent=${agent}`, options);
  try {
    const { readable, writable } = await stream.opened;
    await readable.pipeTo(writable).catch(() => {});
  } catch {
    // A failed handshake is the case's own business; the report says what happened.
  }
  await stream.closed.catch(() => {});
}

const count = Number(await textOf(`${base}/getCaseCount`));
for (let n = 1; n <= count; n++) {
  await runCase(n);
  if (n % 50 === 0 || n === count) process.stdout.write(`  case ${n}/${count}\n`);
}
await textOf(`${base}/updateReports?agent=${agent}`).catch(() => {});
