// SOCKS5 proxies for the client (RFC 1928, with RFC 1929 username/password authentication):
// `socks5://` (the client resolves the target's name and sends an address) and `socks5h://` (the
// proxy resolves it). A pure negotiation state machine, and the tunnel that runs it over a socket.
import * as dns from 'node:dns';
import * as net from 'node:net';
import { credentialsOf, ignoreError, type Tunnel, type TunnelDone, type TunnelFailure, type TunnelTarget } from './tunnel.js';

/** The port of a SOCKS proxy URL without one (RFC 1928 §3: the service is on TCP port 1080). */
export const DEFAULT_SOCKS_PORT = 1080;

// RFC 1928 §3–§6 and RFC 1929 §2 wire values.
const SOCKS_VERSION = 0x05;
const METHOD_NO_AUTHENTICATION = 0x00;
const METHOD_USERNAME_PASSWORD = 0x02;
const METHOD_NONE_ACCEPTABLE = 0xff;
const USERNAME_PASSWORD_VERSION = 0x01;
const USERNAME_PASSWORD_SUCCESS = 0x00;
const COMMAND_CONNECT = 0x01;
const RESERVED = 0x00;
const ADDRESS_IPV4 = 0x01;
const ADDRESS_DOMAIN = 0x03;
const ADDRESS_IPV6 = 0x04;
const REPLY_SUCCEEDED = 0x00;
/** RFC 1929 §2 and RFC 1928 §5: one length byte precedes a user name, password or domain name. */
const MAX_FIELD_BYTES = 255;

/** RFC 1928 §6: what each failure reply code means. */
export const SOCKS_REPLY_MESSAGES: Readonly<Record<number, string>> = {
  0x01: 'general SOCKS server failure',
  0x02: 'connection not allowed by ruleset',
  0x03: 'network unreachable',
  0x04: 'host unreachable',
  0x05: 'connection refused',
  0x06: 'TTL expired',
  0x07: 'command not supported',
  0x08: 'address type not supported',
};

interface SocksCredentials {
  user: Buffer;
  password: Buffer;
}

/** Credentials live here, out of the endpoint object: inspecting or serializing it never shows them. */
const credentialsOfEndpoint = new WeakMap<SocksProxyEndpoint, SocksCredentials>();

/** A validated SOCKS5 proxy: where to connect, and who resolves the target's name. */
export class SocksProxyEndpoint {
  readonly kind = 'socks5';
  /** Host name or IP literal, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  /** True for socks5h: (the proxy resolves the target's name), false for socks5: (the client does). */
  readonly remoteDns: boolean;
  /** `socks5h://host:port`, for messages: never the credentials. */
  readonly origin: string;

