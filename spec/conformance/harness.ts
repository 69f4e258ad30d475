// Puts our endpoint under test in either role, with the standard echo loop, and gives cases a
// role-independent connection to drive: send frames, expect echoes, close cleanly, or expect our
// side to fail the connection. Every failure is followed by a health check.
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import {
  WebSocketError,
  WebSocketStream,
  WebSocketStreamServer,
  type ServerWebSocketStream,
  type WebSocketClosedInfo,
} from '../../lib/index.js';
import {
  OP,
  DEADLINE_MS,
  PeerServer,
  ScriptedPeer,
  closeBody,
  connectToServer,
  describeEvent,
  nextTurn,
  show,
  within,
  type FrameOptions,
  type OurRole,
  type PeerEvent,
} from './peer.js';

/**
 * Our side's close timeout. Far beyond the peer's deadlines, so that an endpoint that waits for
 * the wrong party to close TCP is caught by the peer instead of being rescued by its own timer.
 */
const OUR_CLOSE_TIMEOUT = 60_000;

/** A message or pong the peer expects from our side. */
export type Expected = { type: 'text' | 'binary' | 'pong'; data: Buffer };

export const expectText = (data: Buffer | string): Expected => ({ type: 'text', data: Buffer.from(data) });
export const expectBinary = (data: Buffer): Expected => ({ type: 'binary', data });
export const expectPong = (data: Buffer | string = ''): Expected => ({ type: 'pong', data: Buffer.from(data) });

function describeExpected(expected: Expected): string {
  return `${expected.type} ${show(expected.data)}`;
}

/** True if the bytes are valid UTF-8 (TextDecoder in fatal mode is Node's WHATWG decoder). */
function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** One connection of a case: the peer's end, and our endpoint's `closed` promise. */
export class CaseConnection {
  /** Settled flag of our side's `closed`, to check it waits for TCP. */
  private ourClosedSettled = false;

  constructor(
    readonly harness: Harness,
    readonly peer: ScriptedPeer,
    readonly ourClosed: Promise<WebSocketClosedInfo>,
  ) {
    ourClosed.then(
      () => (this.ourClosedSettled = true),
      () => (this.ourClosedSettled = true),
    );
  }

  get role(): OurRole {
    return this.harness.role;
  }

  frame(opcode: number, payload?: Buffer | string, options?: FrameOptions): Buffer {
    return this.peer.frame(opcode, payload, options);
  }

  send(frames: Buffer | Buffer[], options?: { chopSize?: number; frameWise?: boolean }): Promise<void> {
    return this.peer.send(frames, options);
  }

  /** The next things our side sends are exactly these messages and pongs, in this order. */
  async expect(...expected: Expected[]): Promise<void> {
    for (const [index, want] of expected.entries()) {
      const got = await this.peer.nextEvent(`${describeExpected(want)} (#${index + 1} of ${expected.length})`);
      this.check(got, want, index);
    }
  }

  private check(got: PeerEvent, want: Expected, index: number): void {
    const where = `event #${index + 1}`;
    if (got.type !== want.type) {
      throw new Error(`${where}: expected ${describeExpected(want)}, got ${describeEvent(got)}`);
    }
    const data = (got as { data: Buffer }).data;
    if (!data.equals(want.data)) {
      let at = 0;
      while (at < data.length && at < want.data.length && data[at] === want.data[at]) at++;
      throw new Error(`${where}: ${want.type} payload differs at byte ${at}: expected ${show(want.data)}, got ${show(data)}`);
    }
  }

  /**
   * The peer starts the closing handshake and checks how it ends: our side echoes the close
   * frame (the same code and reason; an empty body for an empty one), sends nothing after it, the
   * server closes TCP first and the client waits for that (RFC 6455 §7.1.1), and our `closed`
   * resolves with the peer's code and reason once TCP is closed.
   */
  async closeNormally(
    code: number | null = 1000,
    reason: Buffer | string = '',
    options: { before?: Buffer[]; sendAfterClose?: Buffer[]; mayEchoFirst?: Expected[] } = {},
  ): Promise<void> {
    const reasonBytes = Buffer.from(reason);
    await this.peer.send([...(options.before ?? []), this.frame(OP.CLOSE, closeBody(code, reasonBytes)), ...(options.sendAfterClose ?? [])]);
    const expectedEcho = code === null ? 'close (no code)' : `close ${code} reason ${show(reasonBytes)}`;
    // Messages that went out right before the close may be echoed ahead of the close frame.
    const mayEchoFirst = options.mayEchoFirst ?? [];
    let echo = await this.peer.nextEvent('the echo of its close frame');
    for (let index = 0; echo.type !== 'close'; index++) {
      const allowed = mayEchoFirst[index];
      if (allowed === undefined) throw new Error(`expected ${expectedEcho}, got ${describeEvent(echo)}`);
      this.check(echo, allowed, index);
      echo = await this.peer.nextEvent('the echo of its close frame');
    }
    expect(echo.code, 'the close code echoed').to.equal(code);
    expect(echo.reason.toString('hex'), 'the close reason echoed').to.equal(reasonBytes.toString('hex'));
    await this.finishTcp('after a clean closing handshake', true);
    const info = await within(this.ourClosed, DEADLINE_MS, 'our closed promise did not settle after TCP closed');
    expect(info).to.deep.equal({ closeCode: code ?? 1005, reason: reasonBytes.toString('utf8') });
  }

