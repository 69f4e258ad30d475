// Where `connect` reads lines and writes output: plain pipes, or a terminal with a prompt.
import * as readline from 'node:readline';
import { readLines } from './lines.js';
import { writeText, type Io } from './output.js';

/** The prompt shown on a terminal; received messages are marked with RECEIVED_MARK. */
export const PROMPT = '> ';
export const RECEIVED_MARK = '< ';

/**
 * Input lines, output, and Ctrl-C. On a terminal (stdin and stdout both TTYs) lines are read with
 * a prompt and line editing, and output is written above the prompt, which is then drawn again
 * with whatever was being typed. Anywhere else stdin is read as plain lines, with backpressure.
 */
export class Terminal {
  readonly interactive: boolean;
  readonly #io: Io;
  #prompt: readline.Interface | null = null;
  #ended = false;
  #interrupt: () => void = () => {};
  readonly #onSignal = (): void => this.#interrupt();

  constructor(io: Io) {
    this.#io = io;
    this.interactive = io.stdin.isTTY === true && io.stdout.isTTY === true;
    // Until the prompt takes the terminal into raw mode, Ctrl-C arrives as SIGINT.
    process.on('SIGINT', this.#onSignal);
  }

  onInterrupt(handler: () => void): void {
    this.#interrupt = handler;
  }

  /** A line on stdout (a received message). */
  out(text: string): Promise<void> {
    return this.#write(this.#io.stdout, text);
  }

  /** A line on stderr (status, warnings, errors). */
  err(text: string): Promise<void> {
    return this.#write(this.#io.stderr, text);
  }

  /** The lines to send: typed at the prompt, or read from stdin. Ends at EOF (Ctrl-D). */
  lines(): AsyncIterable<string> {
    if (!this.interactive) return readLines(this.#io.stdin as AsyncIterable<Buffer | string>);
    const prompt = readline.createInterface({ input: this.#io.stdin, output: this.#io.stdout, prompt: PROMPT, terminal: true });
    this.#prompt = prompt;
    // In raw mode Ctrl-C is a keystroke that readline reports, not a signal.
    prompt.on('SIGINT', this.#onSignal);
    prompt.prompt();
    return this.#promptedLines(prompt);
  }

  async *#promptedLines(prompt: readline.Interface): AsyncGenerator<string> {
    for await (const line of prompt) {
      yield line;
      if (!this.#ended) prompt.prompt();
    }
  }

  /** Stops reading input (a terminal may never reach EOF) and gives the terminal back. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    process.off('SIGINT', this.#onSignal);
    if (this.#prompt !== null) {
      this.#clearPromptLine();
      this.#prompt.close();
      this.#prompt = null;
    }
    this.#io.stdin.destroy();
  }

  async #write(stream: Io['stdout'], text: string): Promise<void> {
    const prompt = this.#prompt;
    if (prompt === null) return writeText(stream, text);
    this.#clearPromptLine();
    await writeText(stream, text);
    if (!this.#ended) prompt.prompt(true);
  }

  #clearPromptLine(): void {
    readline.cursorTo(this.#io.stdout, 0);
    readline.clearLine(this.#io.stdout, 0);
  }
}
