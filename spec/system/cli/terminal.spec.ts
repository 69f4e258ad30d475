// `wss connect` on a real pseudo-terminal: util-linux's `script` runs it with a pty for stdin,
// stdout and stderr, as a person's terminal would, and relays our keystrokes and its screen.
import { expect } from 'chai';
import { CLI, cleanUp, plainEnv, program, serve, SGR, type Cli } from '../../helpers/cli.js';
import { requireProgram } from '../support/services.js';

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';

/** A command line for `sh -c`, every word single-quoted. */
function shellLine(words: readonly string[]): string {
  return words.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(' ');
}

/**
 * Runs `command` (a shell line) on a fresh pseudo-terminal. What we write is typed on it; what we
 * read is its screen (stdout and stderr together, with the line discipline's "\r\n"). `-e` makes
 * script exit with the command's status.
 */
function onTerminal(command: string, env: Record<string, string> = {}): Cli {
  const script = requireProgram('script', 'bsdutils', 'the terminal spec of wss connect');
  // TERM=dumb would turn colours off: a terminal that can show them.
  return program(script, ['-q', '-e', '-c', command, '/dev/null'], { env: plainEnv({ TERM: 'xterm-256color', ...env }) });
}

function connectOnTerminal(args: string[], env: Record<string, string> = {}): Cli {
  return onTerminal(shellLine([process.execPath, CLI, 'connect', ...args]), env);
}

/** The screen text after a marker, without escape sequences (what a person reads). */
function visible(text: string): string {
  return text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
}

describe('wss connect on a terminal (a real pty through script(1))', function () {
  this.timeout(30_000);
  afterEach(cleanUp);

  it('shows a "> " prompt, marks received messages "< " above it, in colour; Ctrl-D ends the input and closes cleanly', async () => {
    const { cli: server, port } = await serve();
    const run = connectOnTerminal([`ws://127.0.0.1:${port}/`]);
    // Status in green, then the prompt.
    await run.waitFor('stdout', /\u001b\[32mconnected\u001b\[39m to ws:\/\/127\.0\.0\.1:\d+\/\r\n[^]*> /);
    run.write('hello there\r');
    // The echo: a dim "< " and the text in cyan, on its own line, with the prompt drawn again below.
    await run.waitFor('stdout', /\u001b\[2m< \u001b\[22m\u001b\[36mhello there\u001b\[39m\r\n[^]*> /);
    run.write(CTRL_D);
    expect(await run.exited).to.deep.equal({ code: 0, signal: null });
    expect(visible(run.stdout)).to.match(/closed: code 1000, reason ""\r\n$/);
    await server.waitFor('stderr', /#1 closed: code 1000/);
  });

  it('keeps what is being typed when a message arrives, and Ctrl-C closes with --close-code', async () => {
    const { cli: server, port } = await serve(['--mode', 'broadcast']);
    const run = connectOnTerminal(['--close-code', '4001', '--close-reason', 'typed ^C', `ws://127.0.0.1:${port}/`]);
    await run.waitFor('stdout', /> /);
    run.write('half a li');
    await run.waitFor('stdout', /half a li/);
    // Another client's message arrives while a line is half typed.
    const other = connectPiped(port, 'from elsewhere\n');
    await run.waitFor('stdout', /from elsewhere/);
    // The prompt and the half-typed line are drawn again after the message.
    await run.waitFor('stdout', /from elsewhere[^]*> (?:\u001b\[[0-9;]*[A-Za-z])*half a li/);
    expect((await other.exited).code).to.equal(0);
    run.write(CTRL_C);
    expect(await run.exited).to.deep.equal({ code: 0, signal: null });
    await server.waitFor('stderr', /closed: code 4001, reason "typed \^C"/);
    expect(visible(run.stdout)).to.match(/closed: code 4001, reason "typed \^C"\r\n$/);
  });

  it('the server closing first ends the prompt and the command, with no input pending', async () => {
    const { cli: server, port } = await serve();
    const run = connectOnTerminal(['--verbose', `ws://127.0.0.1:${port}/`]);
    await run.waitFor('stdout', /> /);
    server.child.kill('SIGTERM');
    expect(await run.exited).to.deep.equal({ code: 0, signal: null });
    expect(visible(run.stdout)).to.match(/closed: code 1001, reason "server shutting down"\r\n/);
    expect(visible(run.stdout)).to.not.include('stdin ended');
  });

  it('NO_COLOR: a prompt and marks, but no colour', async () => {
    const { port } = await serve();
    const run = connectOnTerminal([`ws://127.0.0.1:${port}/`], { NO_COLOR: '1' });
    await run.waitFor('stdout', /> /);
    run.write('plain\r');
    await run.waitFor('stdout', /< plain\r\n/);
    run.write(CTRL_D);
    expect(await run.exited).to.deep.equal({ code: 0, signal: null });
    expect(run.stdout).to.not.match(SGR);
  });

  it('stdin from a pipe, stdout on a terminal: colours but no prompt', async () => {
    const { port } = await serve();
    const run = onTerminal(`echo piped | ${shellLine([process.execPath, CLI, 'connect', `ws://127.0.0.1:${port}/`])}`);
    expect(await run.exited).to.deep.equal({ code: 0, signal: null });
    expect(run.stdout).to.include('\u001b[36mpiped\u001b[39m\r\n');
    expect(visible(run.stdout)).to.not.match(/^[<>] /m);
  });

  /** A second client with pipes, sending `input`. */
  function connectPiped(port: number, input: string): Cli {
    const run = program(process.execPath, [CLI, 'connect', '--wait', '0', `ws://127.0.0.1:${port}/`], { env: plainEnv() });
    run.end(input);
    return run;
  }
});
