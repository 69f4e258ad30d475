// The case table: each case of the Autobahn|Testsuite families written once, in our own words, and
// run against both of our endpoints (the harness decides who masks and who closes TCP). Ids are
// Autobahn's where the case is Autobahn's; our additions carry a letter suffix ("5.3b").
import {
  type CaseConnection,
  expectBinary,
  expectPong,
  expectText,
  type Expected,
  type Harness,
} from './harness.js';
import { OP, chop, closeBody, describeEvent, encodeFrame, nextTurn } from './peer.js';
import { UTF8_GROUPS, firstInvalidByte, type Utf8Vector } from './utf8-vectors.js';

export interface ConformanceCase {
  id: string;
  title: string;
  /** Moves many megabytes: allow more than mocha's default per test. */
  slow?: boolean;
  run(harness: Harness): Promise<void>;
}

export interface Family {
  id: string;
  title: string;
  cases: ConformanceCase[];
}

const KiB = 1024;
const MiB = 1024 * 1024;

function testCase(id: string, title: string, run: (harness: Harness) => Promise<void>, slow = false): ConformanceCase {
  return { id, title, run, slow };
}

// Payloads.

/** A unit of text with 1-, 2-, 3- and 4-byte characters, so that cuts fall inside code points. */
const TEXT_UNIT = Buffer.from('BAsd7&jh23 κόσμε € 𝄞 ', 'utf8');
const payloadCache = new Map<string, Buffer>();

/** Valid UTF-8 of exactly `length` bytes: the unit repeated, cut on a character, padded with '*'. */
export function textOf(length: number): Buffer {
  const key = `t${length}`;
  let out = payloadCache.get(key);
  if (out === undefined) {
    out = Buffer.alloc(length, '*');
    let at = 0;
    while (at + TEXT_UNIT.length <= length) {
      TEXT_UNIT.copy(out, at);
      at += TEXT_UNIT.length;
    }
    payloadCache.set(key, out);
  }
  return out;
}

/** Binary of exactly `length` bytes, every byte value present, nothing repeating at a short period. */
export function binaryOf(length: number): Buffer {
  const key = `b${length}`;
  let out = payloadCache.get(key);
  if (out === undefined) {
    out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = (i * 167 + (i >>> 8) * 13 + 0xfe) & 0xff;
    payloadCache.set(key, out);
  }
  return out;
}

/** Drops the cached payloads (up to ~100 MB), once the suite is done with them. */
export function releasePayloads(): void {
  payloadCache.clear();
}

/** A deterministic PRNG (mulberry32), for fragment sizes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A message as frames: the first with `opcode`, the rest continuations, FIN on the last. */
function fragmented(c: CaseConnection, opcode: number, parts: Buffer[]): Buffer[] {
  return parts.map((part, i) => c.frame(i === 0 ? opcode : OP.CONT, part, { fin: i === parts.length - 1 }));
}

/** Cuts a payload into parts of `size` bytes (at least one part, possibly empty). */
function partsOf(payload: Buffer, size: number): Buffer[] {
  return payload.length === 0 ? [payload] : chop(payload, size);
}

// Shapes shared by many cases.

/** Sends frames, expects these echoes/pongs, then closes cleanly from the peer's side. */
async function echoes(harness: Harness, frames: (c: CaseConnection) => Buffer[], expected: Expected[], options: { chopSize?: number; frameWise?: boolean } = {}): Promise<void> {
  const c = await harness.open();
  await c.send(frames(c), options);
  await c.expect(...expected);
  await c.closeNormally();
}

/** Sends frames; our side echoes `before` (data sent ahead of the bad frame), then fails with `code`. */
async function fails(harness: Harness, code: number, frames: (c: CaseConnection) => Buffer[], before: Expected[] = [], options: { chopSize?: number; frameWise?: boolean } = {}): Promise<void> {
  const c = await harness.open();
  await c.send(frames(c), options);
  await c.expect(...before);
  await c.expectFailure(code);
}

// 1.x Framing

