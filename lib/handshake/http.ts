// HTTP/1.1 pieces the opening handshake needs: tokens, header checks, a bounded head reader.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** RFC 7230 §3.2.6 token (what a subprotocol must be, docs/semantics.md#the-constructor). */
export function isToken(value: string): boolean {
  return TOKEN.test(value);
}

/** A header value may not hold CR, LF or NUL (response splitting), nor non-Latin-1 characters. */
export function isValidHeaderValue(value: string): boolean {
  // eslint-disable-next-line no-control-regex -- NUL is exactly what this rejects
  return !/[\r\n\0]|[^\u0000-\u00ff]/.test(value);
}

/** True if a comma-separated header value lists `token` (case-insensitive). */
export function headerHasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  const wanted = token.toLowerCase();
  return value.split(',').some((part) => part.trim().toLowerCase() === wanted);
}

export interface HttpResponseHead {
  httpVersion: string;
  statusCode: number;
  statusMessage: string;
  /** Lower-cased names; a name that appears more than once keeps every value. */
  headers: Map<string, string[]>;
}

export class HttpHeadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpHeadError';
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Gathers an HTTP response head from socket chunks, never holding more than `maxBytes`.
 * Returns the parsed head and the bytes after it (which belong to the WebSocket), or null while
 * the head is incomplete. Throws HttpHeadError on an oversized or malformed head.
 */
export class HttpResponseHeadReader {
  private received: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): { head: HttpResponseHead; rest: Buffer } | null {
    // Search from a little before the new bytes, in case the terminator straddles chunks.
    const searchFrom = Math.max(0, this.received.length - 3);
    this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    const end = this.received.indexOf(HEAD_END, searchFrom);
    if (end === -1) {
      if (this.received.length > this.maxBytes) throw new HttpHeadError(`response head larger than ${this.maxBytes} bytes`);
      return null;
    }
    if (end + HEAD_END.length > this.maxBytes) throw new HttpHeadError(`response head larger than ${this.maxBytes} bytes`);
    const head = parseResponseHead(this.received.toString('latin1', 0, end));
    const rest = this.received.subarray(end + HEAD_END.length);
    this.received = Buffer.alloc(0);
    return { head, rest };
  }
}

const STATUS_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?$/;

export function parseResponseHead(text: string): HttpResponseHead {
  const lines = text.split('\r\n');
  const match = STATUS_LINE.exec(lines[0] ?? '');
  if (match === null) throw new HttpHeadError(`malformed status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    // RFC 7230 §3.2.4: obsolete line folding and whitespace before the colon are rejected.
    if (colon <= 0) throw new HttpHeadError(`malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon);
    if (!isToken(name)) throw new HttpHeadError(`malformed header name ${JSON.stringify(name.slice(0, 80))}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (/[\r\n\0]/.test(value)) throw new HttpHeadError('header value with a control character');
    const key = name.toLowerCase();
    const values = headers.get(key);
    if (values === undefined) headers.set(key, [value]);
    else values.push(value);
  }
  return { httpVersion: `${match[1]}.${match[2]}`, statusCode: Number(match[3]), statusMessage: match[4] ?? '', headers };
}
