// What to try next when a connection cannot be opened: the common mistakes (an untrusted
// certificate, ws:// to a TLS port, wss:// to a plain one, a redirect) named with their remedy.
import * as net from 'node:net';
import * as tls from 'node:tls';

/** How long the ws:// failure diagnosis waits for a TLS handshake with the same port. */
export const TLS_PROBE_TIMEOUT = 2000;

/** Node's codes for a certificate chain that does not end at a CA this machine trusts. */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** Codes that already say why a plain connection failed; no TLS probe can add anything. */
const CONCLUSIVE_NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** What OpenSSL reports when the bytes it got back are not TLS (an HTTP server answered). */
const NOT_TLS = /wrong version number|packet length too long|unknown protocol|http request/i;

interface ErrorFacts {
  codes: Set<string>;
  messages: string[];
  statusCode: number | undefined;
  location: string | undefined;
}

function factsOf(error: unknown): ErrorFacts {
  const facts: ErrorFacts = { codes: new Set(), messages: [], statusCode: undefined, location: undefined };
  const seen = new Set<unknown>();
  for (let current = error; typeof current === 'object' && current !== null && !seen.has(current); current = (current as { cause?: unknown }).cause) {
    seen.add(current);
    const { code, message, statusCode, headers } = current as { code?: unknown; message?: unknown; statusCode?: unknown; headers?: unknown };
    if (typeof code === 'string') facts.codes.add(code);
    if (typeof message === 'string') facts.messages.push(message);
    if (typeof statusCode === 'number') facts.statusCode ??= statusCode;
    const location = headerValue(headers, 'location');
    if (location !== undefined) facts.location ??= location;
  }
  return facts;
}

/** A response header from the handshake error: a Map of lower-case names to lists of values. */
function headerValue(headers: unknown, name: string): string | undefined {
  if (!(headers instanceof Map)) return undefined;
  const value: unknown = headers.get(name);
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

/** The same URL with ws ⇄ wss (http ⇄ https), keeping the port it was tried on. */
export function otherScheme(url: URL): string {
  const other = new URL(url.href);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  // Switching scheme would silently switch the default port too (80 ⇄ 443).
  if (other.port === '') other.port = secure ? '443' : '80';
  other.protocol = secure ? 'ws:' : 'wss:';
  return other.href;
}

function hostPort(url: URL): { host: string; port: number } {
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? (secure ? 443 : 80) : Number(url.port) };
}

/**
 * True when `host:port` completes a TLS handshake. Nothing is verified and nothing is sent after
 * the handshake: the question is only which protocol the port speaks.
 */
export function speaksTls(host: string, port: number, timeout = TLS_PROBE_TIMEOUT): Promise<boolean> {
  return new Promise((resolve) => {
    const options: tls.ConnectionOptions = { host, port, rejectUnauthorized: false };
    // RFC 6066 §3: SNI carries host names only, never an address literal.
    if (net.isIP(host) === 0) options.servername = host;
    const socket = tls.connect(options);
    const finish = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(false), timeout);
    socket.once('secureConnect', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/**
 * Hints for a connection that could not be opened, most useful first; none when the error says it
 * all. `viaProxy`: the TCP connection went to a proxy, so probing the target port proves nothing.
 */
export async function openFailureHints(error: unknown, url: URL, viaProxy: boolean): Promise<string[]> {
  const facts = factsOf(error);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  const { host, port } = hostPort(url);
  const hints: string[] = [];
  if ([...facts.codes].some((code) => UNTRUSTED_CERTIFICATE_CODES.has(code))) {
    hints.push(
      "the server's certificate is not signed by a CA this machine trusts (a self-signed certificate?): " +
        'trust its CA with --ca <file.pem>, or skip the check with --insecure (-k), for testing only',
    );
  } else if (facts.codes.has('ERR_TLS_CERT_ALTNAME_INVALID')) {
    hints.push(`the certificate is not for ${host}: connect with a name it lists, or skip the check with --insecure (-k), for testing only`);
  } else if (facts.codes.has('CERT_HAS_EXPIRED') || facts.codes.has('CERT_NOT_YET_VALID')) {
    hints.push("the certificate is outside its validity period: check this machine's clock, or skip the check with --insecure (-k), for testing only");
  } else if (secure && !viaProxy && facts.messages.some((message) => NOT_TLS.test(message))) {
    hints.push(`${host}:${port} did not answer in TLS; did you mean ${otherScheme(url)} ?`);
  } else if (facts.codes.has('ECONNREFUSED') && !viaProxy) {
    hints.push(`nothing is listening on ${host}:${port}: is the server running, on this port?`);
  } else if (facts.codes.has('ENOTFOUND') || facts.codes.has('EAI_AGAIN')) {
    hints.push(`the name ${host} does not resolve: check its spelling`);
  } else if (facts.statusCode !== undefined) {
    const status = facts.statusCode;
    if (status >= 300 && status < 400 && facts.location !== undefined) {
      hints.push(`the server redirects to ${facts.location}; WebSocket clients do not follow redirects: connect there instead`);
    } else if (status === 401 || status === 403) {
      hints.push("the server refused this client: it may want credentials (-H 'Authorization: …') or another origin (-H 'Origin: …')");
    } else if (status === 404) {
      hints.push(`nothing answers WebSocket requests at ${url.pathname}: check the path`);
    } else if (status >= 200 && status < 300) {
      hints.push('the server answered with an ordinary HTTP response, not a WebSocket upgrade: check the path, or whether it speaks WebSocket at all');
    }
  } else if (!secure && !viaProxy && ![...facts.codes].some((code) => CONCLUSIVE_NETWORK_CODES.has(code))) {
    // A TLS server drops a plaintext HTTP request without an HTTP answer; ask the port itself.
    if (await speaksTls(host, port)) hints.push(`${host}:${port} speaks TLS; did you mean ${otherScheme(url)} ?`);
  }
  return hints;
}
