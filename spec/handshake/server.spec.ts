// Unit tests of the server's opening handshake pieces (RFC 6455 §4.2): checkUpgradeRequest,
// switchingProtocolsHead, isRefusal and refuse, with fake requests and sockets.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { checkUpgradeRequest, isRefusal, refuse, switchingProtocolsHead, type Refusal, type UpgradeRequestCheck } from '../../lib/handshake/server.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

interface FakeRequest {
  method?: string;
  httpVersionMajor?: number;
  httpVersionMinor?: number;
  headers?: Record<string, string | undefined>;
}

/** An IncomingMessage-like object holding just what the check reads (lower-cased header names, as node:http gives). */
function fakeRequest(overrides: FakeRequest = {}): IncomingMessage {
  const headers: Record<string, string | undefined> = {
    host: 'example.com',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': KEY,
    'sec-websocket-version': '13',
    ...overrides.headers,
  };
  for (const name of Object.keys(headers)) if (headers[name] === undefined) delete headers[name];
  return {
    method: overrides.method ?? 'GET',
    httpVersionMajor: overrides.httpVersionMajor ?? 1,
    httpVersionMinor: overrides.httpVersionMinor ?? 1,
    headers: headers as IncomingHttpHeaders,
  } as unknown as IncomingMessage;
}

function check(overrides: FakeRequest = {}): UpgradeRequestCheck | Refusal {
  return checkUpgradeRequest(fakeRequest(overrides));
}

function statusOf(result: UpgradeRequestCheck | Refusal): number | 'accepted' {
  return isRefusal(result) ? result.status : 'accepted';
}

/** A socket stand-in recording what refuse() writes. */
class RecordingSocket extends Duplex {
  readonly written: Buffer[] = [];
  finished = false;

  constructor() {
    super();
    this.on('finish', () => (this.finished = true));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    callback();
  }

  get text(): string {
    return Buffer.concat(this.written).toString('latin1');
  }
}

async function refused(refusal: Refusal): Promise<{ socket: RecordingSocket; head: string[]; body: string }> {
  const socket = new RecordingSocket();
  refuse(socket, refusal);
  await new Promise<void>((resolve) => (socket.finished ? resolve() : socket.once('finish', () => resolve())));
  socket.destroy();
  const [head = '', body = ''] = socket.text.split('\r\n\r\n');
  return { socket, head: head.split('\r\n'), body };
}