function family1(): Family {
  const cases: ConformanceCase[] = [];
  const lengths = [0, 125, 126, 127, 128, 65535, 65536];
  for (const [sub, kind, opcode, payloadOf] of [
    ['1.1', 'text', OP.TEXT, textOf],
    ['1.2', 'binary', OP.BINARY, binaryOf],
  ] as const) {
    const expectOf = (data: Buffer): Expected => (kind === 'text' ? expectText(data) : expectBinary(data));
    lengths.forEach((length, i) => {
      const payload = payloadOf(length);
      cases.push(testCase(`${sub}.${i + 1}`, `${kind} message, payload ${length} bytes, echoed`, (h) => echoes(h, (c) => [c.frame(opcode, payload)], [expectOf(payload)])));
    });
    const big = payloadOf(65536);
    cases.push(testCase(`${sub}.8`, `${kind} message, payload 65536 bytes, in 997-byte chunks, echoed`, (h) => echoes(h, (c) => [c.frame(opcode, big)], [expectOf(big)], { chopSize: 997 })));
    lengths.forEach((length, i) => {
      const payload = payloadOf(length);
      const size = length <= 128 ? 1 : 61;
      cases.push(
        testCase(`${sub}.${i + 1}b`, `${kind} message, payload ${length} bytes, in ${size}-byte chunks, echoed (ours)`, (h) =>
          echoes(h, (c) => [c.frame(opcode, payload)], [expectOf(payload)], { chopSize: size }),
        ),
      );
    });
  }
  cases.push(
    testCase('1.3.1', 'a frame masked the wrong way for the role fails with 1002 (ours; RFC 6455 §5.1)', (h) =>
      fails(h, 1002, (c) => [encodeFrame(OP.TEXT, Buffer.from('Hello, world!'), !c.peer.masks)]),
    ),
    testCase('1.3.2', 'a 64-bit length with the most significant bit set fails with 1002 (ours; RFC 6455 §5.2)', (h) =>
      fails(h, 1002, (c) => {
        const frame = c.frame(OP.BINARY, binaryOf(65536));
        frame[2]! |= 0x80;
        return [frame];
      }),
    ),
  );
  return { id: '1', title: 'Framing', cases };
}

// 2.x Pings/Pongs

function family2(): Family {
  const tenPings = (chopSize?: number) => async (h: Harness) => {
    const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
    await echoes(h, (c) => payloads.map((p) => c.frame(OP.PING, p)), payloads.map((p) => expectPong(p)), chopSize === undefined ? {} : { chopSize });
  };
  const binary8 = Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
  return {
    id: '2',
    title: 'Pings/Pongs',
    cases: [
      testCase('2.1', 'ping without payload is answered by an empty pong', (h) => echoes(h, (c) => [c.frame(OP.PING)], [expectPong()])),
      testCase('2.2', 'ping with a small text payload is answered with it', (h) => echoes(h, (c) => [c.frame(OP.PING, 'Hello, world!')], [expectPong('Hello, world!')])),
      testCase('2.3', 'ping with a small binary (non UTF-8) payload is answered with it', (h) => echoes(h, (c) => [c.frame(OP.PING, binary8)], [expectPong(binary8)])),
      testCase('2.4', 'ping with a 125-byte binary payload is answered with it', (h) => echoes(h, (c) => [c.frame(OP.PING, Buffer.alloc(125, 0xfe))], [expectPong(Buffer.alloc(125, 0xfe))])),
      testCase('2.5', 'ping with a 126-byte payload fails the connection with 1002', (h) => fails(h, 1002, (c) => [c.frame(OP.PING, Buffer.alloc(126, 0xfe))])),
      testCase('2.6', 'ping with a 125-byte payload in 1-byte chunks is answered', (h) =>
        echoes(h, (c) => [c.frame(OP.PING, Buffer.alloc(125, 0xfe))], [expectPong(Buffer.alloc(125, 0xfe))], { chopSize: 1 }),
      ),
      testCase('2.7', 'an unsolicited pong without payload is ignored', async (h) => {
        const c = await h.open();
        await c.closeNormally(1000, '', { before: [c.frame(OP.PONG)] });
      }),
      testCase('2.8', 'an unsolicited pong with payload is ignored', async (h) => {
        const c = await h.open();
        await c.closeNormally(1000, '', { before: [c.frame(OP.PONG, 'unsolicited pong payload')] });
      }),
      testCase('2.9', 'an unsolicited pong then a ping: only the ping is answered', (h) =>
        echoes(h, (c) => [c.frame(OP.PONG, 'unsolicited pong payload'), c.frame(OP.PING, 'ping payload')], [expectPong('ping payload')]),
      ),
      testCase('2.10', 'ten pings in a row are all answered, in order', tenPings()),
      testCase('2.11', 'ten pings in a row in 1-byte chunks are all answered, in order', tenPings(1)),
    ],
  };
}

// 3.x Reserved bits

function family3(): Family {
  const hello = 'Hello, world!';
  const echoThenBadRsv = (rsv: number, options: { chopSize?: number; frameWise?: boolean }) => (h: Harness) =>
    fails(h, 1002, (c) => [c.frame(OP.TEXT, hello), c.frame(OP.TEXT, hello, { rsv }), c.frame(OP.PING)], [expectText(hello)], options);
  return {
    id: '3',
    title: 'Reserved bits',
    cases: [
      testCase('3.1', 'text message with RSV = 1 fails the connection with 1002', (h) => fails(h, 1002, (c) => [c.frame(OP.TEXT, hello, { rsv: 1 })])),
      testCase('3.2', 'text, then text with RSV = 2, then ping: the first is echoed, then 1002, no pong', echoThenBadRsv(2, {})),
      testCase('3.3', 'as 3.2 with RSV = 3, frame by frame: echo, then 1002, no pong', echoThenBadRsv(3, { frameWise: true })),
      testCase('3.4', 'as 3.2 with RSV = 4, in 1-byte chunks: echo, then 1002, no pong', echoThenBadRsv(4, { chopSize: 1 })),
      testCase('3.5', 'binary message with RSV = 5 fails the connection with 1002', (h) =>
        fails(h, 1002, (c) => [c.frame(OP.BINARY, Buffer.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]), { rsv: 5 })]),
      ),
      // Autobahn's 3.6 says "Ping" but sends a binary frame; we send the ping it describes.
      testCase('3.6', 'ping with RSV = 6 fails the connection with 1002', (h) => fails(h, 1002, (c) => [c.frame(OP.PING, hello, { rsv: 6 })])),
      testCase('3.7', 'close with RSV = 7 fails the connection with 1002', (h) => fails(h, 1002, (c) => [c.frame(OP.CLOSE, Buffer.alloc(0), { rsv: 7 })])),
    ],
  };
}

