// RFC 7692 permessage-deflate, the codec: bounded, ordered compression and inflation with
// node:zlib for one connection, with the parameters its handshake agreed (the negotiation itself is
// in handshake/deflate-negotiation.ts).
import * as zlib from 'node:zlib';
import { DEFAULT_ZLIB_CONCURRENCY } from './constants.js';

/** RFC 7692 §7.1.2: window sizes are 2^8 to 2^15 bytes. */
export const MIN_WINDOW_BITS = 8;
export const MAX_WINDOW_BITS = 15;
/** RFC 7692 §7.2.1: the tail of a sync flush, removed when sending and restored when receiving. */
export const DEFLATE_TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** What was agreed for one connection, seen from this endpoint. */
export interface DeflateParams {
  /** Our compressor resets after each message. */
  sendNoContextTakeover: boolean;
  sendMaxWindowBits: number;
  /** The peer resets after each message, so our inflater may too. */
  receiveNoContextTakeover: boolean;
  receiveMaxWindowBits: number;
  threshold: number;
  level: number | undefined;
  memLevel: number | undefined;
}

/**
 * Runs zlib jobs with bounded concurrency across the whole process, so thousands of connections
 * cannot flood the threadpool or hold thousands of half-done buffers at once. Jobs of one
 * connection are also serialized by that connection, which keeps its messages in order.
 */
class ZlibLimiter {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly concurrency: number) {}

  run(job: (done: () => void) => void): void {
    if (this.running < this.concurrency) {
      this.running++;
      job(this.done);
    } else {
      this.queue.push(() => job(this.done));
    }
  }

  private readonly done = (): void => {
    const next = this.queue.shift();
    if (next !== undefined) next();
    else this.running--;
  };
}

const limiter = new ZlibLimiter(DEFAULT_ZLIB_CONCURRENCY);

export class InflateLimitError extends Error {
  constructor(readonly limit: number) {
    super(`inflated message larger than maxPayload (${limit} bytes)`);
    this.name = 'InflateLimitError';
  }
}

/** One connection's compression state: a lazily created deflater and inflater. */
export class PerMessageDeflate {
  private deflater: zlib.DeflateRaw | null = null;
  private inflater: zlib.InflateRaw | null = null;
  private closed = false;
  /** Jobs on the threadpool; close() settles them, since a closed stream may never call back. */
  private readonly running = new Set<(error: Error) => void>();

  constructor(
    readonly params: DeflateParams,
    private readonly maxPayload: number,
  ) {}

  /**
   * Inflates one whole message (its compressed frames' payloads concatenated). Stops as soon as
   * the output passes maxPayload, so a bomb never allocates more than the limit.
   */
  decompress(data: Uint8Array, callback: (error: Error | null, result: Buffer | null) => void): void {
    limiter.run((done) => {
      if (this.closed) {
        done();
        return callback(new Error('connection closed'), null);
      }
      const inflater = (this.inflater ??= zlib.createInflateRaw({ windowBits: MAX_WINDOW_BITS }));
      this.process(inflater, [data, DEFLATE_TRAILER], this.maxPayload, (error, result) => {
        done();
        if (error !== null || inflater.readableEnded || inflater.writableEnded) {
          // A failed context cannot be used again (the connection is being failed anyway), and one
          // that met a final block (BFINAL, RFC 7692 §7.2.3.4) has ended: the next message starts
          // a fresh one.
          if (this.inflater === inflater) this.inflater = null;
          if (!this.closed) closeStream(inflater);
        } else if (this.params.receiveNoContextTakeover) {
          inflater.reset();
        }
        callback(error, result);
      });
    });
  }

  /** Compresses one message; the result has the trailing 00 00 ff ff removed (RFC 7692 §7.2.1). */
  compress(data: Uint8Array, callback: (error: Error | null, result: Buffer | null) => void): void {
    limiter.run((done) => {
      if (this.closed) {
        done();
        return callback(new Error('connection closed'), null);
      }
      const deflater = (this.deflater ??= zlib.createDeflateRaw({
        windowBits: this.params.sendMaxWindowBits,
        ...(this.params.level === undefined ? {} : { level: this.params.level }),
        ...(this.params.memLevel === undefined ? {} : { memLevel: this.params.memLevel }),
      }));
      this.process(deflater, [data], null, (error, result) => {
        done();
        if (error !== null) {
          if (this.deflater === deflater) this.deflater = null;
          if (!this.closed) closeStream(deflater);
          return callback(error, null);
        }
        if (this.params.sendNoContextTakeover) deflater.reset();
        // A sync flush always ends with the empty stored block 00 00 ff ff.
        const trimmed = result!.length >= 4 && result!.subarray(-4).equals(DEFLATE_TRAILER) ? result!.subarray(0, -4) : result!;
        callback(null, trimmed);
      });
    });
  }

  /**
   * Feeds `input` to a zlib stream and sync-flushes it; reports the output once. With `limit`, it
   * stops at once when the output passes the limit: a bomb costs neither memory nor CPU past it.
   * Once the connection is closed it reports an error and never touches the stream again.
   */
  private process(stream: zlib.DeflateRaw | zlib.InflateRaw, input: Uint8Array[], limit: number | null, report: (error: Error | null, result: Buffer | null) => void): void {
    const chunks: Buffer[] = [];
    let total = 0;
    let finished = false;
    const finish = (error: Error | null | undefined): void => {
      if (finished) return;
      finished = true;
      this.running.delete(finish);
      stream.removeListener('data', onData);
      stream.removeListener('error', finish);
      if (this.closed) return report(new Error('connection closed'), null);
      if (error) return report(error, null);
      report(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (limit !== null && total > limit) finish(new InflateLimitError(limit));
      else chunks.push(chunk);
    };
    this.running.add(finish);
    stream.on('data', onData);
    stream.on('error', finish);
    for (const piece of input) stream.write(piece);
    stream.flush(zlib.constants.Z_SYNC_FLUSH, () => finish(null));
  }

  /** Releases zlib's memory; jobs still running report an error. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const finish of [...this.running]) finish(new Error('connection closed'));
    if (this.deflater !== null) closeStream(this.deflater);
    if (this.inflater !== null) closeStream(this.inflater);
    this.deflater = null;
    this.inflater = null;
  }
}

function closeStream(stream: zlib.DeflateRaw | zlib.InflateRaw): void {
  stream.on('error', () => {});
  stream.close();
}