  /**
   * Our side must fail the connection (RFC 6455 §7.1.7): its next frame is a close frame with
   * `code` and nothing follows it; TCP closes (the server's side first); `closed` rejects with
   * a WebSocketError. Then the endpoint must still serve other connections.
   */
  async expectFailure(code: number, why = ''): Promise<void> {
    const got = await this.peer.nextEvent(`a close frame with code ${code}${why === '' ? '' : ` (${why})`}`);
    if (got.type !== 'close' || got.code !== code) {
      throw new Error(`expected our ${this.role} to fail the connection with ${code}${why === '' ? '' : ` (${why})`}, got ${describeEvent(got)}`);
    }
    expect(isUtf8(got.reason), `the reason of our close frame is UTF-8: ${show(got.reason)}`).to.equal(true);
    // Autobahn answers the close frame, as a well-behaved endpoint does.
    if (!this.peer.socketClosed) await this.peer.write(this.frame(OP.CLOSE, closeBody(code)));
    await this.finishTcp('after failing the connection', false);
    const outcome = await within(
      this.ourClosed.then(
        (info) => ({ resolved: info }),
        (error: unknown) => ({ rejected: error }),
      ),
      DEADLINE_MS,
      'our closed promise did not settle after TCP closed',
    );
    if (!('rejected' in outcome)) throw new Error(`closed resolved with ${JSON.stringify(outcome.resolved)} after a failed connection`);
    expect(outcome.rejected, 'closed rejects with a WebSocketError').to.be.instanceOf(WebSocketError);
    // RFC 6455 §7.1.7: after failing, no more data is processed, the peer's answering close frame
    // included; so no close frame counts as received (docs/semantics.md#clean-and-unclean-closes) and the code is 1006.
    expect((outcome.rejected as WebSocketError).closeCode, 'the WebSocketError of a failed connection').to.equal(1006);
    await this.harness.checkHealth();
  }

  /** Who closes TCP: the server first; the client after it (RFC 6455 §7.1.1). */
  private async finishTcp(when: string, clean: boolean): Promise<void> {
    if (this.role === 'server') {
      // The server may end or fully close its socket here; either way the peer must see it first.
      await this.peer.waitForFin(`the server must close TCP first ${when}`);
      this.peer.end();
    } else {
      if (clean) {
        // There is no event for "the client did not close TCP", so give a FIN that a wrong client
        // sends right behind its close frame the chance to arrive: Node sends it from the next
        // poll phase, the peer reads it in the one after (two turns, measured). Five turns of
        // margin cost microseconds and can never fail a client that waits as it should.
        for (let turn = 0; turn < 5; turn++) await nextTurn();
        expect(this.peer.finReceived, 'our client closed TCP before the server did (RFC 6455 §7.1.1)').to.equal(false);
        expect(this.ourClosedSettled, 'our closed settled before TCP was closed').to.equal(false);
      }
      // A failing client may close TCP at once (RFC 6455 §7.1.7); a clean one waits for the server.
      this.peer.end();
      await this.peer.waitForFin(`the client must close TCP once the server did, ${when}`);
    }
    await within(this.peer.closed, DEADLINE_MS, `the TCP connection did not close ${when}`);
    this.peer.assertQuiet(when);
  }
}

/** Our endpoint in one role, the echo loop running on every connection. */
export abstract class Harness {
  abstract readonly role: OurRole;
  protected abstract connect(): Promise<{ peer: ScriptedPeer; closed: Promise<WebSocketClosedInfo> }>;
  protected abstract shutdown(): Promise<void>;
  protected abstract boot(): Promise<void>;

