// The permessage-deflate peer of the conformance suite's 12.x/13.x/9.x miniatures: it plays
// Autobahn|Testsuite's part over a RawPeer, compressing and inflating with node:zlib itself
// (independent of lib/). What it checks in everything our side sends: masking by role, RSV1 only
// on the first frame of a message, and that every compressed message inflates under exactly the
// negotiated parameters — a fresh inflater when our side agreed to no context takeover, and an
// inflater that enforces the agreed window size.
import type { RawFrame, RawPeer } from '../helpers/raw-peer.js';
import { DeflateContext } from '../helpers/deflate-helpers.js';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
const RSV1 = 4;

/** What one direction of the connection agreed to. */
export interface DirectionParams {
  noContextTakeover: boolean;
  windowBits: number;
}

/** Parsed Sec-WebSocket-Extensions elements: name and parameters (tokens or quoted values). */
export interface ExtensionElement {
  name: string;
  params: Map<string, string | true>;
  /** A parameter appeared twice. */
  duplicate: boolean;
}

/** A small, lenient parser of extension headers, enough for the peer's own checks. */
export function parseExtensionHeader(header: string | undefined): ExtensionElement[] {
  if (header === undefined || header.trim() === '') return [];
  return header
    .split(',')
    .map((element) => element.trim())
    .filter((element) => element !== '')
    .map((element) => {
      const [name = '', ...rest] = element.split(';').map((part) => part.trim());
      const params = new Map<string, string | true>();
      let duplicate = false;
      for (const param of rest) {
        const equals = param.indexOf('=');
        const key = (equals === -1 ? param : param.slice(0, equals)).trim().toLowerCase();
        const value = equals === -1 ? true : param.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1');
        if (params.has(key)) duplicate = true;
        params.set(key, value);
      }
      return { name: name.toLowerCase(), params, duplicate };
    });
}

function bitsOf(value: string | true | undefined): number | null {
  if (value === undefined) return null;
  if (value === true || !/^(8|9|1[0-5])$/.test(value)) throw new Error(`invalid window bits value ${String(value)}`);
  return Number(value);
}

const KNOWN = new Set(['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']);

/**
 * The peer as an RFC 7692 client: checks a server's response against the offer it made (§5, §7)
 * and derives what each direction uses. Throws, with the reason, on a response a client must refuse.
 */
export function clientSideOf(offer: string, response: string | undefined): { send: DirectionParams; receive: DirectionParams } {
  const offers = parseExtensionHeader(offer);
  const elements = parseExtensionHeader(response);
  if (elements.length !== 1) throw new Error(`expected one permessage-deflate element in the response, got ${JSON.stringify(response)}`);
  const element = elements[0]!;
  if (element.name !== 'permessage-deflate') throw new Error(`response names ${element.name}`);
  if (element.duplicate) throw new Error(`duplicate parameter in ${response}`);
  for (const [name, value] of element.params) {
    if (!KNOWN.has(name)) throw new Error(`unknown parameter ${name} in ${response}`);
    if (name.endsWith('no_context_takeover') && value !== true) throw new Error(`${name} with a value in ${response}`);
  }
  // The response must answer one of the offers: the first one it is a valid answer to.
  const errors: string[] = [];
  for (const offered of offers) {
    try {
      const p = element.params;
      if (offered.params.has('server_no_context_takeover') && !p.has('server_no_context_takeover')) throw new Error('server_no_context_takeover offered but not granted');
      const offeredServerBits = bitsOf(offered.params.get('server_max_window_bits'));
      const serverBits = bitsOf(p.get('server_max_window_bits'));
      if (offeredServerBits !== null && (serverBits === null || serverBits > offeredServerBits)) throw new Error('server_max_window_bits not granted');
      const clientBits = p.has('client_max_window_bits') ? bitsOf(p.get('client_max_window_bits')) : null;
      if (p.has('client_max_window_bits') && !offered.params.has('client_max_window_bits')) throw new Error('client_max_window_bits was not offered');
      const offeredClientValue = offered.params.get('client_max_window_bits');
      const offeredClientBits = offeredClientValue === true || offeredClientValue === undefined ? null : bitsOf(offeredClientValue);
      if (clientBits !== null && offeredClientBits !== null && clientBits > offeredClientBits) throw new Error('client_max_window_bits larger than offered');
      return {
        // RFC 7692 §7.1.1.2: a client that offered client_no_context_takeover does not take over.
        send: {
          noContextTakeover: p.has('client_no_context_takeover') || offered.params.has('client_no_context_takeover'),
          windowBits: clientBits ?? offeredClientBits ?? 15,
        },
        receive: { noContextTakeover: p.has('server_no_context_takeover'), windowBits: serverBits ?? 15 },
      };
    } catch (error) {
      errors.push((error as Error).message);
    }
  }
  throw new Error(`response ${JSON.stringify(response)} answers none of the offers ${JSON.stringify(offer)}: ${errors.join('; ')}`);
}

