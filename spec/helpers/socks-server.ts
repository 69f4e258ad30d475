// A scripted SOCKS5 server (RFC 1928, RFC 1929) on 127.0.0.1 for the client's specs and the
// documentation examples: by default a working proxy (no authentication, or username/password when
// given credentials) that connects to the requested port on 127.0.0.1, whatever name or address was
// asked for, so that tests can use names no resolver knows; or, step by step, a scripted
// misbehaviour. It records every session.
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';

/** A step of the negotiation, from the server's side. */
export type SocksStage = 'greeting' | 'auth' | 'request';

export interface ScriptedSocksOptions {
  /** Require username/password (RFC 1929) with exactly these credentials; else no authentication. */
  credentials?: { user: string; password: string };
  /** Answer the greeting with these bytes (and nothing more) instead of choosing a method. */
  methodReply?: number[];
  /** Answer the username/password request with these bytes instead of checking them. */
  authReply?: number[];
  /** Answer the CONNECT request with these bytes instead of connecting. */
  connectReply?: number[];
  /** Refuse the CONNECT request with this reply code (RFC 1928 §6), then close. */
  refuse?: number;
  /** Close the connection instead of answering at this step. */
  closeAt?: SocksStage;
  /** Never answer at this step. */
  silentAt?: SocksStage;
  /** Bytes sent right after a successful CONNECT reply, before any of the target's. */
  afterReply?: number[];
  /** Send every reply one byte per event-loop turn, so the client reads it in pieces. */
  byteByByte?: boolean;
  /** Connect requests for port 80 or 443 here instead (targets listen on ports of their own). */
  route?: number;
}

export interface SocksSession {
  /** The methods the client offered. */
  methods: number[];
  /** The username/password request, as received. */
  auth: { version: number; user: Buffer; password: Buffer } | null;
  /** The CONNECT request: host is the IP address (ATYP 1 and 4) or the domain name (ATYP 3). */
  request: { version: number; command: number; addressType: number; host: string; port: number } | null;
  /** Bytes the client sent into the tunnel. */
  tunnelled: Buffer[];
  /** The proxy side of the client's connection. */
  socket: net.Socket;
}

export interface ScriptedSocksServer {
  port: number;
  /** `scheme://[user:password@]127.0.0.1:port`, credentials percent-encoded. */
  url(scheme?: 'socks5' | 'socks5h', credentials?: { user: string; password: string }): string;
  sessions: SocksSession[];
  /** Resolves with the next session once its greeting arrived (or one that already did). */
  nextSession(): Promise<SocksSession>;
  /** Connections accepted, greeting or not. */
  readonly connections: number;
  close(): Promise<void>;
}

const SUCCESS_REPLY_CODE = 0x00;

