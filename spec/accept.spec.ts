// The server's user callbacks (verify, selectProtocol, onError) held to their contract: whatever
// they return, throw or never settle, each upgrade gets exactly one well-formed HTTP answer, the
// error reaches onError, and the process and the other connections keep working.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { handleUpgrade, WebSocketStream, type ServerHandshakeOptions, type VerifyResult } from '../lib/index.js';
import { prng } from './helpers/codec.js';
import { collectGarbage, leakFree, startServer, type Guard } from './helpers/faults.js';
import { listen, upgradeExchange, upgradeRequest } from './helpers/server-helpers.js';

const STATUS_LINE = /^HTTP\/1\.1 (\d{3}) [^\r\n]+\r\n/;

/** Every HTTP response head in `text` (a socket must carry exactly one). */
function responseHeads(text: string): Array<{ status: number; head: string }> {
  const heads: Array<{ status: number; head: string }> = [];
  let rest = text;
  for (;;) {
    const start = rest.search(/HTTP\/1\.[01] /);
    if (start === -1) return heads;
    rest = rest.slice(start);
    const end = rest.indexOf('\r\n\r\n');
    const head = end === -1 ? rest : rest.slice(0, end + 4);
    const match = STATUS_LINE.exec(head);
    heads.push({ status: match === null ? NaN : Number(match[1]), head });
    rest = rest.slice(head.length);
  }
}

/** Sends one upgrade request and returns the single, well-formed answer's status. */
async function statusFor(port: number, requestPath = '/', headers: Record<string, string> = {}): Promise<number> {
  const { text } = await upgradeExchange(port, upgradeRequest({ path: requestPath, headers }));
  const heads = responseHeads(text);
  expect(heads, `one HTTP answer in ${JSON.stringify(text.slice(0, 300))}`).to.have.lengthOf(1);
  expect(heads[0]!.status, `a well-formed status line in ${JSON.stringify(heads[0]!.head)}`).to.not.be.NaN;
  return heads[0]!.status;
}

/** A server whose verify/selectProtocol come from `options`, with every onError call recorded. */
async function serverWith(guard: Guard, options: Partial<ServerHandshakeOptions>): Promise<{ port: number; url: string; errors: Error[] }> {
  const errors: Error[] = [];
  const { port, url, acceptor } = await startServer(guard, { onError: (error) => errors.push(error), ...options });
  // Accepted connections are closed at once: these tests are about the handshake.
  void (async () => {
    for (;;) (await acceptor.next()).close();
  })();
  return { port, url, errors };
}

