// Terminal output for the CLI: colours only where a person reads them, writes that wait for slow
// pipes, and errors described with their causes.
import type { Writable } from 'node:stream';
import { formatBinary, type BinaryFormat } from './lines.js';

/** The process's streams and environment, passed in so that commands never reach for globals. */
export interface Io {
  stdin: NodeJS.ReadableStream & { destroy(): void; isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** The path of the running cli.js (process.argv[1]), for --version. */
  script?: string | undefined;
}

export interface Style {
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

/**
 * Colours go to terminals only: piped or redirected output stays plain text for other programs.
 * NO_COLOR (no-color.org: any non-empty value) always wins; FORCE_COLOR turns them on off a TTY,
 * as in Node and most tools, and FORCE_COLOR=0 turns them off.
 */
export function colorsEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const sgr = (open: number, close: number) => (text: string) => `\u001b[${open}m${text}\u001b[${close}m`;
const plain = (text: string): string => text;

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): Style {
  if (!colorsEnabled(stream, env)) return { red: plain, green: plain, yellow: plain, cyan: plain, dim: plain, bold: plain };
  return { red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
}

/**
 * Writes and waits while the stream's buffer is full, so that a flood of messages into a slow
 * pipe pauses the WebSocket (through the readable's backpressure) instead of filling memory.
 * A closed pipe (EPIPE: `| head`) is not an error worth a stack trace; the write just ends.
 */
export function writeText(stream: Writable, text: string): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  if (stream.write(text)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** How a binary message is shown: its size, then its bytes in hex (or where it was saved). */
export function binaryLine(byteLength: number, detail: string, style: Style): string {
  const label = style.dim(`[binary ${byteLength} byte${byteLength === 1 ? '' : 's'}]`);
  return detail === '' ? label : `${label} ${detail}`;
}

/** A message's size on the wire before compression: UTF-8 bytes for text (RFC 6455 §5.6). */
export function messageSize(message: string | Uint8Array): number {
  return typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
}

/**
 * One received message as a --json record: its kind, when it arrived, its size in bytes and its
 * data (text as is; binary in `format`, or the file it was saved to). `extra` comes first, so a
 * server can say which connection the message came from.
 */
export function messageRecord(message: string | Uint8Array, format: BinaryFormat, extra: Record<string, unknown> = {}, savedTo?: string): string {
  const base = { ...extra, type: 'message', time: new Date().toISOString() };
  if (typeof message === 'string') return JSON.stringify({ ...base, kind: 'text', size: messageSize(message), data: message });
  if (savedTo !== undefined) return JSON.stringify({ ...base, kind: 'binary', size: message.byteLength, file: savedTo });
  return JSON.stringify({ ...base, kind: 'binary', size: message.byteLength, encoding: format, data: formatBinary(message, format) });
}

/** Any other --json record (open, close, error): a type, the time, and its fields. */
export function eventRecord(type: string, fields: Record<string, unknown>): string {
  return JSON.stringify({ type, time: new Date().toISOString(), ...fields });
}

/** A close code and reason as printed at the end of a connection. */
export function closeDescription(closeCode: number | null, reason: string): string {
  return `code ${closeCode ?? 'none'}, reason ${JSON.stringify(reason)}`;
}

/**
 * An error and its chain of causes, one line each: the library's WebSocketError says what failed
 * and its cause says why (ECONNREFUSED, a certificate error, the HTTP status of a refusal).
 */
export function describeError(error: unknown): string[] {
  const lines = [summary(error)];
  const seen = new Set<unknown>([error]);
  let cause = causeOf(error);
  while (cause !== undefined && !seen.has(cause) && lines.length < 6) {
    seen.add(cause);
    lines.push(`cause: ${summary(cause)}`);
    cause = causeOf(cause);
  }
  return lines;
}

function causeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'cause' in error ? (error as { cause?: unknown }).cause : undefined;
}

/**
 * OpenSSL's error strings ("809C…:error:0A00010B:SSL routines:ssl3_get_record:wrong version
 * number:../deps/openssl/…/ssl3_record.c:350:") hold one useful phrase, the reason.
 */
export function withoutOpenSslNoise(text: string): string {
  return text.replace(/[0-9A-F]{8,}:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):\S*/g, '$1').trim();
}

function summary(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const { name, message, code, statusCode } = error as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown };
  // An object without a usable message: its own toString (an Error's names it) is the best we have.
  // eslint-disable-next-line @typescript-eslint/no-base-to-string
  let text = withoutOpenSslNoise(typeof message === 'string' && message !== '' ? message : String(error));
  if (typeof name === 'string' && name !== '' && name !== 'Error') text = `${name}: ${text}`;
  // Node's system and TLS errors carry a code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT) that
  // is what people search for; the message does not always contain it.
  if (typeof code === 'string' && !text.includes(code)) text += ` (${code})`;
  if (typeof statusCode === 'number' && !text.includes(String(statusCode))) text += ` (HTTP ${statusCode})`;
  return text;
}