export async function startSocksServer(options: ScriptedSocksOptions = {}): Promise<ScriptedSocksServer> {
  const sessions: SocksSession[] = [];
  const waiting: Array<(session: SocksSession) => void> = [];
  const sockets = new Set<net.Socket>();
  let taken = 0;
  let connections = 0;

  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };

  const server = net.createServer((client) => {
    connections++;
    track(client);
    client.setNoDelay(true);
    let buffer = Buffer.alloc(0);
    let stage: SocksStage | 'tunnel' | 'done' = 'greeting';
    let session: SocksSession | null = null;

    const send = async (bytes: number[] | Buffer): Promise<void> => {
      if (!options.byteByByte) {
        client.write(Buffer.from(bytes));
        return;
      }
      for (const byte of bytes) {
        if (client.destroyed) return;
        client.write(Buffer.from([byte]));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    /** True if this step is scripted to close or stay silent. */
    const scripted = (at: SocksStage): boolean => {
      if (options.closeAt === at) {
        client.destroy();
        stage = 'done';
        return true;
      }
      if (options.silentAt === at) {
        stage = 'done';
        return true;
      }
      return false;
    };

    const onData = (chunk: Buffer): void => {
      if (stage === 'tunnel' || stage === 'done') return;
      buffer = Buffer.concat([buffer, chunk]);
      if (stage === 'greeting') {
        if (buffer.length < 2 || buffer.length < 2 + buffer[1]!) return;
        const count = buffer[1]!;
        session = { methods: [...buffer.subarray(2, 2 + count)], auth: null, request: null, tunnelled: [], socket: client };
        buffer = buffer.subarray(2 + count);
        sessions.push(session);
        waiting.shift()?.(session);
        if (scripted('greeting')) return;
        if (options.methodReply !== undefined) {
          stage = 'done';
          void send(options.methodReply);
          return;
        }
        const wanted = options.credentials === undefined ? 0x00 : 0x02;
        if (!session.methods.includes(wanted)) {
          stage = 'done';
          void send([0x05, 0xff]).then(() => client.end());
          return;
        }
        stage = wanted === 0x02 ? 'auth' : 'request';
        void send([0x05, wanted]);
      }
      if (stage === 'auth') {
        // VER ULEN UNAME PLEN PASSWD
        if (buffer.length < 2) return;
        const userLength = buffer[1]!;
        if (buffer.length < 2 + userLength + 1) return;
        const passwordLength = buffer[2 + userLength]!;
        const end = 3 + userLength + passwordLength;
        if (buffer.length < end) return;
        session!.auth = {
          version: buffer[0]!,
          user: Buffer.from(buffer.subarray(2, 2 + userLength)),
          password: Buffer.from(buffer.subarray(3 + userLength, end)),
        };
        buffer = buffer.subarray(end);
        if (scripted('auth')) return;
        if (options.authReply !== undefined) {
          stage = 'done';
          void send(options.authReply);
          return;
        }
        const { user, password } = options.credentials!;
        const accepted = session!.auth.user.equals(Buffer.from(user, 'utf8')) && session!.auth.password.equals(Buffer.from(password, 'utf8'));
        if (!accepted) {
          // RFC 1929 §2: a failure status, then the server closes the connection.
          stage = 'done';
          void send([0x01, 0x01]).then(() => client.end());
          return;
        }
        stage = 'request';
        void send([0x01, 0x00]);
      }
      if (stage === 'request') {
        // VER CMD RSV ATYP DST.ADDR DST.PORT
        if (buffer.length < 5) return;
        const addressType = buffer[3]!;
        const addressLength = addressType === 0x01 ? 4 : addressType === 0x04 ? 16 : addressType === 0x03 ? 1 + buffer[4]! : 0;
        const end = 4 + addressLength + 2;
        if (buffer.length < end) return;
        const address = buffer.subarray(4, 4 + addressLength);
        const host = addressType === 0x01 ? [...address].join('.') : addressType === 0x04 ? ipv6Text(address) : address.subarray(1).toString('latin1');
        session!.request = { version: buffer[0]!, command: buffer[1]!, addressType, host, port: buffer.readUInt16BE(4 + addressLength) };
        const early = buffer.subarray(end);
        buffer = Buffer.alloc(0);
        if (early.length > 0) session!.tunnelled.push(Buffer.from(early));
        if (scripted('request')) return;
        if (options.connectReply !== undefined) {
          stage = 'done';
          void send(options.connectReply);
          return;
        }
        if (options.refuse !== undefined) {
          stage = 'done';
          void send([0x05, options.refuse, 0x00, 0x01, 0, 0, 0, 0, 0, 0]).then(() => client.end());
          return;
        }
        stage = 'tunnel';
        client.pause();
        openTunnel(session!);
      }
    };

    const openTunnel = (current: SocksSession): void => {
      const request = current.request!;
      // Every target of these tests is on 127.0.0.1, whatever name or address was asked for.
      const port = (request.port === 80 || request.port === 443) && options.route !== undefined ? options.route : request.port;
      const upstream = net.connect({ host: '127.0.0.1', port });
      let connected = false;
      track(upstream);
      upstream.on('close', () => {
        if (connected) client.destroy();
      });
      client.on('close', () => upstream.destroy());
      upstream.on('error', () => {
        // RFC 1928 §6: 0x05 connection refused.
        if (connected) return;
        void send([0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0]).then(() => client.end());
      });
      upstream.on('connect', () => {
        connected = true;
        const bound = upstream.address() as AddressInfo;
        const v6 = net.isIP(bound.address) === 6;
        const reply = Buffer.alloc(v6 ? 22 : 10);
        reply.set([0x05, SUCCESS_REPLY_CODE, 0x00, v6 ? 0x04 : 0x01]);
        if (v6) ipv6Buffer(bound.address).copy(reply, 4);
        else reply.set(bound.address.split('.').map(Number), 4);
        reply.writeUInt16BE(bound.port, v6 ? 20 : 8);
        void send(reply).then(() => {
          if (options.afterReply !== undefined) client.write(Buffer.from(options.afterReply));
          for (const chunk of current.tunnelled) upstream.write(chunk);
          client.on('data', (chunk: Buffer) => {
            current.tunnelled.push(Buffer.from(chunk));
            upstream.write(chunk);
          });
          upstream.pipe(client);
          client.resume();
        });
      });
    };

    client.on('data', onData);
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    sessions,
    get connections() {
      return connections;
    },
    url(scheme = 'socks5h', credentials) {
      const auth = credentials === undefined ? '' : `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@`;
      return `${scheme}://${auth}127.0.0.1:${port}`;
    },
    nextSession() {
      const index = taken++;
      return new Promise((resolve) => {
        if (index < sessions.length) resolve(sessions[index]!);
        else waiting.push(resolve);
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** The compressed text form of 16 address bytes (via the URL parser's IPv6 serializer). */
function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function ipv6Buffer(text: string): Buffer {
  // The URL parser expands nothing, so expand here: the helper needs only what Node reports.
  const full = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head = '', tail = ''] = full.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = full.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = full.includes('::') ? [...headGroups, ...new Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups] : headGroups;
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(parseInt(group, 16), index * 2));
  return bytes;
}
