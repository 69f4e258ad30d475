// Outbound proxies for the client: the `proxy` option, the proxy environment variables with
// NO_PROXY, and the tunnel the opening handshake then runs through: HTTP CONNECT (RFC 9110
// §9.3.6) here, SOCKS5 in socks.ts.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { domainToASCII } from 'node:url';
import { HttpResponseHeadReader } from './http.js';
import { isSocksProxyScheme, parseSocksProxyUrl, SocksTunnel, type SocksProxyEndpoint } from './socks.js';
import { isUnixSocketUrl } from './transport.js';
import { credentialsOf, ignoreError, type Tunnel, type TunnelDone, type TunnelFailure, type TunnelTarget } from './tunnel.js';

/** The object form of the `proxy` option. */
export interface ProxyOptions {
  /**
   * An http: or https: proxy URL (credentials in it are sent as Basic Proxy-Authorization), a
   * socks5: or socks5h: one (credentials in it are sent as RFC 1929 username/password), or 'env'.
   */
  url: string | URL;
  /** Options for tls.connect to an https: proxy itself (ca, cert, key, servername, rejectUnauthorized…). */
  tls?: tls.ConnectionOptions;
}

/** A validated HTTP(S) proxy: where to connect and what to send. Never holds the credentials in clear. */
export interface HttpProxyEndpoint {
  kind: 'http';
  /** True for an https: proxy (TLS to the proxy itself). */
  secure: boolean;
  /** Host name or IP literal, without IPv6 brackets. */
  host: string;
  port: number;
  /** `http://host:port`, for messages: never the credentials. */
  origin: string;
  /** `Basic …` from the URL's user name and password, or null when it has none. */
  authorization: string | null;
  tls: tls.ConnectionOptions | undefined;
}

/** A validated proxy of either kind. */
export type ProxyEndpoint = HttpProxyEndpoint | SocksProxyEndpoint;

/** The converted `proxy` option: a fixed proxy, or "read the environment when connecting". */
export type ProxySetting = { kind: 'fixed'; endpoint: ProxyEndpoint } | { kind: 'env'; tls: tls.ConnectionOptions | undefined };

/** The `proxy` option value that reads HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY. */
export const PROXY_FROM_ENV = 'env';

/**
 * Converts the `proxy` option: undefined, null or false → no proxy (null); 'env' → the
 * environment; a URL string or URL → that proxy; `{ url, tls }` → the same with TLS options for an
 * https: proxy. Every invalid value throws TypeError, like the other Node-only options.
 */
export function toProxySetting(value: unknown): ProxySetting | null {
  if (value === undefined || value === null || value === false) return null;
  let url: unknown = value;
  let proxyTls: tls.ConnectionOptions | undefined;
  if (typeof value === 'object' && !(value instanceof URL)) {
    // Each member read once.
    url = (value as { url?: unknown }).url;
    const rawTls = (value as { tls?: unknown }).tls;
    if (url === undefined) throw new TypeError('proxy.url is required: a proxy URL or "env"');
    if (rawTls !== undefined && (typeof rawTls !== 'object' || rawTls === null)) {
      throw new TypeError('proxy.tls must be an object of tls.connect options');
    }
    proxyTls = rawTls;
  }
  if (url === PROXY_FROM_ENV) return { kind: 'env', tls: proxyTls };
  if (url instanceof URL) url = url.href;
  if (typeof url !== 'string') {
    throw new TypeError(
      value === true
        ? 'proxy must be a proxy URL, "env" (to read HTTPS_PROXY, HTTP_PROXY and NO_PROXY) or false'
        : 'proxy must be a proxy URL string or URL, "env", an object { url, tls } or false',
    );
  }
  if (!URL.canParse(url)) throw new TypeError('proxy must be an http:, https:, socks5: or socks5h: proxy URL, or "env"');
  const endpoint = parseProxyUrl(url, 'proxy', proxyTls);
  if (endpoint.kind === 'socks5' && proxyTls !== undefined) throw new TypeError('proxy.tls is for an https: proxy; a SOCKS5 proxy is reached without TLS');
  return { kind: 'fixed', endpoint };
}

/**
 * The proxy to use for `target` (a ws: or wss: URL), or null for a direct connection. A fixed
 * proxy applies to every target; 'env' reads the environment now (see proxyFromEnvironment).
 * Unix socket URLs never use one (a fixed proxy throws TypeError).
 */
export function resolveProxy(setting: ProxySetting | null, target: URL, env: NodeJS.ProcessEnv = process.env): ProxyEndpoint | null {
  if (setting === null) return null;
  if (isUnixSocketUrl(target)) {
    // A local socket is reached directly: the environment's proxies are for the network.
    if (setting.kind === 'fixed') throw new TypeError('a proxy cannot reach a Unix domain socket: ws+unix: and wss+unix: URLs connect directly');
    return null;
  }
  if (setting.kind === 'fixed') return setting.endpoint;
  return proxyFromEnvironment(target, env, setting.tls);
}