// 4.x Opcodes

function family4(): Family {
  const hello = 'Hello, world!';
  const cases: ConformanceCase[] = [];
  for (const [sub, kind, opcodes] of [
    ['4.1', 'non-control', [3, 4, 5, 6, 7]],
    ['4.2', 'control', [11, 12, 13, 14, 15]],
  ] as const) {
    const [a, b, c3, d, e] = opcodes;
    cases.push(
      testCase(`${sub}.1`, `reserved ${kind} opcode ${a} fails the connection with 1002`, (h) => fails(h, 1002, (c) => [c.frame(a)])),
      testCase(`${sub}.2`, `reserved ${kind} opcode ${b} with a payload fails the connection with 1002`, (h) => fails(h, 1002, (c) => [c.frame(b, 'reserved opcode payload')])),
      testCase(`${sub}.3`, `text, reserved ${kind} opcode ${c3}, ping: echo, then 1002, no pong`, (h) =>
        fails(h, 1002, (c) => [c.frame(OP.TEXT, hello), c.frame(c3), c.frame(OP.PING)], [expectText(hello)]),
      ),
      testCase(`${sub}.4`, `text, reserved ${kind} opcode ${d} with a payload, ping: echo, then 1002, no pong`, (h) =>
        fails(h, 1002, (c) => [c.frame(OP.TEXT, hello), c.frame(d, hello), c.frame(OP.PING)], [expectText(hello)]),
      ),
      testCase(`${sub}.5`, `as ${sub}.4 with opcode ${e}, in 1-byte chunks: echo, then 1002, no pong`, (h) =>
        fails(h, 1002, (c) => [c.frame(OP.TEXT, hello), c.frame(e, hello), c.frame(OP.PING)], [expectText(hello)], { chopSize: 1 }),
      ),
    );
  }
  return { id: '4', title: 'Opcodes', cases };
}

// 5.x Fragmentation