describe('handshake/server', () => {
  describe('checkUpgradeRequest', () => {
    it('accepts a valid request: the key and no protocols', () => {
      expect(check()).to.deep.equal({ key: KEY, protocols: [] });
    });

    it('parses offered subprotocols in order, trimmed, without duplicates', () => {
      expect(check({ headers: { 'sec-websocket-protocol': 'chat,  superchat ,chat, v2' } })).to.deep.equal({
        key: KEY,
        protocols: ['chat', 'superchat', 'v2'],
      });
    });

    it('refuses an offered subprotocol that is not a token with 400', () => {
      for (const offered of ['a b', 'a, b/c', '"quoted"', 'x;y']) {
        expect(statusOf(check({ headers: { 'sec-websocket-protocol': offered } })), offered).to.equal(400);
      }
    });

    it('refuses any method but GET with 405 and Allow: GET', () => {
      for (const method of ['POST', 'PUT', 'HEAD', 'get', 'CONNECT']) {
        const result = check({ method });
        expect(statusOf(result), method).to.equal(405);
        expect((result as Refusal).headers).to.deep.equal({ Allow: 'GET' });
      }
    });

    it('needs HTTP/1.1 or later', () => {
      expect(statusOf(check({ httpVersionMajor: 1, httpVersionMinor: 0 }))).to.equal(400);
      expect(statusOf(check({ httpVersionMajor: 0, httpVersionMinor: 9 }))).to.equal(400);
      expect(statusOf(check({ httpVersionMajor: 1, httpVersionMinor: 1 }))).to.equal('accepted');
    });

    it('needs a non-empty Host', () => {
      expect(statusOf(check({ headers: { host: undefined } }))).to.equal(400);
      expect(statusOf(check({ headers: { host: '' } }))).to.equal(400);
    });

    it('needs Upgrade: websocket, case-insensitively, also inside a list', () => {
      expect(statusOf(check({ headers: { upgrade: undefined } }))).to.equal(400);
      expect(statusOf(check({ headers: { upgrade: 'h2c' } }))).to.equal(400);
      expect(statusOf(check({ headers: { upgrade: 'websocketx' } }))).to.equal(400);
      expect(statusOf(check({ headers: { upgrade: 'WebSocket' } }))).to.equal('accepted');
      expect(statusOf(check({ headers: { upgrade: 'h2c, websocket' } }))).to.equal('accepted');
    });

    it('needs the upgrade token in Connection, case-insensitively, also inside a list', () => {
      expect(statusOf(check({ headers: { connection: undefined } }))).to.equal(400);
      expect(statusOf(check({ headers: { connection: 'keep-alive' } }))).to.equal(400);
      expect(statusOf(check({ headers: { connection: 'upgrades' } }))).to.equal(400);
      expect(statusOf(check({ headers: { connection: 'keep-alive, Upgrade' } }))).to.equal('accepted');
      expect(statusOf(check({ headers: { connection: 'UPGRADE' } }))).to.equal('accepted');
    });

    it('needs a Sec-WebSocket-Key that is base64 of exactly 16 bytes', () => {
      const bad = [
        undefined,
        '',
        'AAAA',
        Buffer.alloc(15).toString('base64'),
        Buffer.alloc(17).toString('base64'),
        Buffer.alloc(32).toString('base64'),
        '!!!!!!!!!!!!!!!!!!!!!!==',
        KEY.slice(0, -2),
      ];
      for (const key of bad) expect(statusOf(check({ headers: { 'sec-websocket-key': key } })), String(key)).to.equal(400);
      const good = Buffer.from('0123456789abcdef').toString('base64');
      expect(check({ headers: { 'sec-websocket-key': good } })).to.deep.equal({ key: good, protocols: [] });
    });

    it('trims the key', () => {
      expect(check({ headers: { 'sec-websocket-key': `  ${KEY} ` } })).to.deep.equal({ key: KEY, protocols: [] });
    });

    it('answers a version other than 13 with 426 and Sec-WebSocket-Version: 13', () => {
      for (const version of [undefined, '8', '12', '14', '13, 8', 'thirteen']) {
        const result = check({ headers: { 'sec-websocket-version': version } });
        expect(statusOf(result), String(version)).to.equal(426);
        expect((result as Refusal).headers).to.deep.equal({ 'Sec-WebSocket-Version': '13' });
      }
    });

    it('checks in order: method, version of HTTP, Host, Upgrade, Connection, key, WebSocket version', () => {
      expect(statusOf(check({ method: 'POST', httpVersionMinor: 0, headers: { 'sec-websocket-version': '8' } }))).to.equal(405);
      expect(statusOf(check({ headers: { 'sec-websocket-key': 'short', 'sec-websocket-version': '8' } }))).to.equal(400);
    });
  });

  describe('isRefusal', () => {
    it('tells a refusal from an accepted check', () => {
      expect(isRefusal({ status: 400 })).to.equal(true);
      expect(isRefusal({ key: KEY, protocols: [] })).to.equal(false);
    });
  });

  describe('switchingProtocolsHead', () => {
    it('is the RFC 6455 §1.3 example for the sample key', () => {
      expect(switchingProtocolsHead(KEY, '', '')).to.equal(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
      );
    });

    it('computes Sec-WebSocket-Accept as base64(SHA-1(key + GUID))', () => {
      const key = Buffer.from('fedcba9876543210').toString('base64');
      const expected = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      expect(switchingProtocolsHead(key, '', '')).to.include(`\r\nSec-WebSocket-Accept: ${expected}\r\n`);
    });

    it('adds Sec-WebSocket-Protocol and Sec-WebSocket-Extensions only when given', () => {
      const head = switchingProtocolsHead(KEY, 'chat', 'permessage-deflate');
      expect(head.split('\r\n')).to.deep.equal([
        'HTTP/1.1 101 Switching Protocols',
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
        'Sec-WebSocket-Protocol: chat',
        'Sec-WebSocket-Extensions: permessage-deflate',
        '',
        '',
      ]);
      expect(switchingProtocolsHead(KEY, 'chat', '')).to.not.include('Sec-WebSocket-Extensions');
      expect(switchingProtocolsHead(KEY, '', 'x')).to.not.include('Sec-WebSocket-Protocol');
    });
  });

  describe('refuse', () => {
    it('writes a complete HTTP response with Connection: close and a matching Content-Length, then ends', async () => {
      const { head, body } = await refused({ status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'use version 13' });
      expect(head[0]).to.equal('HTTP/1.1 426 Upgrade Required');
      expect(head).to.include('Connection: close');
      expect(head).to.include('Sec-WebSocket-Version: 13');
      expect(head).to.include(`Content-Length: ${Buffer.byteLength(body)}`);
      expect(body).to.equal('use version 13\n');
    });

    it('uses the status text as the body when there is no message', async () => {
      const { head, body } = await refused({ status: 403 });
      expect(head[0]).to.equal('HTTP/1.1 403 Forbidden');
      expect(body).to.equal('Forbidden\n');
    });

    it('drops user headers that would split the response or are not tokens', async () => {
      const { head } = await refused({
        status: 401,
        headers: { 'WWW-Authenticate': 'Basic', 'X-Evil': 'a\r\nSet-Cookie: stolen=1', 'Bad Name': 'x', 'X-Null': 'a\0b' },
      });
      expect(head).to.include('WWW-Authenticate: Basic');
      expect(head.join('\n')).to.not.match(/Set-Cookie|X-Evil|Bad Name|X-Null/);
    });

    it('counts the Content-Length of a non-ASCII message in bytes', async () => {
      const { head, socket } = await refused({ status: 400, message: 'clé invalide €' });
      const expected = Buffer.byteLength('clé invalide €\n');
      expect(head).to.include(`Content-Length: ${expected}`);
      expect(Buffer.concat(socket.written).toString('utf8').endsWith('clé invalide €\n')).to.equal(true);
    });

    it('does nothing on a destroyed socket', () => {
      const socket = new RecordingSocket();
      socket.destroy();
      refuse(socket, { status: 400 });
      expect(socket.written).to.deep.equal([]);
    });
  });
});
