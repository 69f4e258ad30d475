// Every ```console transcript in README.md and docs/*.md runs here, and its output must be what
// the transcript shows. "$ " starts a command (run by sh, in a scratch directory holding cert.pem
// and key.pem, with `wss` on PATH); the lines up to the next command are its stdout and stderr,
// where "…" stands for any text (a time, a port the OS picked). A command ending in "&" runs in
// the background until the transcript ends; one that is `wss serve` is waited for until it
// listens. Each port number in a transcript is replaced by a free one, the same all through it.
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI, cleanUp, closedPort, plainEnv, program, type Cli } from './helpers/cli.js';
import { fixtures } from './helpers/raw-peer.js';

interface Step {
  command: string;
  expected: string[];
  line: number;
}

interface Transcript {
  file: string;
  line: number;
  steps: Step[];
}

function transcriptsOf(file: string, text: string): Transcript[] {
  const lines = text.split('\n');
  const transcripts: Transcript[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```console') continue;
    const transcript: Transcript = { file, line: i + 1, steps: [] };
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) {
      const line = lines[i]!;
      if (line.startsWith('$ ')) transcript.steps.push({ command: line.slice(2), expected: [], line: i + 1 });
      else transcript.steps.at(-1)?.expected.push(line);
    }
    transcripts.push(transcript);
  }
  return transcripts;
}

/** An expected line as a pattern: literal text, with "…" for any run of characters. */
function linePattern(expected: string): RegExp {
  return new RegExp(`^${expected.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*?')}$`);
}

const documents = ['README.md', ...readdirSync('docs').filter((name) => name.endsWith('.md')).map((name) => path.join('docs', name))];
const transcripts = documents.flatMap((file) => transcriptsOf(file, readFileSync(file, 'utf8')));

describe('command-line transcripts in the documentation', function () {
  this.timeout(60_000);
  let scratch: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'wss-docs-'));
    const bin = path.join(scratch, 'bin');
    await mkdir(bin);
    // What `npm install -g` or `npx` would put on PATH, pointing at this build.
    await writeFile(path.join(bin, 'wss'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
    await chmod(path.join(bin, 'wss'), 0o755);
    await copyFile(path.join(fixtures, 'cert.pem'), path.join(scratch, 'cert.pem'));
    await copyFile(path.join(fixtures, 'key.pem'), path.join(scratch, 'key.pem'));
    env = plainEnv({ PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` });
  });

  after(() => rm(scratch, { recursive: true, force: true }));
  afterEach(cleanUp);

  it('finds the transcripts', () => {
    expect(transcripts.filter((t) => t.file === 'docs/cli.md').length).to.be.at.least(8);
  });

  it('docs/cli.md quotes each command\'s --help as the tool prints it', async () => {
    const text = readFileSync('docs/cli.md', 'utf8');
    for (const command of ['connect', 'serve']) {
      const run = program(process.execPath, [CLI, command, '--help'], { env: plainEnv() });
      await run.exited;
      const indented = run.stdout
        .replace(/\n$/, '')
        .split('\n')
        .map((line) => (line === '' ? '' : `    ${line}`))
        .join('\n');
      expect(text, `\`wss ${command} --help\`, indented by four spaces`).to.include(indented);
    }
  });

  for (const transcript of transcripts) {
    it(`${transcript.file}:${transcript.line} gives the output shown`, async () => {
      // Every port in the transcript ("127.0.0.1:8080", "localhost:8080", "--port 8080") gets a
      // free port of its own.
      const portPattern = /(?<=(?:127\.0\.0\.1|localhost):|--port )\d{2,5}\b/g;
      const ports = new Map<string, string>();
      const all = transcript.steps.map((step) => [step.command, ...step.expected].join('\n')).join('\n');
      for (const [port] of all.matchAll(portPattern)) if (!ports.has(port)) ports.set(port, String(await closedPort()));
      const localize = (text: string): string => text.replace(portPattern, (port) => ports.get(port) ?? port);

      const background: Cli[] = [];
      try {
        for (const step of transcript.steps) {
          const command = localize(step.command);
          const where = `${transcript.file}:${step.line} \`${step.command}\``;
          if (command.endsWith('&')) {
            const run = program('/bin/sh', ['-c', command.slice(0, -1)], { cwd: scratch, env, detached: true });
            background.push(run);
            if (/^wss serve\b/.test(command)) await run.waitFor('stderr', /listening on /);
            continue;
          }
          // One pipe for both streams keeps their order: the order a terminal shows.
          const run = program('/bin/sh', ['-c', `exec 2>&1; ${command}`], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
          await run.exited;
          const actual = run.stdout.replace(/\n$/, '').split('\n');
          const expected = step.expected.map(localize);
          if (run.stdout === '') actual.length = 0;
          const shown = `${where} printed:\n${run.stdout}\nexpected:\n${expected.join('\n')}\n`;
          expect(actual.length, shown).to.equal(expected.length);
          expected.forEach((line, index) => expect(actual[index], shown).to.match(linePattern(line)));
        }
      } finally {
        for (const run of background) {
          // The whole process group: sh and the program it started.
          try {
            process.kill(-run.child.pid!, 'SIGTERM');
          } catch {
            // Already gone.
          }
          await run.exited;
        }
      }
    });
  }
});