/**
 * The proxy the environment asks for, as curl reads it: `https_proxy` / `HTTPS_PROXY` for wss:
 * targets, `http_proxy` / `HTTP_PROXY` for ws: targets, else `all_proxy` / `ALL_PROXY` for both
 * (lower case first; empty means unset; no fallback from one scheme's variable to the other's),
 * unless `no_proxy` / `NO_PROXY` matches the target. Any of them may name an HTTP(S) or a SOCKS5
 * proxy; a value without a scheme (`proxy:3128`) means http://. An invalid value throws TypeError.
 */
export function proxyFromEnvironment(target: URL, env: NodeJS.ProcessEnv, proxyTls?: tls.ConnectionOptions): ProxyEndpoint | null {
  const names = target.protocol === 'wss:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY'];
  const found = firstSet(env, names) ?? firstSet(env, ['all_proxy', 'ALL_PROXY']);
  if (found === null) return null;
  const noProxy = firstSet(env, ['no_proxy', 'NO_PROXY']);
  if (noProxy !== null && bypassesProxy(noProxy.value, target.hostname, effectivePort(target))) return null;
  const value = /^[a-z][a-z0-9+.-]*:\/\//i.test(found.value) ? found.value : `http://${found.value}`;
  return parseProxyUrl(value, found.name, proxyTls);
}

function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): { name: string; value: string } | null {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value !== undefined && value !== '') return { name, value };
  }
  return null;
}

/** The port a ws:/wss: URL connects to. */
export function effectivePort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'wss:' || url.protocol === 'https:' ? 443 : 80;
}

/** Parses and checks a proxy URL; `what` names the option or variable in error messages. */
export function parseProxyUrl(input: string, what: string, proxyTls?: tls.ConnectionOptions): ProxyEndpoint {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    // The input may hold credentials: never echo it.
    throw new TypeError(`${what} is not a valid URL`);
  }
  if (isSocksProxyScheme(url.protocol)) return parseSocksProxyUrl(url, what);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${what} must be an http: or https: proxy URL (CONNECT), or socks5: or socks5h: (SOCKS5), not ${url.protocol}`);
  }
  if (url.hostname === '') throw new TypeError(`${what} has no host`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.href.includes('#')) {
    throw new TypeError(`${what} must be only a scheme, credentials, host and port (no path, query or fragment)`);
  }
  const secure = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  let authorization: string | null = null;
  const credentials = credentialsOf(url, what);
  if (credentials !== null) {
    const { user, password } = credentials;
    // RFC 7617 §2: a user-id containing a colon cannot be sent.
    if (user.includes(':')) throw new TypeError(`${what} has a user name with a colon, which Basic authorization cannot send`);
    authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  }
  return { kind: 'http', secure, host, port, origin: `${url.protocol}//${url.host}`, authorization, tls: proxyTls };
}

/**
 * NO_PROXY matching (curl's rules, case-insensitive): entries separated by commas or white space;
 * `*` matches everything; a host name matches itself and its subdomains, with or without a leading
 * `.` or `*.` (`example.com`, `.example.com`); an IP literal matches that address (IPv6 with or
 * without brackets), `addr/bits` a subnet; `entry:port` (`[v6]:port`) also requires that port.
 * Names are never resolved: `localhost` does not match 127.0.0.1.
 */
export function bypassesProxy(noProxy: string, hostname: string, port: number): boolean {
  let host = hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = host.replace(/\.+$/, '');
  const hostFamily = net.isIP(host);
  for (const raw of noProxy.split(/[\s,]+/)) {
    if (raw === '') continue;
    if (raw === '*') return true;
    const entry = splitEntry(raw.toLowerCase());
    if (entry === null) continue;
    if (entry.port !== null && entry.port !== port) continue;
    if (entryMatches(entry.host, host, hostFamily)) return true;
  }
  return false;
}

function splitEntry(entry: string): { host: string; port: number | null } | null {
  let host = entry;
  let portText: string | null = null;
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close === -1) return null;
    host = entry.slice(1, close);
    const after = entry.slice(close + 1);
    if (after.startsWith(':')) portText = after.slice(1);
    else if (after !== '' && !after.startsWith('/')) return null;
    else host += after; // `[v6]/bits`
  } else {
    const colon = entry.indexOf(':');
    // One colon: host:port. More: a bare IPv6 literal (or subnet), which has no port.
    if (colon !== -1 && entry.indexOf(':', colon + 1) === -1) {
      host = entry.slice(0, colon);
      portText = entry.slice(colon + 1);
    }
  }
  let port: number | null = null;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText)) return null;
    port = Number(portText);
  }
  return host === '' ? null : { host, port };
}

