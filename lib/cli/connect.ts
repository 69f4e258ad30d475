// `connect <url>`: stdin lines out as messages, messages in to stdout, a clean close at the end.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocketStream, type WebSocketMessage, type WebSocketStreamOptions } from '../index.js';
import { flag, integerOption, MAX_MILLISECONDS, parse, splitList, stringListOption, stringOption, UsageError, type OptionSpec } from './args.js';
import { CONNECT_USAGE, ExitStatus } from './help.js';
import { parseHex, readLines } from './lines.js';
import { binaryLine, closeDescription, describeError, styleFor, toHex, writeText, type Io, type Style } from './output.js';

const OPTIONS: OptionSpec = {
  header: { type: 'string', short: 'H', multiple: true },
  protocol: { type: 'string', short: 'p', multiple: true },
  binary: { type: 'boolean', short: 'b' },
  'save-binary': { type: 'string' },
  'no-deflate': { type: 'boolean' },
  ca: { type: 'string' },
  insecure: { type: 'boolean', short: 'k' },
  proxy: { type: 'string' },
  ping: { type: 'string' },
  'close-code': { type: 'string' },
  'close-reason': { type: 'string' },
  'keep-open': { type: 'boolean' },
  wait: { type: 'string', short: 'w' },
  help: { type: 'boolean', short: 'h' },
};

/** RFC 6455 §5.5: a close frame holds a 2-byte code and at most 123 bytes of reason. */
const MAX_CLOSE_REASON_BYTES = 123;

interface ConnectSettings {
  url: string;
  options: WebSocketStreamOptions;
  binary: boolean;
  saveBinary: string | undefined;
  keepOpen: boolean;
  /** At EOF, close only once no message has arrived for this many milliseconds. */
  wait: number;
  closeInfo: { closeCode: number; reason: string };
}