describe('server callbacks: verify, selectProtocol and onError', () => {
  describe('verify', () => {
    const refusals: Array<[string, VerifyResult]> = [
      ['false', false],
      ['undefined (an async verify that falls through)', undefined],
      ['null', null],
    ];
    for (const [label, verdict] of refusals) {
      leakFree(`returning ${label} refuses with 403, and nothing is reported`, async (guard) => {
        const { port, errors } = await serverWith(guard, { verify: async () => verdict });
        expect(await statusFor(port)).to.equal(403);
        expect(errors).to.deep.equal([]);
      });
    }

    leakFree('returning true accepts', async (guard) => {
      const { port } = await serverWith(guard, { verify: () => true });
      expect(await statusFor(port)).to.equal(101);
    });

    leakFree('a refusal may redirect (3xx with Location)', async (guard) => {
      const { port } = await serverWith(guard, { verify: () => ({ status: 307, headers: { Location: 'ws://elsewhere.example/' } }) });
      const { text } = await upgradeExchange(port, upgradeRequest());
      expect(text).to.match(/^HTTP\/1\.1 307 Temporary Redirect\r\n/).and.include('\r\nLocation: ws://elsewhere.example/\r\n');
    });

    leakFree('a refusal object gets its status, headers and message', async (guard) => {
      const { port } = await serverWith(guard, { verify: () => ({ status: 401, headers: { 'WWW-Authenticate': 'Bearer', 'X-Count': 3 as unknown as string }, message: 'token expired' }) });
      const { text } = await upgradeExchange(port, upgradeRequest());
      expect(text).to.match(/^HTTP\/1\.1 401 Unauthorized\r\n/);
      expect(text).to.include('\r\nWWW-Authenticate: Bearer\r\n').and.include('\r\nX-Count: 3\r\n');
      expect(text.endsWith('\r\n\r\ntoken expired\n')).to.equal(true);
    });

    const broken: Array<[string, unknown]> = [
      ['the string "yes"', 'yes'],
      ['the number 1', 1],
      ['a symbol', Symbol('ok')],
      ['a function', () => true],
      ['an object without a status', { message: 'no' }],
      ['status 200', { status: 200 }],
      ['status 101', { status: 101 }],
      ['status 600', { status: 600 }],
      ['a status that is a string', { status: '403' }],
      ['a fractional status', { status: 403.5 }],
      ['a header name with a space', { status: 403, headers: { 'Bad Name': 'x' } }],
      ['a header value with CR LF', { status: 403, headers: { 'X-Split': 'a\r\nSet-Cookie: evil=1' } }],
      ['a header that frames the response', { status: 403, headers: { 'Content-Length': '0' } }],
      ['headers that are a string', { status: 403, headers: 'X: y' }],
      ['a message that is not a string', { status: 403, message: 42 }],
    ];
    for (const [label, verdict] of broken) {
      leakFree(`returning ${label} refuses with 500 and reports a TypeError; the server keeps working`, async (guard) => {
        let calls = 0;
        const { port, errors } = await serverWith(guard, { verify: () => (calls++ === 0 ? (verdict as VerifyResult) : true) });
        expect(await statusFor(port)).to.equal(500);
        expect(errors).to.have.lengthOf(1);
        expect(errors[0]).to.be.an.instanceOf(TypeError);
        expect(await statusFor(port)).to.equal(101);
      });
    }

    leakFree('a refusal object read through throwing getters refuses with 500', async (guard) => {
      const verdict = {
        get status(): number {
          throw new Error('getter blew up');
        },
      };
      const { port, errors } = await serverWith(guard, { verify: () => verdict });
      expect(await statusFor(port)).to.equal(500);
      expect(errors.map((error) => error.message)).to.deep.equal(['getter blew up']);
    });

    for (const [label, verify] of [
      ['throwing', () => { throw new Error('verify blew up'); }],
      ['rejecting', () => Promise.reject(new Error('verify blew up'))],
    ] as const) {
      leakFree(`${label} refuses with 500 and hands the error to onError`, async (guard) => {
        const { port, errors } = await serverWith(guard, { verify });
        expect(await statusFor(port)).to.equal(500);
        expect(errors.map((error) => error.message)).to.deep.equal(['verify blew up']);
      });
    }

    leakFree('throwing something that is not an Error reports an Error that carries it as the cause', async (guard) => {
      const { port, errors } = await serverWith(guard, {
        verify: () => {
          throw 'a string'; // eslint-disable-line no-throw-literal
        },
      });
      expect(await statusFor(port)).to.equal(500);
      expect(errors).to.have.lengthOf(1);
      expect(errors[0]!.cause).to.equal('a string');
    });

    leakFree('never settling is cut off by handshakeTimeout with 503, and reported', async (guard) => {
      const { port, errors } = await serverWith(guard, { verify: () => new Promise<boolean>(() => {}), handshakeTimeout: 200 });
      expect(await statusFor(port)).to.equal(503);
      expect(errors).to.have.lengthOf(1);
      expect(errors[0]!.message).to.match(/verify did not settle within handshakeTimeout/);
    });
  });

  describe('selectProtocol', () => {
    const protocolHeader = { 'Sec-WebSocket-Protocol': 'a, b' };
    const broken: Array<[string, unknown]> = [
      ['a number', 42],
      ['an object', { protocol: 'a' }],
      ['true', true],
      ['a protocol the client did not offer', 'c'],
    ];
    for (const [label, value] of broken) {
      leakFree(`returning ${label} refuses with 500 and reports a TypeError`, async (guard) => {
        const { port, errors } = await serverWith(guard, { selectProtocol: () => value as string });
        expect(await statusFor(port, '/', protocolHeader)).to.equal(500);
        expect(errors).to.have.lengthOf(1);
        expect(errors[0]).to.be.an.instanceOf(TypeError);
      });
    }

    leakFree('returning null, undefined or "" selects none', async (guard) => {
      const values = [null, undefined, ''];
      let call = 0;
      const { url, errors } = await serverWith(guard, { selectProtocol: () => values[call++ % 3] });
      for (let i = 0; i < 3; i++) {
        const stream = new WebSocketStream(url);
        expect((await stream.opened).protocol).to.equal('');
        stream.close();
        await stream.closed;
      }
      expect(errors).to.deep.equal([]);
    });

    leakFree('mutating the offered list cannot make it select what the client did not offer', async (guard) => {
      const { port, errors } = await serverWith(guard, {
        selectProtocol: (offered) => {
          offered.push('intruder');
          return 'intruder';
        },
      });
      expect(await statusFor(port, '/', protocolHeader)).to.equal(500);
      expect(errors).to.have.lengthOf(1);
    });

    leakFree('throwing refuses with 500; never settling is cut off with 503', async (guard) => {
      let call = 0;
      const { port, errors } = await serverWith(guard, {
        handshakeTimeout: 200,
        selectProtocol: () => {
          if (call++ === 0) throw new RangeError('no protocol for you');
          return new Promise<string>(() => {});
        },
      });
      expect(await statusFor(port, '/', protocolHeader)).to.equal(500);
      expect(await statusFor(port, '/', protocolHeader)).to.equal(503);
      expect(errors.map((error) => error.constructor.name)).to.deep.equal(['RangeError', 'Error']);
    });
  });

  describe('onError', () => {
    leakFree('an onError that throws does not keep the refusal from being sent', async (guard) => {
      const { port } = await startServer(guard, {
        verify: () => 'yes' as unknown as boolean,
        onError: () => {
          throw new Error('onError blew up');
        },
      });
      expect(await statusFor(port)).to.equal(500);
      expect(await statusFor(port)).to.equal(500);
    });

    it('without onError, a failing callback prints one process warning, not one per request', async function () {
      this.timeout(20_000);
      // A child process: the warning is printed once per process, and this one may have printed it.
      const script = `
        import { WebSocketStreamServer } from ${JSON.stringify(path.resolve('dist/esm/index.js'))};
        import net from 'node:net';
        const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', verify: () => 'yes' });
        await server.listening;
        const request = 'GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n';
        for (let i = 0; i < 3; i++) {
          await new Promise((resolve) => {
            const socket = net.connect(server.address().port, '127.0.0.1', () => socket.write(request));
            let text = '';
            socket.on('data', (chunk) => (text += chunk));
            socket.on('close', () => { console.log(text.split('\\r\\n')[0]); resolve(); });
          });
        }
        await server.close();
      `;
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
      expect(stdout.trim().split('\n')).to.deep.equal(Array(3).fill('HTTP/1.1 500 Internal Server Error'));
      const warnings = stderr.split('\n').filter((line) => line.includes('WebSocketStreamServerWarning'));
      expect(warnings).to.have.lengthOf(1);
      expect(warnings[0]).to.match(/verify failed and the upgrade was refused: verify returned "yes"/);
    });
  });

  describe('what an open connection keeps of its handshake', () => {
    leakFree('the IncomingMessage is not retained once the connection is open', async (guard) => {
      let request: WeakRef<object> | null = null;
      const { url, acceptor } = await startServer(guard, {
        verify: (incoming) => {
          request = new WeakRef(incoming);
          return true;
        },
      });
      const client = new WebSocketStream(url);
      guard.defer(() => client.close());
      const accepted = await acceptor.next();
      await Promise.all([client.opened, accepted.opened]);
      for (let i = 0; i < 5 && request!.deref() !== undefined; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        collectGarbage();
      }
      expect(request!.deref(), 'the upgrade request after a full GC').to.equal(undefined);
      // What the application is given instead: the parts it needs, in a small object.
      expect(accepted.request.url).to.equal('/');
    });
  });

  describe('handleUpgrade (the standalone function)', () => {
    leakFree('invalid options answer the socket with 500 and reject with the TypeError', async (guard) => {
      const httpServer = http.createServer();
      guard.defer(() => new Promise((resolve) => httpServer.close(resolve)));
      const results: Array<Promise<unknown>> = [];
      httpServer.on('upgrade', (request, socket, head) => {
        results.push(handleUpgrade(request, socket, head, { verify: 'not a function' } as unknown as ServerHandshakeOptions).catch((error: unknown) => error));
      });
      const port = await listen(httpServer);
      expect(await statusFor(port)).to.equal(500);
      expect(await results[0]).to.be.an.instanceOf(TypeError);
    });

    leakFree('verify returning undefined refuses with 403 and resolves null', async (guard) => {
      const httpServer = http.createServer();
      guard.defer(() => new Promise((resolve) => httpServer.close(resolve)));
      const results: Array<Promise<unknown>> = [];
      httpServer.on('upgrade', (request, socket, head) => results.push(handleUpgrade(request, socket, head, { verify: () => undefined })));
      const port = await listen(httpServer);
      expect(await statusFor(port)).to.equal(403);
      expect(await results[0]).to.equal(null);
    });
  });

  describe('fuzzing the callbacks', () => {
    /** What a callback may do: return something (now or later), throw, reject, or hang. */
    function randomBehaviour(rand: () => number): { label: string; run: () => unknown } {
      const values: unknown[] = [true, false, undefined, null, 0, 1, '', 'yes', 'a', 'b', 'c', Symbol('s'), {}, [], { status: 403 }, { status: 200 },
        { status: 503, headers: { 'Retry-After': '5' } }, { status: 401, headers: { 'Bad\nName': 'x' } }, { status: 499, message: 'é' }, () => true, 10n];
      const value = values[Math.floor(rand() * values.length)];
      const label = typeof value === 'symbol' || typeof value === 'bigint' ? String(value) : JSON.stringify(value) ?? String(value);
      switch (Math.floor(rand() * 6)) {
        case 0:
          return { label: `throws ${label}`, run: () => { throw value; } };
        case 1:
          return { label: `rejects with ${label}`, run: () => Promise.reject(value) };
        case 2:
          return { label: 'never settles', run: () => new Promise(() => {}) };
        case 3:
          return { label: `resolves ${label} later`, run: () => new Promise((resolve) => setTimeout(resolve, rand() * 20, value)) };
        default:
          return { label: `returns ${label}`, run: () => value };
      }
    }

    leakFree('random results, throws, rejections and hangs: one well-formed answer per socket, no crash, nothing left open', async (guard) => {
      const rand = prng(0x5eed);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      guard.defer(() => process.off('unhandledRejection', onUnhandled));
      const plan: Array<{ verify: { label: string; run: () => unknown }; select: { label: string; run: () => unknown } }> = [];
      let index = 0;
      const { server, port, acceptor } = await startServer(guard, {
        handshakeTimeout: 150,
        closeTimeout: 100,
        onError: () => {},
        verify: () => plan[index]!.verify.run() as VerifyResult,
        selectProtocol: () => plan[index]!.select.run() as string,
      });
      void (async () => {
        for (;;) (await acceptor.next()).close({ closeCode: 1013 });
      })();
      const sockets: net.Socket[] = [];
      for (index = 0; index < 60; index++) {
        plan.push({ verify: randomBehaviour(rand), select: randomBehaviour(rand) });
        const { verify, select } = plan[index]!;
        const status = await statusFor(port, '/', { 'Sec-WebSocket-Protocol': 'a, b' });
        expect([101, 403, 500, 503, 499, 401], `verify ${verify.label}, selectProtocol ${select.label}`).to.include(status);
      }
      // A socket held open by the client must still be released by close().
      const held = net.connect(port, '127.0.0.1');
      sockets.push(held);
      await new Promise((resolve) => held.once('connect', resolve));
      await server.close();
      expect(unhandled).to.deep.equal([]);
    });
  });
});