export interface ReceivedMessage {
  binary: boolean;
  data: Buffer;
  compressed: boolean;
  frames: number;
}

function describeFrame(frame: RawFrame): string {
  const code = frame.opcode === OP.CLOSE && frame.payload.length >= 2 ? ` (close ${frame.payload.readUInt16BE(0)} ${JSON.stringify(frame.payload.subarray(2).toString())})` : '';
  return `opcode ${frame.opcode}, rsv ${frame.rsv}, fin ${frame.fin}, ${frame.payload.length} bytes${code}`;
}

/** One connection of a case, seen from the peer. */
export class DeflateEchoPeer {
  private readonly sender: DeflateContext;
  private readonly receiver: DeflateContext;

  constructor(
    readonly peer: RawPeer,
    /** The peer is the client: it masks, and our server must not. */
    readonly peerIsClient: boolean,
    readonly send: DirectionParams,
    readonly receive: DirectionParams,
  ) {
    this.sender = new DeflateContext(send.windowBits, send.noContextTakeover);
    this.receiver = new DeflateContext(receive.windowBits, receive.noContextTakeover);
  }

  /** Sends one compressed message, split into frames of `fragmentSize` bytes (0: one frame), in one write. */
  sendMessage(data: Buffer, binary: boolean, fragmentSize = 0): void {
    const payload = this.sender.deflate(data);
    const size = fragmentSize > 0 ? fragmentSize : Math.max(payload.length, 1);
    const frames: Buffer[] = [];
    for (let offset = 0, first = true; first || offset < payload.length; offset += size, first = false) {
      const last = offset + size >= payload.length;
      frames.push(
        frame(first ? (binary ? OP.BINARY : OP.TEXT) : OP.CONT, payload.subarray(offset, offset + size), {
          fin: last,
          rsv: first ? RSV1 : 0,
          mask: this.peerIsClient,
        }),
      );
    }
    this.peer.sendRaw(Buffer.concat(frames));
  }

