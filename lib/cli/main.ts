// The command dispatcher: picks the command, turns usage mistakes into exit status 2.
import { UsageError } from './args.js';
import { runConnect } from './connect.js';
import { runServe } from './serve.js';
import { COMMAND, CONNECT_USAGE, ExitStatus, SERVE_USAGE, TOOL_USAGE } from './help.js';
import { describeError, styleFor, writeText, type Io } from './output.js';
import { packageVersion } from './version.js';

const COMMANDS: Record<string, { run(args: string[], io: Io): Promise<number>; usage: string }> = {
  connect: { run: runConnect, usage: CONNECT_USAGE },
  serve: { run: runServe, usage: SERVE_USAGE },
};

/** Runs the tool and resolves with the exit status; only a bug rejects. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  const style = styleFor(io.stderr, io.env);
  if (command === '-h' || command === '--help') {
    await writeText(io.stdout, TOOL_USAGE);
    return ExitStatus.OK;
  }
  if (command === '-V' || command === '--version') {
    const version = io.script === undefined ? null : packageVersion(io.script);
    await writeText(io.stdout, `${COMMAND} ${version ?? '(unknown version)'} (Node.js ${process.version})\n`);
    return version === null ? ExitStatus.FAILED : ExitStatus.OK;
  }
  if (command === 'help') {
    const topic = rest[0];
    await writeText(io.stdout, topic !== undefined && Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic]!.usage : TOOL_USAGE);
    return ExitStatus.OK;
  }
  if (command === undefined) {
    await writeText(io.stderr, TOOL_USAGE);
    return ExitStatus.USAGE;
  }
  const entry = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  try {
    if (entry === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      const help = entry === undefined ? `${COMMAND} --help` : `${COMMAND} ${command} --help`;
      await writeText(io.stderr, `${COMMAND}: ${error.message}\nRun '${help}' for usage.\n`);
      return ExitStatus.USAGE;
    }
    const [first, ...causes] = describeError(error);
    await writeText(io.stderr, `${COMMAND}: ${style.red('error:')} ${first}\n${causes.map((line) => `  ${line}\n`).join('')}`);
    return ExitStatus.FAILED;
  }
}
