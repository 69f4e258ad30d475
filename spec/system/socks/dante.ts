// Dante (Debian's dante-server, `danted`) as a SOCKS5 proxy for the client's interop spec, started
// on 127.0.0.1 with a generated configuration on a free port.
//
// Dante checks the username method (RFC 1929) against the system's users (getpwnam/getspnam), and
// resolves names with the system's resolver. So that the spec needs no real user and sends no DNS
// query, danted runs in a mount namespace of its own (util-linux `unshare --mount`, as root) where
// /etc/passwd, /etc/shadow and /etc/hosts are bind-mounted copies: the host's passwd and shadow
// plus one throwaway user, and a hosts file mapping localhost to 127.0.0.1 alone. Nothing on the
// machine changes, and nothing is left behind when danted exits, even if the test run is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { requireProgram } from '../support/services.js';

/** The throwaway user of the username method, only ever present inside danted's namespace. */
export const DANTE_USER = 'wssocks';
/** Its password (with characters that must be percent-encoded in a URL). */
export const DANTE_PASSWORD = 'dante p@ss:1';
/** crypt(3) SHA-512 of DANTE_PASSWORD with the salt "wssocksspec" (perl -e 'print crypt(...)'). */
const DANTE_PASSWORD_HASH = '$6$wssocksspec$HsSZ.EMV9uDILYEUlqiPrVW.R3FnDxvDIqL5UvpJjpPUzzrVmghxjguW4rkuR22lFFgi5dsEibBJLBzyZRDnA.';
/** Its uid and gid: any will do, the entry exists only inside danted's namespace. */
const DANTE_USER_ID = 64999;

export interface DanteOptions {
  /** 'username': RFC 1929 only (the throwaway user); 'none': no authentication. */
  method: 'none' | 'username';
  /** A port on 127.0.0.1 that the rules forbid: requests for it get reply 0x02. */
  blockedPort?: number;
}

export interface Dante {
  port: number;
  /** Everything danted logged so far (its connection log included). */
  readonly log: string;
  stop(): Promise<void>;
}

/** How many times a port taken between choosing it and danted binding it is tried again. */
const BIND_ATTEMPTS = 5;

export async function startDante(options: DanteOptions): Promise<Dante> {
  const danted = requireProgram('danted', 'dante-server', 'the SOCKS5 interop spec');
  const unshare = requireProgram('unshare', 'util-linux', 'the SOCKS5 interop spec (danted runs in its own mount namespace)');
  requireProgram('mount', 'mount', 'the SOCKS5 interop spec (bind mounts inside danted\'s namespace)');
  if (process.getuid?.() !== 0) throw new Error('the SOCKS5 interop spec runs danted in a mount namespace of its own, which needs root');
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'wss-dante-'));
  try {
    writeAccounts(directory);
    fs.writeFileSync(path.join(directory, 'hosts'), '127.0.0.1 localhost\n');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(danted, unshare, directory, port, options);
      if (started !== null) return started;
      if (attempt === BIND_ATTEMPTS) throw new Error(`danted could not bind a free port in ${BIND_ATTEMPTS} attempts`);
    }
  } catch (error) {
    fs.rmSync(directory, { recursive: true, force: true });
    throw error;
  }
}

function writeAccounts(directory: string): void {
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  const shadow = fs.readFileSync('/etc/shadow', 'utf8');
  const withNewline = (text: string): string => (text.endsWith('\n') || text === '' ? text : `${text}\n`);
  fs.writeFileSync(path.join(directory, 'passwd'), `${withNewline(passwd)}${DANTE_USER}:x:${DANTE_USER_ID}:${DANTE_USER_ID}::/nonexistent:/usr/sbin/nologin\n`);
  fs.writeFileSync(path.join(directory, 'shadow'), `${withNewline(shadow)}${DANTE_USER}:${DANTE_PASSWORD_HASH}:19000:0:99999:7:::\n`, { mode: 0o600 });
}

function configuration(port: number, options: DanteOptions): string {
  const lines = [
    'logoutput: stderr',
    `internal: 127.0.0.1 port = ${port}`,
    // Every address of the loopback interface, IPv4 and IPv6: targets are local servers.
    'external: lo',
    'clientmethod: none',
    `socksmethod: ${options.method}`,
    // The username method reads /etc/shadow, which needs root.
    'user.privileged: root',
    'user.unprivileged: nobody',
    'client pass {',
    '  from: 127.0.0.0/8 to: 0/0',
    '  log: error',
    '}',
  ];
  if (options.blockedPort !== undefined) {
    lines.push('socks block {', `  from: 0/0 to: 127.0.0.1/32 port = ${options.blockedPort}`, '  log: error connect', '}');
  }
  lines.push('socks pass {', '  from: 127.0.0.0/8 to: 0/0', '  command: connect', '  log: error connect disconnect', '}');
  return `${lines.join('\n')}\n`;
}

/** Starts danted on `port`; null if the port was taken meanwhile. */
async function launch(danted: string, unshare: string, directory: string, port: number, options: DanteOptions): Promise<Dante | null> {
  const config = path.join(directory, 'danted.conf');
  fs.writeFileSync(config, configuration(port, options));
  const script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow && mount --bind "$3" /etc/hosts && exec "$4" -f "$5" -p "$6" -N 1';
  const child: ChildProcess = spawn(
    unshare,
    ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...['passwd', 'shadow', 'hosts'].map((name) => path.join(directory, name)), danted, config, path.join(directory, 'danted.pid')],
    // Its own process group: danted forks children, and stop() ends the whole group.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let log = '';
  child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = once(child, 'exit');
  const ready = new Promise<boolean>((resolve) => {
    const check = (): void => {
      if (/Dante\/server\S* v[\d.]+ running/.test(log)) resolve(true);
    };
    child.stderr!.on('data', check);
    void exited.then(() => resolve(false));
  });
  if (!(await ready)) {
    await groupGone(child.pid!);
    if (/bind|address already in use/i.test(log)) {
      fs.rmSync(config);
      return null;
    }
    fs.rmSync(directory, { recursive: true, force: true });
    throw new Error(`danted exited before it was ready:\n${log}`);
  }
  // Should the test run end without stop() (an uncaught error, Ctrl-C in mocha), danted goes too.
  const onExit = (): void => void signalGroup(child.pid!, 'SIGTERM');
  process.on('exit', onExit);
  return {
    port,
    get log() {
      return log;
    },
    async stop() {
      process.off('exit', onExit);
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup(child.pid!, 'SIGTERM');
        await exited;
      }
      await groupGone(child.pid!);
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Signals every process of the group led by `pid` (the one spawned here); false once none is left. */
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until no process of danted's group is running any more (its children outlive it by a
 * moment; exited ones may wait a while to be reaped by init, and hold nothing), and fails if some
 * had to be killed.
 */
async function groupGone(pid: number): Promise<void> {
  for (let turn = 0; turn < 250 && runningInGroup(pid) > 0; turn++) await new Promise((resolve) => setTimeout(resolve, 20));
  if (runningInGroup(pid) > 0 && signalGroup(pid, 'SIGKILL')) {
    throw new Error(`danted's children (process group ${pid}) did not exit after SIGTERM: killed`);
  }
}

/** Processes of group `pgid` that have not exited (Linux /proc: state is the 3rd field, the group the 5th). */
function runningInGroup(pgid: number): number {
  let running = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // The command name (2nd field) is in parentheses and may hold spaces: split after it.
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === pgid && state !== 'Z' && state !== 'X') running++;
  }
  return running;
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