function entryMatches(entry: string, host: string, hostFamily: number): boolean {
  const slash = entry.indexOf('/');
  if (slash !== -1) {
    // A subnet: addr/bits.
    const address = entry.slice(0, slash);
    const family = net.isIP(address);
    const bits = entry.slice(slash + 1);
    if (family === 0 || family !== hostFamily || !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) return false;
    const list = new net.BlockList();
    list.addSubnet(address, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
    return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
  }
  const entryFamily = net.isIP(entry);
  if (entryFamily !== 0 || hostFamily !== 0) {
    // IP literals match exactly (compared as addresses, so ::1 equals 0:0:0:0:0:0:0:1).
    if (entryFamily !== hostFamily) return false;
    const type = entryFamily === 4 ? 'ipv4' : 'ipv6';
    const list = new net.BlockList();
    list.addAddress(entry, type);
    return list.check(host, type);
  }
  let name = entry.replace(/^\*?\.+/, '').replace(/\.+$/, '');
  // The target's host name is in ASCII (punycode) form; so must the entry be.
  // eslint-disable-next-line no-control-regex -- the range is all of ASCII, control characters included
  if (/[^\x00-\x7f]/.test(name)) name = domainToASCII(name);
  if (name === '') return false;
  return host === name || host.endsWith(`.${name}`);
}

/**
 * Opens a tunnel to `target` through `proxy`, of the proxy's kind; `done` reports once (see
 * TunnelDone). `maxHead` bounds an HTTP proxy's response head.
 */
export function openTunnel(proxy: ProxyEndpoint, target: TunnelTarget, maxHead: number, done: TunnelDone): Tunnel {
  if (proxy.kind === 'socks5') return new SocksTunnel(proxy, target, done);
  // RFC 9110 §9.3.6: CONNECT names host and port, an IPv6 literal in brackets.
  const authority = `${net.isIP(target.host) === 6 ? `[${target.host}]` : target.host}:${target.port}`;
  return new ProxyTunnel(proxy, authority, maxHead, done);
}

/**
 * Connects to the proxy (TLS for an https: proxy), asks it for a tunnel to `authority`
 * (`host:port`, IPv6 in brackets) and reads its reply. Reports once through `done`, synchronously
 * from the socket event that decided it: on success with the connected, paused socket whose bytes
 * now go to the target, and without any listener of the tunnel left on it.
 */
export class ProxyTunnel implements Tunnel {
  private readonly socket: net.Socket;
  private readonly reader: HttpResponseHeadReader;
  private finished = false;

  constructor(
    private readonly proxy: HttpProxyEndpoint,
    private readonly authority: string,
    maxHead: number,
    private readonly done: TunnelDone,
  ) {
    this.reader = new HttpResponseHeadReader(maxHead);
    if (proxy.secure) {
      // The proxy's own TLS, with the §2.5 defaults: SNI only for a host name, and
      // rejectUnauthorized only when the user gave it.
      const options: tls.ConnectionOptions = { ...proxy.tls, host: proxy.host, port: proxy.port };
      if (options.servername === undefined && net.isIP(proxy.host) === 0) options.servername = proxy.host;
      this.socket = tls.connect(options);
    } else {
      this.socket = net.connect({ host: proxy.host, port: proxy.port });
    }
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
    // RFC 9110 §9.3.6: the request target is the authority form, and Host carries the same.
    const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
    if (proxy.authorization !== null) lines.push(`Proxy-Authorization: ${proxy.authorization}`);
    this.socket.write(lines.join('\r\n') + '\r\n\r\n');
  }

  /** Abandons the tunnel: the socket is destroyed and `done` is not called. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    this.socket.on('error', ignoreError);
    this.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    let parsed;
    try {
      parsed = this.reader.push(chunk);
    } catch (error) {
      return this.fail({ message: `invalid response from proxy ${this.proxy.origin}: ${(error as Error).message}`, cause: error });
    }
    if (parsed === null) return;
    const { head, rest } = parsed;
    if (head.statusCode < 200 || head.statusCode > 299) {
      let hint = '';
      if (head.statusCode === 407) {
        hint = this.proxy.authorization === null ? ' (put the credentials in the proxy URL: http://user:password@host:port)' : ' (the credentials were refused)';
      }
      return this.fail({
        message: `proxy ${this.proxy.origin} refused the tunnel to ${this.authority}: ${`${head.statusCode} ${head.statusMessage}`.trimEnd()}${hint}`,
        response: head,
      });
    }
    // A 2xx reply to CONNECT has no body (RFC 9110 §9.3.6), and neither a WebSocket server nor a
    // TLS server speaks first: bytes here are not the target's, and the stream would be corrupt.
    if (rest.length > 0) {
      return this.fail({ message: `proxy ${this.proxy.origin} sent ${rest.length} unexpected bytes after its CONNECT reply`, response: head });
    }
    this.finished = true;
    this.detach();
    this.socket.pause();
    this.done(null, this.socket);
  };

  private readonly onError = (error: Error): void => {
    this.fail({ message: `connection to proxy ${this.proxy.origin} failed: ${error.message}`, cause: error });
  };

  private readonly onClose = (): void => {
    this.fail({ message: `proxy ${this.proxy.origin} closed the connection before answering CONNECT` });
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