export async function runConnect(args: string[], io: Io): Promise<number> {
  const parsed = parse(args, OPTIONS, 1);
  if (flag(parsed, 'help')) {
    await writeText(io.stdout, CONNECT_USAGE);
    return ExitStatus.OK;
  }
  const settings = await connectSettings(parsed);
  const errStyle = styleFor(io.stderr, io.env);
  const outStyle = styleFor(io.stdout, io.env);
  const status = (line: string): Promise<void> => writeText(io.stderr, `${line}\n`);

  let stream: WebSocketStream;
  try {
    stream = new WebSocketStream(settings.url, settings.options);
  } catch (error) {
    // The constructor throws only for what the user typed: the URL, a header, a subprotocol, a proxy.
    throw new UsageError((error as Error).message);
  }

  let interrupts = 0;
  const onInterrupt = (): void => {
    interrupts++;
    // A second Ctrl-C means "now": do not wait for a peer that does not answer our close.
    if (interrupts > 1) process.exit(ExitStatus.INTERRUPTED);
    stream.close(settings.closeInfo);
  };
  process.on('SIGINT', onInterrupt);
  try {
    let opened;
    try {
      opened = await stream.opened;
    } catch (error) {
      if (interrupts > 0) {
        await status('interrupted before the connection opened');
        return ExitStatus.INTERRUPTED;
      }
      const [first, ...causes] = describeError(error);
      await status(`${errStyle.red('error:')} ${first}`);
      for (const cause of causes) await status(`  ${cause}`);
      return ExitStatus.FAILED;
    }
    const details = [opened.protocol !== '' ? `protocol ${opened.protocol}` : '', opened.extensions !== '' ? `extensions ${opened.extensions}` : ''].filter(Boolean);
    await status(`${errStyle.green('connected')} to ${stream.url}${details.length > 0 ? ` (${details.join('; ')})` : ''}`);

    const writer = opened.writable.getWriter();
    const activity = { lastMessageAt: Date.now() };
    const ended = new AbortController();
    const receiving = printMessages(opened.readable, io, settings.saveBinary, outStyle, activity);
    const sending = sendLines(writer, io, settings, errStyle).then(async (finished) => {
      if (!finished || settings.keepOpen) return;
      await quietFor(settings.wait, activity, ended.signal);
      stream.close(settings.closeInfo);
    });

    let outcome: { clean: true; closeCode: number; reason: string } | { clean: false; error: unknown };
    try {
      outcome = { clean: true, ...(await stream.closed) };
    } catch (error) {
      outcome = { clean: false, error };
    }
    ended.abort();
    // Nothing more can be sent: stop waiting for stdin (a terminal may never reach EOF).
    io.stdin.destroy();
    // Every message is on stdout before the close is reported.
    await Promise.all([receiving, settled(sending)]);
    if (outcome.clean) {
      await status(`${errStyle.green('closed')}: ${closeDescription(outcome.closeCode, outcome.reason)}`);
      return ExitStatus.OK;
    }
    const [first, ...causes] = describeError(outcome.error);
    const { closeCode, reason } = outcome.error as { closeCode?: number | null; reason?: string };
    await status(`${errStyle.red('closed uncleanly')}: ${closeDescription(closeCode ?? null, reason ?? '')}`);
    await status(`  ${first}`);
    for (const cause of causes) await status(`  ${cause}`);
    return ExitStatus.UNCLEAN_CLOSE;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/** Checks the command line before anything connects; every mistake is a UsageError. */
async function connectSettings(parsed: ReturnType<typeof parse>): Promise<ConnectSettings> {
  const target = parsed.positionals[0];
  if (target === undefined) throw new UsageError('connect needs a URL, e.g. ws://127.0.0.1:8080/');
  // wscat's convenience: "localhost:8080/chat" means ws://localhost:8080/chat.
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? target : `ws://${target}`;

  const options: WebSocketStreamOptions = {};
  const headers: Array<[string, string]> = [];
  for (const header of stringListOption(parsed, 'header')) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header must look like "Name: value", not ${JSON.stringify(header)}`);
    headers.push([header.slice(0, colon).trim(), header.slice(colon + 1).trim()]);
  }
  if (headers.length > 0) options.headers = headers;
  const protocols = splitList(stringListOption(parsed, 'protocol'));
  if (protocols.length > 0) options.protocols = protocols;
  if (flag(parsed, 'no-deflate')) options.perMessageDeflate = false;

  const ca = stringOption(parsed, 'ca');
  const insecure = flag(parsed, 'insecure');
  if (ca !== undefined || insecure) {
    options.tls = {};
    if (ca !== undefined) options.tls.ca = await readOptionFile(ca, '--ca');
    if (insecure) options.tls.rejectUnauthorized = false;
  }
  // The library checks the URL (TypeError, reported as a usage error) and reads the environment.
  const proxy = stringOption(parsed, 'proxy');
  if (proxy !== undefined) options.proxy = proxy;
  const ping = stringOption(parsed, 'ping');
  if (ping !== undefined) options.heartbeat = { interval: integerOption(ping, '--ping', 1, MAX_MILLISECONDS) };

  const code = stringOption(parsed, 'close-code');
  const closeCode = code === undefined ? 1000 : integerOption(code, '--close-code', 1000, 4999);
  // WHATWG close(): applications may send only 1000 and 3000-4999; the rest belong to the protocol.
  if (closeCode !== 1000 && closeCode < 3000) throw new UsageError(`--close-code must be 1000 or 3000-4999, not ${closeCode}`);
  const reason = stringOption(parsed, 'close-reason') ?? '';
  if (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) {
    throw new UsageError(`--close-reason is ${Buffer.byteLength(reason)} UTF-8 bytes; a close frame holds at most ${MAX_CLOSE_REASON_BYTES}`);
  }

  const saveBinary = stringOption(parsed, 'save-binary');
  if (saveBinary !== undefined) {
    try {
      await mkdir(saveBinary, { recursive: true });
    } catch (error) {
      throw new UsageError(`--save-binary: cannot create ${saveBinary}: ${(error as Error).message}`);
    }
  }
  const wait = stringOption(parsed, 'wait');
  return {
    url,
    options,
    binary: flag(parsed, 'binary'),
    saveBinary,
    keepOpen: flag(parsed, 'keep-open'),
    wait: wait === undefined ? 0 : integerOption(wait, '--wait', 0, MAX_MILLISECONDS),
    closeInfo: { closeCode, reason },
  };
}

export async function readOptionFile(file: string, option: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new UsageError(`${option}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/**
 * Sends stdin's lines, one message each, waiting for each write: a fast stdin cannot outrun the
 * network. True at EOF; false when the connection closed first (the close is reported elsewhere).
 */
async function sendLines(writer: WritableStreamDefaultWriter<unknown>, io: Io, settings: ConnectSettings, style: Style): Promise<boolean> {
  let lineNumber = 0;
  try {
    for await (const line of readLines(io.stdin as AsyncIterable<Buffer | string>)) {
      lineNumber++;
      let message: string | Uint8Array = line;
      if (settings.binary) {
        const bytes = parseHex(line);
        if (bytes === null) {
          await writeText(io.stderr, `${style.yellow('warning:')} line ${lineNumber} is not hex, not sent: ${JSON.stringify(line)}\n`);
          continue;
        }
        message = bytes;
      }
      await writer.write(message);
    }
  } catch {
    // A write after the connection started closing, or stdin destroyed once it had closed.
    return false;
  }
  return true;
}

/** Prints every message received until the readable ends (clean close) or errors (unclean). */
async function printMessages(
  readable: ReadableStream<WebSocketMessage>,
  io: Io,
  saveDirectory: string | undefined,
  style: Style,
  activity: { lastMessageAt: number },
): Promise<void> {
  let saved = 0;
  try {
    for await (const message of readable as unknown as AsyncIterable<WebSocketMessage>) {
      activity.lastMessageAt = Date.now();
      if (typeof message === 'string') {
        // Cyan on a terminal tells replies from the lines being typed; pipes get the text as is.
        await writeText(io.stdout, `${style.cyan(message)}\n`);
      } else if (saveDirectory !== undefined) {
        let detail: string;
        try {
          detail = `saved to ${await saveMessage(saveDirectory, message, () => ++saved)}`;
        } catch (error) {
          // A full disk loses this message, not the connection.
          detail = `not saved: ${(error as Error).message}`;
        }
        await writeText(io.stdout, `${binaryLine(message.byteLength, detail, style)}\n`);
      } else {
        await writeText(io.stdout, `${binaryLine(message.byteLength, toHex(message), style)}\n`);
      }
    }
  } catch {
    // The readable errors with the unclean close's WebSocketError, which `closed` reports.
  }
}

/** message-1.bin, message-2.bin…; files from an earlier run are never overwritten. */
async function saveMessage(directory: string, bytes: Uint8Array, next: () => number): Promise<string> {
  for (;;) {
    const file = path.join(directory, `message-${next()}.bin`);
    try {
      await writeFile(file, bytes, { flag: 'wx' });
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/**
 * `--wait`: replies to the last lines may still be on their way at EOF, and a server stops sending
 * once it has our close frame, so closing at once would lose them. Waits until no message has
 * arrived for `ms`, or the connection has ended.
 */
async function quietFor(ms: number, activity: { lastMessageAt: number }, ended: AbortSignal): Promise<void> {
  activity.lastMessageAt = Math.max(activity.lastMessageAt, Date.now());
  for (;;) {
    const remaining = activity.lastMessageAt + ms - Date.now();
    if (remaining <= 0 || ended.aborted) return;
    try {
      await delay(remaining, undefined, { signal: ended });
    } catch {
      return;
    }
  }
}

function settled(promise: Promise<unknown>): Promise<void> {
  return promise.then(
    () => undefined,
    () => undefined,
  );
}