function family5(): Family {
  const f = (n: number): string => `fragment${n}`;
  const pingBetween = (options: { chopSize?: number; frameWise?: boolean }) => (h: Harness) =>
    echoes(
      h,
      (c) => [c.frame(OP.TEXT, f(1), { fin: false }), c.frame(OP.PING, 'ping payload'), c.frame(OP.CONT, f(2))],
      [expectPong('ping payload'), expectText(f(1) + f(2))],
      options,
    );
  const strayContinuation = (fin: boolean, options: { chopSize?: number; frameWise?: boolean }) => (h: Harness) =>
    fails(h, 1002, (c) => [c.frame(OP.CONT, 'non-continuation payload', { fin }), c.frame(OP.TEXT, hello)], [], options);
  const hello = 'Hello, world!';
  const twoPhases = (frameWise: boolean) => async (h: Harness) => {
    const c = await h.open();
    const options = { frameWise };
    await c.send([c.frame(OP.TEXT, f(1), { fin: false }), c.frame(OP.CONT, f(2), { fin: false }), c.frame(OP.PING, 'pongme 1!')], options);
    // Autobahn waits a second here; the pong, answered mid-message, is the event to wait for.
    await c.expect(expectPong('pongme 1!'));
    await c.send([c.frame(OP.CONT, f(3), { fin: false }), c.frame(OP.CONT, f(4), { fin: false }), c.frame(OP.PING, 'pongme 2!'), c.frame(OP.CONT, f(5))], options);
    await c.expect(expectPong('pongme 2!'), expectText(f(1) + f(2) + f(3) + f(4) + f(5)));
    await c.closeNormally();
  };
  return {
    id: '5',
    title: 'Fragmentation',
    cases: [
      testCase('5.1', 'ping in 2 fragments fails the connection with 1002', (h) =>
        fails(h, 1002, (c) => [c.frame(OP.PING, f(1), { fin: false }), c.frame(OP.CONT, f(2))]),
      ),
      testCase('5.2', 'pong in 2 fragments fails the connection with 1002', (h) =>
        fails(h, 1002, (c) => [c.frame(OP.PONG, f(1), { fin: false }), c.frame(OP.CONT, f(2))]),
      ),
      testCase('5.3', 'text message in 2 fragments is echoed as one message', (h) =>
        echoes(h, (c) => fragmented(c, OP.TEXT, [Buffer.from(f(1)), Buffer.from(f(2))]), [expectText(f(1) + f(2))]),
      ),
      testCase('5.3b', 'binary message in 3 fragments is echoed as one message (ours)', (h) => {
        const parts = [binaryOf(100), binaryOf(1), binaryOf(70000)];
        return echoes(h, (c) => fragmented(c, OP.BINARY, parts), [expectBinary(Buffer.concat(parts))]);
      }),
      testCase('5.4', 'text message in 2 fragments, frame by frame, is echoed', (h) =>
        echoes(h, (c) => fragmented(c, OP.TEXT, [Buffer.from(f(1)), Buffer.from(f(2))]), [expectText(f(1) + f(2))], { frameWise: true }),
      ),
      testCase('5.5', 'text message in 2 fragments, in 1-byte chunks, is echoed', (h) =>
        echoes(h, (c) => fragmented(c, OP.TEXT, [Buffer.from(f(1)), Buffer.from(f(2))]), [expectText(f(1) + f(2))], { chopSize: 1 }),
      ),
      testCase('5.6', 'ping between 2 text fragments: the pong first, then the message', pingBetween({})),
      testCase('5.7', 'as 5.6, frame by frame', pingBetween({ frameWise: true })),
      testCase('5.8', 'as 5.6, in 1-byte chunks', pingBetween({ chopSize: 1 })),
      testCase('5.9', 'continuation (FIN) with nothing to continue fails with 1002', strayContinuation(true, {})),
      testCase('5.10', 'as 5.9, frame by frame', strayContinuation(true, { frameWise: true })),
      testCase('5.11', 'as 5.9, in 1-byte chunks', strayContinuation(true, { chopSize: 1 })),
      testCase('5.12', 'continuation (no FIN) with nothing to continue fails with 1002', strayContinuation(false, {})),
      testCase('5.13', 'as 5.12, frame by frame', strayContinuation(false, { frameWise: true })),
      testCase('5.14', 'as 5.12, in 1-byte chunks', strayContinuation(false, { chopSize: 1 })),
      testCase('5.15', 'a complete fragmented message, then a stray continuation: echo, then 1002', (h) =>
        fails(
          h,
          1002,
          (c) => [...fragmented(c, OP.TEXT, [Buffer.from(f(1)), Buffer.from(f(2))]), c.frame(OP.CONT, f(3), { fin: false }), c.frame(OP.TEXT, f(4))],
          [expectText(f(1) + f(2))],
        ),
      ),
      testCase('5.16', 'stray continuation (no FIN) before a fragmented message fails with 1002', (h) =>
        fails(h, 1002, (c) => [0, 1].flatMap(() => [c.frame(OP.CONT, f(1), { fin: false }), c.frame(OP.TEXT, f(2), { fin: false }), c.frame(OP.CONT, f(3))])),
      ),
      testCase('5.17', 'stray continuation (FIN) before a fragmented message fails with 1002', (h) =>
        fails(h, 1002, (c) => [0, 1].flatMap(() => [c.frame(OP.CONT, f(1)), c.frame(OP.TEXT, f(2), { fin: false }), c.frame(OP.CONT, f(3))])),
      ),
      testCase('5.18', 'a new text frame inside a fragmented message fails with 1002', (h) =>
        fails(h, 1002, (c) => [c.frame(OP.TEXT, f(1), { fin: false }), c.frame(OP.TEXT, f(2))]),
      ),
      testCase('5.18b', 'a new binary frame inside a fragmented text message fails with 1002 (ours)', (h) =>
        fails(h, 1002, (c) => [c.frame(OP.TEXT, f(1), { fin: false }), c.frame(OP.BINARY, f(2))]),
      ),
      testCase('5.19', 'pings inside a 5-fragment message are answered at once; the message is echoed', twoPhases(false)),
      testCase('5.20', 'as 5.19, frame by frame', twoPhases(true)),
    ],
  };
}

// 6.x UTF-8 handling

/** One way of putting a text message on the wire: the pieces written, and which payload bytes each completes. */
interface Delivery {
  label: string;
  pieces: Buffer[];
  /** Payload offset reached at the end of each piece. */
  ends: number[];
}

/** The message in fragments cut at these payload offsets (one frame per part). */
function inFragments(c: CaseConnection, payload: Buffer, cuts: number[], label: string): Delivery {
  const bounds = [0, ...cuts, payload.length];
  const parts = bounds.slice(1).map((end, i) => payload.subarray(bounds[i]!, end));
  return { label, pieces: fragmented(c, OP.TEXT, parts), ends: bounds.slice(1) };
}