  private sentinel: CaseConnection | null = null;
  private readonly live = new Set<ScriptedPeer>();
  private healthChecks = 0;

  async start(): Promise<void> {
    await this.boot();
    // A connection that lives through the whole suite: every failure elsewhere must leave it be.
    this.sentinel = await this.open();
  }

  async stop(): Promise<void> {
    if (this.sentinel !== null) {
      await this.sentinel.closeNormally(1000, 'suite done');
      this.sentinel = null;
    }
    this.cleanup();
    await this.shutdown();
  }

  async open(): Promise<CaseConnection> {
    const { peer, closed } = await this.connect();
    this.live.add(peer);
    void peer.closed.then(() => this.live.delete(peer));
    return new CaseConnection(this, peer, closed);
  }

  /** After a failed connection: the long-lived connection still echoes, and a new one works. */
  async checkHealth(): Promise<void> {
    const n = ++this.healthChecks;
    if (this.sentinel !== null) {
      await this.sentinel.send(this.sentinel.frame(OP.TEXT, `sentinel ${n}`));
      await this.sentinel.expect(expectText(`sentinel ${n}`));
    }
    const fresh = await this.open();
    await fresh.send(fresh.frame(OP.BINARY, Buffer.from([n & 0xff, 0x00, 0xff])));
    await fresh.expect(expectBinary(Buffer.from([n & 0xff, 0x00, 0xff])));
    await fresh.closeNormally(1000);
  }

  /** Drops whatever a failed case left open (the sentinel excepted). */
  cleanup(): void {
    for (const peer of this.live) {
      if (peer !== this.sentinel?.peer) peer.destroy();
    }
  }
}

/** Our WebSocketStream client against the peer as a server. */
export class ClientHarness extends Harness {
  readonly role = 'client' as const;
  private readonly server = new PeerServer();

  protected async boot(): Promise<void> {
    await this.server.listen();
  }

  protected async connect(): Promise<{ peer: ScriptedPeer; closed: Promise<WebSocketClosedInfo> }> {
    const wss = new WebSocketStream(this.server.url, { closeTimeout: OUR_CLOSE_TIMEOUT });
    const [peer, { readable, writable }] = await Promise.all([
      this.server.accept(),
      within(wss.opened, DEADLINE_MS, 'our client did not open'),
    ]);
    // The standard echo loop of an Autobahn client driver.
    readable.pipeTo(writable).catch(() => {});
    return { peer, closed: wss.closed };
  }

  protected async shutdown(): Promise<void> {
    await this.server.close();
  }
}

/** Our WebSocketStreamServer (an echo server) against the peer as a client. */
export class ServerHarness extends Harness {
  readonly role = 'server' as const;
  private server: WebSocketStreamServer | null = null;
  private port = 0;
  private acceptLoop: Promise<void> = Promise.resolve();
  private readonly accepted = new Map<number, ServerWebSocketStream>();
  private readonly waiting = new Map<number, (stream: ServerWebSocketStream) => void>();

  protected async boot(): Promise<void> {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', closeTimeout: OUR_CLOSE_TIMEOUT });
    this.server = server;
    await server.listening;
    this.port = (server.address() as AddressInfo).port;
    this.acceptLoop = (async () => {
      const reader = server.connections.getReader();
      for (;;) {
        const { done, value: stream } = await reader.read();
        if (done) break;
        stream.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
        const port = stream.request.remotePort ?? -1;
        const waiter = this.waiting.get(port);
        if (waiter !== undefined) {
          this.waiting.delete(port);
          waiter(stream);
        } else {
          this.accepted.set(port, stream);
        }
      }
    })();
  }

  /** Our server's stream for the peer connected from `port`. */
  private streamFor(port: number): Promise<ServerWebSocketStream> {
    const stream = this.accepted.get(port);
    if (stream !== undefined) {
      this.accepted.delete(port);
      return Promise.resolve(stream);
    }
    return within(
      new Promise((resolve) => this.waiting.set(port, resolve)),
      DEADLINE_MS,
      'our server did not hand the connection to its connections stream',
    );
  }

  protected async connect(): Promise<{ peer: ScriptedPeer; closed: Promise<WebSocketClosedInfo> }> {
    const peer = await connectToServer(this.port);
    const stream = await this.streamFor(peer.socket.localPort!);
    return { peer, closed: stream.closed };
  }

  protected async shutdown(): Promise<void> {
    await this.server?.close();
    await this.acceptLoop;
  }
}

export function harnessFor(role: OurRole): Harness {
  return role === 'client' ? new ClientHarness() : new ServerHarness();
}