  /** The next message our side sent; throws on anything RFC 6455/7692 or the negotiation forbid. */
  async nextMessage(): Promise<ReceivedMessage> {
    const parts: Buffer[] = [];
    let opcode = -1;
    let compressed = false;
    let frames = 0;
    for (;;) {
      const f = await this.peer.nextFrame();
      if (f.masked !== !this.peerIsClient) throw new Error(`our ${this.peerIsClient ? 'server' : 'client'} sent a frame ${f.masked ? 'masked' : 'unmasked'}`);
      if (f.opcode >= 0x8) throw new Error(`expected a data frame, got a control frame: ${describeFrame(f)}`);
      if (frames === 0) {
        if (f.opcode !== OP.TEXT && f.opcode !== OP.BINARY) throw new Error(`expected a text or binary frame, got ${describeFrame(f)}`);
        if (f.rsv !== 0 && f.rsv !== RSV1) throw new Error(`RSV bits other than RSV1: ${describeFrame(f)}`);
        opcode = f.opcode;
        compressed = f.rsv === RSV1;
      } else {
        if (f.opcode !== OP.CONT) throw new Error(`expected a continuation frame, got ${describeFrame(f)}`);
        if (f.rsv !== 0) throw new Error(`RSV bits on a continuation frame (RFC 7692 §6.1): ${describeFrame(f)}`);
      }
      frames++;
      parts.push(f.payload);
      if (f.fin) break;
    }
    const payload = Buffer.concat(parts);
    let data: Buffer = payload;
    if (compressed) {
      try {
        data = this.receiver.inflate(payload);
      } catch (error) {
        throw new Error(
          `a compressed message from our side does not inflate under the negotiated parameters (window ${this.receive.windowBits} bits, ` +
            `${this.receive.noContextTakeover ? 'no ' : ''}context takeover): ${(error as Error).message}`,
        );
      }
    }
    return { binary: opcode === OP.BINARY, data, compressed, frames };
  }

  /** Autobahn's echo step: send one message, the next thing our side sends is that message. */
  async echo(data: Buffer, binary: boolean, fragmentSize = 0): Promise<ReceivedMessage> {
    this.sendMessage(data, binary, fragmentSize);
    const got = await this.nextMessage();
    if (got.binary !== binary) throw new Error(`echo of a ${binary ? 'binary' : 'text'} message came back ${got.binary ? 'binary' : 'text'}`);
    if (got.data.length !== data.length) throw new Error(`echo length ${got.data.length}, expected ${data.length}`);
    if (!got.data.equals(data)) {
      let at = 0;
      while (got.data[at] === data[at]) at++;
      throw new Error(`echo of ${data.length} bytes differs at byte ${at}`);
    }
    return got;
  }

  /**
   * The peer closes with 1000 (Autobahn's expectation: closedByMe, 1000, clean): our side echoes
   * the close frame and nothing else; the server closes TCP first.
   */
  async closeNormally(): Promise<void> {
    this.peer.sendRaw(frame(OP.CLOSE, Buffer.from([0x03, 0xe8]), { mask: this.peerIsClient }));
    const echo = await this.peer.nextFrame();
    if (echo.opcode !== OP.CLOSE) throw new Error(`expected the echo of the close frame, got ${describeFrame(echo)}`);
    if (echo.payload.length < 2 || echo.payload.readUInt16BE(0) !== 1000) throw new Error(`close echoed as ${describeFrame(echo)}`);
    if (echo.rsv !== 0) throw new Error('RSV bits on a close frame');
    if (this.peerIsClient) {
      const rest = await this.peer.waitForEnd();
      if (rest.length > 0) throw new Error(`our server sent ${rest.length} frame(s) after its close frame`);
      this.peer.socket.end();
    } else {
      this.peer.socket.end();
      const rest = await this.peer.waitForEnd();
      if (rest.length > 0) throw new Error(`our client sent ${rest.length} frame(s) after its close frame`);
    }
    await this.peer.closed;
  }
}

/** One frame, written independently of lib/ (masked with a fixed key when `mask` is set). */
export function frame(opcode: number, payload: Buffer, options: { fin?: boolean; rsv?: number; mask?: boolean } = {}): Buffer {
  const fin = options.fin ?? true;
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + extra + (options.mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  head[1] = (options.mask ? 0x80 : 0) | (extra === 0 ? length : extra === 2 ? 126 : 127);
  if (extra === 2) head.writeUInt16BE(length, 2);
  else if (extra === 8) head.writeBigUInt64BE(BigInt(length), 2);
  if (!options.mask) return Buffer.concat([head, payload]);
  const key = Buffer.from([0x12, 0x9a, 0x5c, 0xe3]);
  key.copy(head, 2 + extra);
  const masked = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, masked]);
}