/** The message in one frame, the frame's bytes cut at these payload offsets (or every `chopSize` bytes). */
function inChops(c: CaseConnection, payload: Buffer, cuts: number[] | { chopSize: number }, label: string): Delivery {
  const frame = c.frame(OP.TEXT, payload);
  const header = frame.length - payload.length;
  const wireCuts = Array.isArray(cuts) ? cuts.map((cut) => header + cut) : Array.from({ length: Math.ceil(frame.length / cuts.chopSize) - 1 }, (_, i) => (i + 1) * cuts.chopSize);
  const bounds = [0, ...wireCuts, frame.length];
  return {
    label,
    pieces: bounds.slice(1).map((end, i) => frame.subarray(bounds[i]!, end)),
    ends: bounds.slice(1).map((end) => Math.max(0, end - header)),
  };
}

/**
 * Writes a delivery piece by piece. For invalid UTF-8 it stops after the piece holding the first
 * invalid byte (or the last piece, if the text merely ends inside a sequence) and expects close
 * 1007 before sending more: fail-fast, as Autobahn's 6.4.x asks. For valid text it expects the echo.
 */
async function deliverText(c: CaseConnection, payload: Buffer, delivery: Delivery): Promise<void> {
  const bad = firstInvalidByte(payload);
  // Text that merely ends inside a sequence can only be judged at the final fragment.
  const last = bad === null || bad === payload.length ? delivery.pieces.length - 1 : delivery.ends.findIndex((end) => end > bad);
  for (let p = 0; p <= last; p++) {
    if (c.peer.hasEvent) {
      const early = await c.peer.nextEvent('an early answer');
      throw new Error(`${delivery.label}: our ${c.role} sent ${describeEvent(early)} before piece ${p + 1} of ${delivery.pieces.length} was sent`);
    }
    await c.peer.write(delivery.pieces[p]!);
    if (delivery.pieces.length > 1) await nextTurn();
  }
  if (bad === null) {
    await c.expect(expectText(payload));
  } else {
    const where = bad === payload.length ? 'the text ends inside a sequence' : `first invalid byte at offset ${bad}`;
    await c.expectFailure(1007, `${delivery.label}: right after piece ${last + 1} of ${delivery.pieces.length}; ${where}`);
  }
}

/** Vectors up to this many bytes are also sent as two fragments split at every byte. */
const SPLIT_EVERYWHERE_MAX = 64;

/** Every way the suite delivers one 6.x vector, as plans to apply to a connection. */
function deliveryPlans(bytes: Buffer): Array<(c: CaseConnection) => Delivery> {
  const n = bytes.length;
  const plans: Array<(c: CaseConnection) => Delivery> = [
    (c) => inFragments(c, bytes, [], 'whole, one frame'),
    (c) => inFragments(c, bytes, Array.from({ length: n - 1 }, (_, i) => i + 1), '1-byte fragments'),
    (c) => inChops(c, bytes, { chopSize: 1 }, 'one frame in 1-byte chunks'),
  ];
  if (n <= SPLIT_EVERYWHERE_MAX) {
    for (let k = 1; k < n; k++) plans.push((c) => inFragments(c, bytes, [k], `2 fragments split at byte ${k}`));
  }
  return plans;
}

/** Runs one 6.x vector: valid ones all on one connection, each invalid delivery on its own. */
async function runVector(h: Harness, vector: Utf8Vector): Promise<void> {
  const plans = deliveryPlans(vector.bytes);
  if (vector.valid) {
    const c = await h.open();
    for (const plan of plans) await deliverText(c, vector.bytes, plan(c));
    await c.closeNormally();
    return;
  }
  for (const plan of plans) {
    const c = await h.open();
    await deliverText(c, vector.bytes, plan(c));
  }
}