  constructor(host: string, port: number, remoteDns: boolean, credentials: SocksCredentials | null) {
    this.host = host;
    this.port = port;
    this.remoteDns = remoteDns;
    this.origin = `${remoteDns ? 'socks5h' : 'socks5'}://${net.isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    if (credentials !== null) credentialsOfEndpoint.set(this, credentials);
  }

  /** True when the URL carried credentials (RFC 1929 username/password will be offered). */
  get authenticates(): boolean {
    return credentialsOfEndpoint.has(this);
  }
}

/** True for the schemes parseSocksProxyUrl takes. */
export function isSocksProxyScheme(protocol: string): boolean {
  return protocol === 'socks5:' || protocol === 'socks5h:';
}

/**
 * Checks a `socks5:` or `socks5h:` proxy URL (`what` names the option or variable in errors, which
 * never echo the URL: it may hold credentials). The user name must be 1 to 255 UTF-8 bytes and the
 * password at most 255 (RFC 1929 §2 sends each after a length byte).
 */
export function parseSocksProxyUrl(url: URL, what: string): SocksProxyEndpoint {
  if (!isSocksProxyScheme(url.protocol)) throw new TypeError(`${what} must be a socks5: or socks5h: proxy URL, not ${url.protocol}`);
  if (url.hostname === '') throw new TypeError(`${what} has no host`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.href.includes('#')) {
    throw new TypeError(`${what} must be only a scheme, credentials, host and port (no path, query or fragment)`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? DEFAULT_SOCKS_PORT : Number(url.port);
  const decoded = credentialsOf(url, what);
  let credentials: SocksCredentials | null = null;
  if (decoded !== null) {
    credentials = { user: Buffer.from(decoded.user, 'utf8'), password: Buffer.from(decoded.password, 'utf8') };
    if (credentials.user.length === 0 || credentials.user.length > MAX_FIELD_BYTES) {
      throw new TypeError(`${what} needs a user name of 1 to ${MAX_FIELD_BYTES} bytes for SOCKS5 username/password authentication`);
    }
    if (credentials.password.length > MAX_FIELD_BYTES) {
      throw new TypeError(`${what} has a password longer than ${MAX_FIELD_BYTES} bytes, which SOCKS5 cannot send`);
    }
  }
  return new SocksProxyEndpoint(host, port, url.protocol === 'socks5h:', credentials);
}

/** A SOCKS5 failure: the proxy said no, or said something that is not SOCKS5. */
export class SocksError extends Error {
  constructor(
    message: string,
    /** RFC 1928 §6 reply code, when the proxy refused the CONNECT request. */
    readonly reply?: number,
  ) {
    super(message);
    this.name = 'SocksError';
  }
}

/** What the negotiation wants next, after a chunk from the proxy. */
export type SocksStep =
  /** Nothing yet: a reply is still incomplete. */
  | { kind: 'wait' }
  /** Send these bytes (the RFC 1929 username/password request). */
  | { kind: 'send'; bytes: Buffer }
  /** Authentication is done: send connectRequest(). */
  | { kind: 'authenticated' }
  /** The proxy connected to the target; `rest` are bytes that followed its reply. */
  | { kind: 'connected'; rest: Buffer };

type NegotiationState = 'method' | 'authentication' | 'authenticated' | 'reply' | 'connected';

/**
 * The client side of a SOCKS5 negotiation (RFC 1928 §3–§6, RFC 1929 §2), without sockets: send
 * greeting(), feed every chunk the proxy sends to push(), send what it asks for, and once it says
 * 'authenticated' send connectRequest(). push() throws SocksError on a refusal or a malformed reply.
 * The proxy only ever answers, so bytes beyond the reply awaited are an error, except after the
 * final reply, where they are handed back.
 */
export class Socks5Negotiation {
  private state: NegotiationState = 'method';
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly credentials: SocksCredentials | null) {}

  /** The RFC 1928 §3 method selection message: no authentication, plus username/password when there are credentials. */
  greeting(): Buffer {
    const methods = this.credentials === null ? [METHOD_NO_AUTHENTICATION] : [METHOD_NO_AUTHENTICATION, METHOD_USERNAME_PASSWORD];
    return Buffer.from([SOCKS_VERSION, methods.length, ...methods]);
  }

  /** Where the negotiation is, for messages about a connection that closed in the middle of it. */
  get phase(): NegotiationState {
    return this.state;
  }

  /** The RFC 1928 §4 CONNECT request for `address` and `port`. */
  connectRequest(address: Buffer, port: number): Buffer {
    if (this.state !== 'authenticated') throw new Error(`connectRequest() in state ${this.state}`);
    this.state = 'reply';
    const request = Buffer.alloc(3 + address.length + 2);
    request[0] = SOCKS_VERSION;
    request[1] = COMMAND_CONNECT;
    request[2] = RESERVED;
    address.copy(request, 3);
    request.writeUInt16BE(port, 3 + address.length);
    return request;
  }

  push(chunk: Buffer): SocksStep {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    switch (this.state) {
      case 'method':
        return this.readMethodSelection();
      case 'authentication':
        return this.readAuthenticationStatus();
      case 'reply':
        return this.readReply();
      default:
        throw new SocksError(`sent ${this.buffered.length} bytes it was not asked for`);
    }
  }

  private readMethodSelection(): SocksStep {
    const bytes = this.buffered;
    if (bytes[0] !== SOCKS_VERSION) throw new SocksError(notSocks5(bytes));
    if (bytes.length < 2) return { kind: 'wait' };
    this.expectNoMore(2, 'its method selection');
    const method = bytes[1]!;
    this.buffered = Buffer.alloc(0);
    if (method === METHOD_NONE_ACCEPTABLE) {
      throw new SocksError(
        this.credentials === null
          ? 'requires authentication (it accepts no connection without it): put the credentials in the proxy URL, socks5://user:password@host:port'
          : 'accepts none of the offered authentication methods (no authentication, username/password)',
      );
    }
    if (method === METHOD_NO_AUTHENTICATION) {
      this.state = 'authenticated';
      return { kind: 'authenticated' };
    }
    if (method === METHOD_USERNAME_PASSWORD && this.credentials !== null) {
      this.state = 'authentication';
      const { user, password } = this.credentials;
      // RFC 1929 §2: VER ULEN UNAME PLEN PASSWD.
      return { kind: 'send', bytes: Buffer.concat([Buffer.from([USERNAME_PASSWORD_VERSION, user.length]), user, Buffer.from([password.length]), password]) };
    }
    throw new SocksError(`chose authentication method ${hex(method)}, which was not offered`);
  }

  private readAuthenticationStatus(): SocksStep {
    const bytes = this.buffered;
    if (bytes[0] !== USERNAME_PASSWORD_VERSION) throw new SocksError(`sent a malformed username/password reply (version ${hex(bytes[0]!)}, not 0x01)`);
    if (bytes.length < 2) return { kind: 'wait' };
    this.expectNoMore(2, 'its username/password reply');
    const status = bytes[1]!;
    this.buffered = Buffer.alloc(0);
    // RFC 1929 §2: any status other than 0x00 is a failure, and the server closes the connection.
    if (status !== USERNAME_PASSWORD_SUCCESS) throw new SocksError(`refused the credentials (username/password status ${hex(status)})`);
    this.state = 'authenticated';
    return { kind: 'authenticated' };
  }

  private readReply(): SocksStep {
    const bytes = this.buffered;
    if (bytes[0] !== SOCKS_VERSION) throw new SocksError(`sent a malformed reply (version ${hex(bytes[0]!)}, not 0x05)`);
    if (bytes.length < 2) return { kind: 'wait' };
    const reply = bytes[1]!;
    // A refusal is final whatever follows (RFC 1928 §6: the server closes the connection).
    if (reply !== REPLY_SUCCEEDED) {
      const meaning = SOCKS_REPLY_MESSAGES[reply] ?? 'unassigned reply code';
      throw new SocksError(`${meaning} (SOCKS5 reply ${hex(reply)})`, reply);
    }
    if (bytes.length < 5) return { kind: 'wait' };
    // RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT; the bound address is not needed.
    const addressType = bytes[3]!;
    let length: number;
    if (addressType === ADDRESS_IPV4) length = 4 + 4 + 2;
    else if (addressType === ADDRESS_IPV6) length = 4 + 16 + 2;
    else if (addressType === ADDRESS_DOMAIN) length = 4 + 1 + bytes[4]! + 2;
    else throw new SocksError(`sent a malformed reply (address type ${hex(addressType)})`);
    if (bytes.length < length) return { kind: 'wait' };
    this.state = 'connected';
    this.buffered = Buffer.alloc(0);
    return { kind: 'connected', rest: bytes.subarray(length) };
  }

  private expectNoMore(length: number, what: string): void {
    if (this.buffered.length > length) throw new SocksError(`sent ${this.buffered.length - length} unexpected bytes after ${what}`);
  }
}

/** The message for a first byte that is not SOCKS version 5. */
function notSocks5(bytes: Buffer): string {
  // An HTTP proxy answers a SOCKS greeting with an HTTP error response.
  if ('HTTP/'.startsWith(bytes.toString('latin1', 0, 5))) return 'answered in HTTP: it is an HTTP proxy (use an http:// proxy URL)';
  return `did not answer as a SOCKS5 proxy (version ${hex(bytes[0]!)})`;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/**
 * RFC 1928 §4/§5 DST.ADDR for the CONNECT request: ATYP and the address. IP literals go as
 * addresses; a name goes as a domain name (ASCII: URL host names are already punycode).
 */
export function encodeSocksAddress(host: string): Buffer {
  const family = net.isIP(host);
  if (family === 4) return Buffer.from([ADDRESS_IPV4, ...host.split('.').map(Number)]);
  if (family === 6) return Buffer.concat([Buffer.from([ADDRESS_IPV6]), ipv6Bytes(host)]);
  const name = Buffer.from(host, 'latin1');
  if (name.length === 0 || name.length > MAX_FIELD_BYTES) {
    throw new SocksError(`cannot be given the host name ${JSON.stringify(host)}: SOCKS5 names are 1 to ${MAX_FIELD_BYTES} bytes`);
  }
  return Buffer.concat([Buffer.from([ADDRESS_DOMAIN, name.length]), name]);
}

/** The 16 bytes of a valid IPv6 literal (with `::`, an embedded IPv4 tail, or a zone, which is dropped). */
export function ipv6Bytes(text: string): Buffer {
  const address = text.replace(/%.*$/, '');
  const bytes = Buffer.alloc(16);
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        groups.push(parseInt(piece, 16));
      }
    }
    return groups;
  };
  const gap = address.indexOf('::');
  const head = toGroups(gap === -1 ? address : address.slice(0, gap));
  const tail = gap === -1 ? [] : toGroups(address.slice(gap + 2));
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  groups.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

/**
 * Connects to a SOCKS5 proxy and has it connect to `target`. With socks5: a target host name is
 * resolved here (dns.lookup, as a direct connection would), while the proxy connection and the
 * method negotiation go ahead; with socks5h: the name is sent to the proxy. Reports once through
 * `done` (see TunnelDone).
 */
export class SocksTunnel implements Tunnel {
  private readonly socket: net.Socket;
  private readonly negotiation: Socks5Negotiation;
  /** DST.ADDR once known: at once for an IP literal or socks5h:, after the lookup otherwise. */
  private address: Buffer | null = null;
  private authenticated = false;
  private finished = false;

  constructor(
    private readonly proxy: SocksProxyEndpoint,
    private readonly target: TunnelTarget,
    private readonly done: TunnelDone,
  ) {
    this.negotiation = new Socks5Negotiation(credentialsOfEndpoint.get(proxy) ?? null);
    this.socket = net.connect({ host: proxy.host, port: proxy.port });
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
    this.socket.write(this.negotiation.greeting());
    if (!proxy.remoteDns && net.isIP(target.host) === 0) this.resolveTarget();
  }

  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    this.socket.on('error', ignoreError);
    this.socket.destroy();
  }

  private get authority(): string {
    return `${net.isIP(this.target.host) === 6 ? `[${this.target.host}]` : this.target.host}:${this.target.port}`;
  }

  private resolveTarget(): void {
    dns.lookup(this.target.host, (error, address) => {
      if (this.finished) return;
      if (error !== null) {
        return this.fail({
          message: `cannot resolve ${this.target.host} for proxy ${this.proxy.origin}: ${error.message} (with socks5h:// the proxy resolves names itself)`,
          cause: error,
        });
      }
      this.address = encodeSocksAddress(address);
      this.sendRequestWhenReady();
    });
  }

  /** The CONNECT request goes once both the authentication and the target's address are done. */
  private sendRequestWhenReady(): void {
    if (!this.authenticated || this.finished) return;
    if (this.address === null) {
      if (!this.proxy.remoteDns && net.isIP(this.target.host) === 0) return; // the lookup is under way
      this.address = encodeSocksAddress(this.target.host);
    }
    this.socket.write(this.negotiation.connectRequest(this.address, this.target.port));
  }

  private readonly onData = (chunk: Buffer): void => {
    let step: SocksStep;
    try {
      step = this.negotiation.push(chunk);
      if (step.kind === 'send') this.socket.write(step.bytes);
      else if (step.kind === 'authenticated') {
        this.authenticated = true;
        this.sendRequestWhenReady();
      }
    } catch (error) {
      return this.fail(this.failureOf(error));
    }
    if (step.kind !== 'connected') return;
    // As with CONNECT: neither a WebSocket server nor a TLS server speaks first, so bytes after
    // the reply are not the target's, and the stream would be corrupt.
    if (step.rest.length > 0) {
      return this.fail({ message: `proxy ${this.proxy.origin} sent ${step.rest.length} unexpected bytes after its SOCKS5 reply` });
    }
    this.finished = true;
    this.detach();
    this.socket.pause();
    this.done(null, this.socket);
  };

  private failureOf(error: unknown): TunnelFailure {
    if (!(error instanceof SocksError)) return { message: `proxy ${this.proxy.origin}: ${(error as Error).message}`, cause: error };
    if (error.reply !== undefined) {
      return { message: `proxy ${this.proxy.origin} could not connect to ${this.authority}: ${error.message}`, socksReply: error.reply };
    }
    return { message: `proxy ${this.proxy.origin} ${error.message}` };
  }

  private readonly onError = (error: Error): void => {
    this.fail({ message: `connection to proxy ${this.proxy.origin} failed: ${error.message}`, cause: error });
  };

  private readonly onClose = (): void => {
    const phase = this.negotiation.phase;
    const when =
      phase === 'method'
        ? 'before choosing an authentication method'
        : phase === 'authentication'
          ? 'after the credentials were sent (were they refused?)'
          : phase === 'reply'
            ? `before answering the request to connect to ${this.authority}`
            : 'during the SOCKS5 negotiation';
    this.fail({ message: `proxy ${this.proxy.origin} closed the connection ${when}` });
  };

  private fail(failure: TunnelFailure): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    this.socket.on('error', ignoreError);
    this.socket.destroy();
    this.done(failure);
  }

  private detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
  }
}
