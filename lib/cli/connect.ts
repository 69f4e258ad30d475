// `connect <url>`: stdin lines out as messages, messages in to stdout, and a clean close once the
// replies have stopped.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocketStream, type WebSocketMessage, type WebSocketStreamOptions } from '../index.js';
import { flag, integerOption, MAX_MILLISECONDS, parse, splitList, stringListOption, stringOption, UsageError, type OptionSpec } from './args.js';
import { DEFAULT_QUIET_WAIT } from './defaults.js';
import { CONNECT_USAGE, ExitStatus } from './help.js';
import { openFailureHints } from './hints.js';
import { BINARY_FORMATS, formatBinary, parseBinary, type BinaryFormat } from './lines.js';
import { binaryLine, closeDescription, describeError, eventRecord, messageRecord, messageSize, styleFor, writeText, type Io, type Style } from './output.js';
import { RECEIVED_MARK, Terminal } from './terminal.js';

const OPTIONS: OptionSpec = {
  header: { type: 'string', short: 'H', multiple: true },
  origin: { type: 'string', short: 'o' },
  protocol: { type: 'string', short: 'p', multiple: true },
  binary: { type: 'boolean', short: 'b' },
  'binary-format': { type: 'string' },
  'save-binary': { type: 'string' },
  json: { type: 'boolean', short: 'j' },
  'no-deflate': { type: 'boolean' },
  ca: { type: 'string' },
  insecure: { type: 'boolean', short: 'k' },
  proxy: { type: 'string' },
  ping: { type: 'string' },
  'close-code': { type: 'string' },
  'close-reason': { type: 'string' },
  'keep-open': { type: 'boolean' },
  wait: { type: 'string', short: 'w' },
  verbose: { type: 'boolean', short: 'v' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** RFC 6455 §5.5: a close frame holds a 2-byte code and at most 123 bytes of reason. */
const MAX_CLOSE_REASON_BYTES = 123;


interface ConnectSettings {
  url: string;
  options: WebSocketStreamOptions;
  binary: boolean;
  binaryFormat: BinaryFormat;
  saveBinary: string | undefined;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
  keepOpen: boolean;
  /** At EOF, close only once no message has arrived for this many milliseconds. */
  wait: number;
  closeInfo: { closeCode: number; reason: string };
}

/** Message and byte counts, for --verbose's summary. */
interface Traffic {
  sent: number;
  sentBytes: number;
  received: number;
  receivedBytes: number;
  lastMessageAt: number;
}

export async function runConnect(args: string[], io: Io): Promise<number> {
  const parsed = parse(args, OPTIONS, 1);
  if (flag(parsed, 'help')) {
    await writeText(io.stdout, CONNECT_USAGE);
    return ExitStatus.OK;
  }
  const settings = await connectSettings(parsed);

  let stream: WebSocketStream;
  try {
    stream = new WebSocketStream(settings.url, settings.options);
  } catch (error) {
    // The constructor throws only for what the user typed: the URL, a header, a subprotocol, a proxy.
    throw new UsageError((error as Error).message);
  }

  const terminal = new Terminal(io);
  const report = new Reporter(terminal, settings, styleFor(io.stdout, io.env), styleFor(io.stderr, io.env));
  let interrupts = 0;
  terminal.onInterrupt(() => {
    interrupts++;
    // A second Ctrl-C means "now": do not wait for a peer that does not answer our close.
    if (interrupts > 1) process.exit(ExitStatus.INTERRUPTED);
    void report.verbose(`interrupted: sending close (${closeDescription(settings.closeInfo.closeCode, settings.closeInfo.reason)})`);
    stream.close(settings.closeInfo);
  });
  try {
    return await converse(stream, settings, terminal, report, () => interrupts > 0);
  } finally {
    terminal.end();
  }
}

async function converse(stream: WebSocketStream, settings: ConnectSettings, terminal: Terminal, report: Reporter, interrupted: () => boolean): Promise<number> {
  const via = typeof settings.options.proxy === 'string' ? ` through the proxy ${settings.options.proxy === 'env' ? 'in the environment' : redactedUrl(settings.options.proxy)}` : '';
  await report.verbose(`connecting to ${stream.url}${via}`);
  const startedAt = Date.now();
  let opened;
  try {
    opened = await stream.opened;
  } catch (error) {
    if (interrupted()) {
      await report.status('interrupted before the connection opened');
      return ExitStatus.INTERRUPTED;
    }
    const hints = await openFailureHints(error, new URL(stream.url), via !== '');
    await report.openFailed(error, hints);
    return ExitStatus.FAILED;
  }
  const { protocol, extensions } = opened;
  await report.opened(stream.url, protocol, extensions, Date.now() - startedAt);
  const heartbeat = settings.options.heartbeat;
  if (heartbeat !== undefined) {
    await report.verbose(`pinging every ${heartbeat.interval} ms; no pong within that time drops the connection (the library does not report pongs)`);
  }

  const traffic: Traffic = { sent: 0, sentBytes: 0, received: 0, receivedBytes: 0, lastMessageAt: Date.now() };
  const ended = new AbortController();
  const receiving = receive(opened.readable, settings, report, traffic);
  const sending = send(opened.writable.getWriter(), terminal, settings, report, traffic).then(async (finished) => {
    // Input that ended because the connection did (a terminal is let go then) is not an EOF.
    if (!finished || ended.signal.aborted) return;
    if (settings.keepOpen) {
      await report.verbose('stdin ended; staying open until the server closes (--keep-open) or Ctrl-C');
      return;
    }
    await report.verbose(`stdin ended; closing once no message has arrived for ${settings.wait} ms (--wait)`);
    await quietFor(settings.wait, traffic, ended.signal);
    if (ended.signal.aborted) return;
    await report.verbose(`sending close (${closeDescription(settings.closeInfo.closeCode, settings.closeInfo.reason)})`);
    stream.close(settings.closeInfo);
  });

  let outcome: CloseOutcome;
  try {
    outcome = { clean: true, ...(await stream.closed) };
  } catch (error) {
    const { closeCode, reason } = error as { closeCode?: number | null; reason?: string };
    outcome = { clean: false, closeCode: closeCode ?? null, reason: reason ?? '', error };
  }
  ended.abort();
  // Nothing more can be sent: stop reading input (a terminal may never reach EOF).
  terminal.end();
  // Every message is on stdout before the close is reported.
  await Promise.all([receiving, settled(sending)]);
  await report.closed(outcome, traffic, Date.now() - startedAt);
  return outcome.clean ? ExitStatus.OK : ExitStatus.UNCLEAN_CLOSE;
}

type CloseOutcome = { clean: true; closeCode: number; reason: string } | { clean: false; closeCode: number | null; reason: string; error: unknown };

/** Everything `connect` tells the user: messages on stdout, status on stderr, or --json records. */
class Reporter {
  constructor(
    private readonly terminal: Terminal,
    private readonly settings: ConnectSettings,
    private readonly outStyle: Style,
    private readonly errStyle: Style,
  ) {}

  /** A status line on stderr, unless --quiet. */
  status(line: string): Promise<void> {
    return this.settings.quiet ? Promise.resolve() : this.terminal.err(`${line}\n`);
  }

  /** A --verbose detail on stderr, marked as such. */
  verbose(line: string): Promise<void> {
    return this.settings.verbose ? this.terminal.err(`${this.errStyle.dim(`* ${line}`)}\n`) : Promise.resolve();
  }

  /** A problem worth seeing even with --quiet. */
  problem(line: string): Promise<void> {
    return this.terminal.err(`${line}\n`);
  }

  warning(line: string): Promise<void> {
    return this.problem(`${this.errStyle.yellow('warning:')} ${line}`);
  }

  private record(line: string): Promise<void> {
    return this.terminal.out(`${line}\n`);
  }

  async openFailed(error: unknown, hints: string[]): Promise<void> {
    const [first, ...causes] = describeError(error);
    if (this.settings.json) await this.record(eventRecord('error', { message: first, causes: causes.map((cause) => cause.replace(/^cause: /, '')), hints }));
    await this.problem(`${this.errStyle.red('error:')} ${first}`);
    for (const cause of causes) await this.problem(`  ${cause}`);
    for (const hint of hints) await this.problem(`${this.errStyle.yellow('hint:')} ${hint}`);
  }

  async opened(url: string, protocol: string, extensions: string, took: number): Promise<void> {
    if (this.settings.json) await this.record(eventRecord('open', { url, protocol, extensions }));
    const details = [protocol !== '' ? `protocol ${protocol}` : '', extensions !== '' ? `extensions ${extensions}` : ''].filter(Boolean);
    await this.status(`${this.errStyle.green('connected')} to ${url}${details.length > 0 ? ` (${details.join('; ')})` : ''}`);
    await this.verbose(`the opening handshake took ${took} ms`);
  }

  async message(message: WebSocketMessage, savedTo: string | undefined, saveError: string | undefined): Promise<void> {
    const size = messageSize(message);
    await this.verbose(`< ${typeof message === 'string' ? 'text' : 'binary'} message, ${size} byte${size === 1 ? '' : 's'}`);
    if (this.settings.json) {
      await this.record(messageRecord(message, this.settings.binaryFormat, {}, savedTo));
      if (saveError !== undefined) await this.warning(`binary message not saved: ${saveError}`);
      return;
    }
    const mark = this.terminal.interactive ? this.outStyle.dim(RECEIVED_MARK) : '';
    let text: string;
    if (typeof message === 'string') {
      // Coloured on a terminal, to tell replies from the lines being typed; pipes get the text as is.
      text = this.outStyle.cyan(message);
    } else if (savedTo !== undefined) {
      text = binaryLine(size, `saved to ${savedTo}`, this.outStyle);
    } else if (saveError !== undefined) {
      // A full disk loses this message, not the connection.
      text = binaryLine(size, `not saved: ${saveError}`, this.outStyle);
    } else {
      text = binaryLine(size, formatBinary(message, this.settings.binaryFormat), this.outStyle);
    }
    await this.terminal.out(`${mark}${text}\n`);
  }

  async sent(message: string | Uint8Array): Promise<void> {
    const size = messageSize(message);
    await this.verbose(`> ${typeof message === 'string' ? 'text' : 'binary'} message, ${size} byte${size === 1 ? '' : 's'}`);
  }

  async closed(outcome: CloseOutcome, traffic: Traffic, lasted: number): Promise<void> {
    if (this.settings.json) {
      const fields: Record<string, unknown> = { clean: outcome.clean, code: outcome.closeCode, reason: outcome.reason };
      if (!outcome.clean) fields.error = describeError(outcome.error)[0];
      await this.record(eventRecord('close', fields));
    }
    const description = closeDescription(outcome.closeCode, outcome.reason);
    if (outcome.clean) {
      await this.status(`${this.errStyle.green('closed')}: ${description}`);
    } else {
      const [first, ...causes] = describeError(outcome.error);
      await this.problem(`${this.errStyle.red('closed uncleanly')}: ${description}`);
      await this.problem(`  ${first}`);
      for (const cause of causes) await this.problem(`  ${cause}`);
    }
    await this.verbose(
      `open for ${lasted} ms: sent ${traffic.sent} message(s), ${traffic.sentBytes} bytes; received ${traffic.received} message(s), ${traffic.receivedBytes} bytes`,
    );
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
  const origin = stringOption(parsed, 'origin');
  if (origin !== undefined) headers.push(['Origin', origin]);
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

  const format = stringOption(parsed, 'binary-format') ?? 'hex';
  if (!(BINARY_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--binary-format must be ${BINARY_FORMATS.join(' or ')}, not ${JSON.stringify(format)}`);
  const saveBinary = stringOption(parsed, 'save-binary');
  if (saveBinary !== undefined) {
    try {
      await mkdir(saveBinary, { recursive: true });
    } catch (error) {
      throw new UsageError(`--save-binary: cannot create ${saveBinary}: ${(error as Error).message}`);
    }
  }
  const verbose = flag(parsed, 'verbose');
  const quiet = flag(parsed, 'quiet');
  if (verbose && quiet) throw new UsageError('--verbose and --quiet contradict each other');
  const wait = stringOption(parsed, 'wait');
  return {
    url,
    options,
    binary: flag(parsed, 'binary'),
    binaryFormat: format as BinaryFormat,
    saveBinary,
    json: flag(parsed, 'json'),
    verbose,
    quiet,
    keepOpen: flag(parsed, 'keep-open'),
    wait: wait === undefined ? DEFAULT_QUIET_WAIT : integerOption(wait, '--wait', 0, MAX_MILLISECONDS),
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

/** A proxy URL fit to print: its password replaced. */
function redactedUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    return url.href;
  } catch {
    return text;
  }
}

/**
 * Sends the input's lines, one message each, waiting for each write: a fast stdin cannot outrun
 * the network. True at EOF; false when the connection closed first (the close is reported elsewhere).
 */
async function send(writer: WritableStreamDefaultWriter<unknown>, terminal: Terminal, settings: ConnectSettings, report: Reporter, traffic: Traffic): Promise<boolean> {
  let lineNumber = 0;
  try {
    for await (const line of terminal.lines()) {
      lineNumber++;
      let message: string | Uint8Array = line;
      if (settings.binary) {
        const bytes = parseBinary(line, settings.binaryFormat);
        if (bytes === null) {
          await report.warning(`line ${lineNumber} is not ${settings.binaryFormat}, not sent: ${JSON.stringify(line)}`);
          continue;
        }
        message = bytes;
      }
      await writer.write(message);
      traffic.sent++;
      traffic.sentBytes += messageSize(message);
      await report.sent(message);
    }
  } catch {
    // A write after the connection started closing, or stdin destroyed once it had closed.
    return false;
  }
  return true;
}

/** Prints every message received until the readable ends (clean close) or errors (unclean). */
async function receive(readable: ReadableStream<WebSocketMessage>, settings: ConnectSettings, report: Reporter, traffic: Traffic): Promise<void> {
  let saved = 0;
  try {
    for await (const message of readable as unknown as AsyncIterable<WebSocketMessage>) {
      traffic.lastMessageAt = Date.now();
      traffic.received++;
      traffic.receivedBytes += messageSize(message);
      let savedTo: string | undefined;
      let saveError: string | undefined;
      if (typeof message !== 'string' && settings.saveBinary !== undefined) {
        try {
          savedTo = await saveMessage(settings.saveBinary, message, () => ++saved);
        } catch (error) {
          saveError = (error as Error).message;
        }
      }
      await report.message(message, savedTo, saveError);
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
 * `--wait`: replies to the last lines may still be on their way at EOF, and data messages that
 * arrive after our close frame was sent are dropped, so closing at once would lose them. Waits
 * until no message has arrived for `ms`, or the connection has ended.
 */
async function quietFor(ms: number, traffic: Traffic, ended: AbortSignal): Promise<void> {
  traffic.lastMessageAt = Math.max(traffic.lastMessageAt, Date.now());
  for (;;) {
    const remaining = traffic.lastMessageAt + ms - Date.now();
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