function family6(): Family {
  const kosme = Buffer.from('ceba e1bdb9 cf83 cebc ceb5'.replace(/ /g, ''), 'hex');
  const mixed = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!', 'utf8');
  const failFastPayload = Buffer.concat([kosme, Buffer.from('f4908080', 'hex'), Buffer.from('edited', 'latin1')]);
  const one = (id: string, title: string, payload: Buffer, make: (c: CaseConnection) => Delivery) =>
    testCase(id, title, async (h) => {
      const c = await h.open();
      await deliverText(c, payload, make(c));
      if (firstInvalidByte(payload) === null) await c.closeNormally();
    });
  const cases: ConformanceCase[] = [
    one('6.1.1', 'empty text message is echoed', Buffer.alloc(0), (c) => inFragments(c, Buffer.alloc(0), [], 'whole')),
    testCase('6.1.2', 'text message in 3 empty fragments is echoed as one empty message', (h) =>
      echoes(h, (c) => fragmented(c, OP.TEXT, [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)]), [expectText('')]),
    ),
    testCase('6.1.3', 'text message in 3 fragments, first and last empty, is echoed', (h) =>
      echoes(h, (c) => fragmented(c, OP.TEXT, [Buffer.alloc(0), Buffer.from('middle frame payload'), Buffer.alloc(0)]), [expectText('middle frame payload')]),
    ),
    one('6.2.1', 'valid UTF-8 in one frame is echoed', mixed, (c) => inFragments(c, mixed, [], 'whole')),
    one('6.2.2', 'valid UTF-8 in 2 fragments cut on a code point boundary is echoed', mixed, (c) =>
      inFragments(c, mixed, [Buffer.from('Hello-µ@ßöä').length], '2 fragments'),
    ),
    one('6.2.3', 'valid UTF-8 in 1-byte fragments (cut inside code points) is echoed', mixed, (c) =>
      inFragments(c, mixed, Array.from({ length: mixed.length - 1 }, (_, i) => i + 1), '1-byte fragments'),
    ),
    one('6.2.4', 'κόσμε in 1-byte fragments is echoed', kosme, (c) => inFragments(c, kosme, Array.from({ length: kosme.length - 1 }, (_, i) => i + 1), '1-byte fragments')),
    one('6.3.1', 'invalid UTF-8 (a surrogate) in one frame fails with 1007', Buffer.concat([kosme, Buffer.from('eda080656469746564', 'hex')]), (c) =>
      inFragments(c, Buffer.concat([kosme, Buffer.from('eda080656469746564', 'hex')]), [], 'whole'),
    ),
    one('6.3.2', 'invalid UTF-8 (a surrogate) in 1-byte fragments fails fast with 1007', Buffer.concat([kosme, Buffer.from('eda080656469746564', 'hex')]), (c) =>
      inFragments(c, Buffer.concat([kosme, Buffer.from('eda080656469746564', 'hex')]), Array.from({ length: 19 }, (_, i) => i + 1), '1-byte fragments'),
    ),
    one('6.4.1', 'invalid UTF-8 fails fast: 1007 right after the fragment holding U+110000, before the third', failFastPayload, (c) =>
      inFragments(c, failFastPayload, [11, 15], '3 fragments'),
    ),
    one('6.4.2', 'invalid UTF-8 fails fast: 1007 right after the 1-byte fragment that makes it invalid', failFastPayload, (c) =>
      inFragments(c, failFastPayload, [12, 13], '3 fragments'),
    ),
    one('6.4.3', 'invalid UTF-8 fails fast: 1007 right after the chunk holding U+110000 within one frame', failFastPayload, (c) =>
      inChops(c, failFastPayload, [11, 15], '3 chunks of one frame'),
    ),
    one('6.4.4', 'invalid UTF-8 fails fast: 1007 right after the 1-byte chunk that makes it invalid within one frame', failFastPayload, (c) =>
      inChops(c, failFastPayload, [12, 13], '3 chunks of one frame'),
    ),
  ];
  for (const group of UTF8_GROUPS) {
    for (const vector of group.vectors) {
      const splits = vector.bytes.length <= SPLIT_EVERYWHERE_MAX ? ', split at every byte' : '';
      const bad = firstInvalidByte(vector.bytes);
      const outcome = bad === null ? 'is echoed' : bad < vector.bytes.length ? `fails fast with 1007 at byte ${bad}` : 'fails with 1007 at its end (cut inside a sequence)';
      cases.push(
        testCase(
          vector.id,
          `${group.title}: <${vector.bytes.length > 24 ? `${vector.bytes.subarray(0, 12).toString('hex')}…` : vector.bytes.toString('hex')}> ${outcome}, whole, in 1-byte fragments and chunks${splits}`,
          (h) => runVector(h, vector),
        ),
      );
    }
  }
  return { id: '6', title: 'UTF-8 handling', cases };
}

// 7.x Close handling

function family7(): Family {
  const hello = 'Hello World!';
  const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
  const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999];
  /** The peer closes with this code and reason (plus frames around its close frame); our side echoes it. */
  const peerCloses =
    (code: number | null, reason = '', around: (c: CaseConnection) => Parameters<CaseConnection['closeNormally']>[2] = () => ({})) =>
    async (h: Harness): Promise<void> => {
      const c = await h.open();
      await c.closeNormally(code, reason, around(c));
    };
  const cases: ConformanceCase[] = [
    testCase('7.1.1', 'a message, then close: echo, then clean close 1000', (h) => echoes(h, (c) => [c.frame(OP.TEXT, hello)], [expectText(hello)])),
    testCase('7.1.2', 'a second close frame after the first is ignored: clean close 1000', peerCloses(1000, '', (c) => ({ sendAfterClose: [c.frame(OP.CLOSE)] }))),
    testCase('7.1.3', 'a ping after the close frame gets no pong: clean close 1000', peerCloses(1000, '', (c) => ({ sendAfterClose: [c.frame(OP.PING)] }))),
    testCase('7.1.4', 'a text message after the close frame is ignored: clean close 1000', peerCloses(1000, '', (c) => ({ sendAfterClose: [c.frame(OP.TEXT, hello)] }))),
    testCase(
      '7.1.5',
      'fragment, close, fragment: the unfinished message is dropped, clean close 1000',
      peerCloses(1000, '', (c) => ({ before: [c.frame(OP.TEXT, 'fragment1', { fin: false })], sendAfterClose: [c.frame(OP.CONT, 'fragment2')] })),
    ),
    // Messages right before the close frame may or may not be echoed ahead of our close frame
    // (Autobahn: informational); any that are must be exact and in order.
    testCase(
      '7.1.6',
      '256 KiB message, small message, close, ping: echoes (if any) exact, clean close 1000, no pong',
      peerCloses(1000, '', (c) => ({
        before: [c.frame(OP.TEXT, textOf(256 * KiB)), c.frame(OP.TEXT, hello)],
        sendAfterClose: [c.frame(OP.PING)],
        mayEchoFirst: [expectText(textOf(256 * KiB)), expectText(hello)],
      })),
    ),
    testCase(
      '7.1.7',
      'a complete fragmented message, then close at once: echo (if any) exact, clean close 1000 (ours)',
      peerCloses(1000, '', (c) => ({
        before: fragmented(c, OP.TEXT, [Buffer.from('fragment1'), Buffer.from('fragment2')]),
        mayEchoFirst: [expectText('fragment1fragment2')],
      })),
    ),
    testCase('7.1.8', 'a fragmented message echoed, then close: clean close 1000 (ours)', (h) =>
      echoes(h, (c) => fragmented(c, OP.BINARY, [binaryOf(10), binaryOf(20)]), [expectBinary(Buffer.concat([binaryOf(10), binaryOf(20)]))]),
    ),
    testCase('7.3.1', 'close with an empty payload is echoed empty; closed reports 1005', peerCloses(null)),
    testCase('7.3.2', 'close with a 1-byte payload fails with 1002', (h) => fails(h, 1002, (c) => [c.frame(OP.CLOSE, 'a')])),
    testCase('7.3.3', 'close 1000 is echoed', peerCloses(1000)),
    testCase('7.3.4', 'close 1000 with a reason is echoed with the reason', peerCloses(1000, hello)),
    testCase('7.3.5', 'close 1000 with a 123-byte reason is echoed with the reason', peerCloses(1000, '*'.repeat(123))),
    testCase('7.3.5b', 'close 4000 with a 123-byte multi-byte UTF-8 reason is echoed with it (ours)', peerCloses(4000, '€'.repeat(41))),
    testCase('7.3.6', 'close with a 124-byte reason (a 126-byte control frame) fails with 1002', (h) =>
      fails(h, 1002, (c) => [c.frame(OP.CLOSE, closeBody(1000, '*'.repeat(124)))]),
    ),
    testCase('7.5.1', 'close with an invalid UTF-8 reason fails with 1007', (h) =>
      fails(h, 1007, (c) => [c.frame(OP.CLOSE, closeBody(1000, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex')))]),
    ),
  ];
  validCodes.forEach((code, i) => {
    cases.push(
      testCase(`7.7.${i + 1}`, `close with the valid code ${code} is echoed; closed reports ${code}`, peerCloses(code)),
    );
  });
  invalidCodes.forEach((code, i) => {
    cases.push(testCase(`7.9.${i + 1}`, `close with the invalid code ${code} fails with 1002`, (h) => fails(h, 1002, (c) => [c.frame(OP.CLOSE, closeBody(code))])));
  });
  [5000, 65535].forEach((code, i) => {
    cases.push(testCase(`7.13.${i + 1}`, `close with the invalid code ${code} fails with 1002`, (h) => fails(h, 1002, (c) => [c.frame(OP.CLOSE, closeBody(code))])));
  });
  return { id: '7', title: 'Close handling', cases };
}

// 9.x Limits/Performance (scaled: at most 16 MiB, a few hundred messages per case)

function family9(): Family {
  const cases: ConformanceCase[] = [];
  const sizes = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB];
  const label = (bytes: number): string => (bytes >= MiB ? `${bytes / MiB} MiB` : bytes >= KiB ? `${bytes / KiB} KiB` : `${bytes} bytes`);
  for (const [sub, kind, opcode, payloadOf, expectOf] of [
    ['9.1', 'text', OP.TEXT, textOf, expectText],
    ['9.2', 'binary', OP.BINARY, binaryOf, expectBinary],
  ] as const) {
    sizes.forEach((size, i) => {
      cases.push(testCase(`${sub}.${i + 1}`, `${kind} message of ${label(size)} in one frame is echoed`, (h) => echoes(h, (c) => [c.frame(opcode, payloadOf(size))], [expectOf(payloadOf(size))]), size >= 4 * MiB));
    });
  }
  const fragmentSizes = [64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB];
  for (const [sub, kind, opcode, payloadOf, expectOf] of [
    ['9.3', 'text', OP.TEXT, textOf, expectText],
    ['9.4', 'binary', OP.BINARY, binaryOf, expectBinary],
  ] as const) {
    fragmentSizes.forEach((fragment, i) => {
      const payload = payloadOf(4 * MiB);
      cases.push(
        testCase(`${sub}.${i + 1}`, `${kind} message of 4 MiB in ${label(fragment)} fragments is echoed`, (h) => echoes(h, (c) => fragmented(c, opcode, partsOf(payload, fragment)), [expectOf(payload)]), true),
      );
    });
  }
  const chopSizes = [64, 128, 256, 512, 1024, 2048];
  for (const [sub, kind, opcode, payloadOf, expectOf] of [
    ['9.5', 'text', OP.TEXT, textOf, expectText],
    ['9.6', 'binary', OP.BINARY, binaryOf, expectBinary],
  ] as const) {
    chopSizes.forEach((chopSize, i) => {
      const payload = payloadOf(MiB);
      cases.push(testCase(`${sub}.${i + 1}`, `${kind} message of 1 MiB in ${chopSize}-byte chunks is echoed`, (h) => echoes(h, (c) => [c.frame(opcode, payload)], [expectOf(payload)], { chopSize }), true));
    });
  }
  const messageSizes = [0, 16, 64, 256, 1024, 4096];
  for (const [sub, kind, opcode, payloadOf, expectOf] of [
    ['9.7', 'text', OP.TEXT, textOf, expectText],
    ['9.8', 'binary', OP.BINARY, binaryOf, expectBinary],
  ] as const) {
    messageSizes.forEach((size, i) => {
      const count = 1000;
      cases.push(
        testCase(`${sub}.${i + 1}`, `${count} ${kind} messages of ${size} bytes, each echoed before the next is sent`, async (h) => {
          const c = await h.open();
          const payload = payloadOf(size);
          for (let n = 0; n < count; n++) {
            await c.send(c.frame(opcode, payload));
            await c.expect(expectOf(payload));
          }
          await c.closeNormally();
        }),
      );
    });
  }
  cases.push(
    testCase('9.9.1', 'a text message of 4 MiB in 4 KiB fragments, sent as fast as the socket takes them, is echoed', async (h) => {
      const c = await h.open();
      const payload = textOf(4 * MiB);
      for (const frame of fragmented(c, OP.TEXT, chop(payload, 4 * KiB))) await c.peer.write(frame);
      await c.expect(expectText(payload));
      await c.closeNormally(1000, 'You have survived;)');
    }, true),
    testCase('9.10.1', 'many small messages in one write are all echoed, in order (ours)', async (h) => {
      const c = await h.open();
      const messages = Array.from({ length: 2000 }, (_, i) => (i % 2 === 0 ? textOf(i % 97) : binaryOf(i % 89)));
      await c.send(messages.map((m, i) => c.frame(i % 2 === 0 ? OP.TEXT : OP.BINARY, m)));
      await c.expect(...messages.map((m, i) => (i % 2 === 0 ? expectText(m) : expectBinary(m))));
      await c.closeNormally();
    }),
  );
  return { id: '9', title: 'Limits/Performance', cases };
}

// 10.x Auto-fragmentation

function family10(): Family {
  /** Cuts `payload` into fragments of random sizes in [0, max] (zero-length ones included). */
  const randomParts = (payload: Buffer, max: number, seed: number): Buffer[] => {
    const random = prng(seed);
    const parts: Buffer[] = [];
    let at = 0;
    while (at < payload.length) {
      const size = Math.floor(random() * (max + 1));
      parts.push(payload.subarray(at, Math.min(payload.length, at + size)));
      at += size;
    }
    return parts;
  };
  return {
    id: '10',
    title: 'Auto-fragmentation',
    cases: [
      testCase('10.1.1', 'text message of 64 KiB in 1300-byte fragments is echoed intact', (h) =>
        echoes(h, (c) => fragmented(c, OP.TEXT, chop(textOf(65536), 1300)), [expectText(textOf(65536))]),
      ),
      testCase('10.1.2', 'text message of 512 KiB in fragments of random sizes (0–5000 bytes, cut inside code points) is echoed intact (ours)', (h) =>
        echoes(h, (c) => fragmented(c, OP.TEXT, randomParts(textOf(512 * KiB), 5000, 1012)), [expectText(textOf(512 * KiB))]),
      ),
      testCase('10.1.3', 'binary message of 512 KiB in fragments of random sizes (0–5000 bytes) is echoed intact (ours)', (h) =>
        echoes(h, (c) => fragmented(c, OP.BINARY, randomParts(binaryOf(512 * KiB), 5000, 1013)), [expectBinary(binaryOf(512 * KiB))]),
      ),
      testCase('10.1.4', 'a message in 200 fragments of random sizes with pings between them: every pong, then the message (ours)', async (h) => {
        const c = await h.open();
        const payload = textOf(200 * 700);
        const parts = randomParts(payload, 1400, 1014);
        const frames: Buffer[] = [];
        const pongs: Expected[] = [];
        fragmented(c, OP.TEXT, parts).forEach((frame, i) => {
          frames.push(frame);
          if (i % 10 === 5) {
            frames.push(c.frame(OP.PING, `ping ${i}`));
            pongs.push(expectPong(`ping ${i}`));
          }
        });
        await c.send(frames, { chopSize: 1500 });
        await c.expect(...pongs, expectText(payload));
        await c.closeNormally();
      }),
    ],
  };
}

export const FAMILIES: Family[] = [family1(), family2(), family3(), family4(), family5(), family6(), family7(), family9(), family10()];

