// Reads an Autobahn|Testsuite report (reports/*/index.json) and prints behaviours per case family.
// `node build/autobahn/report-reader.js INDEX.json [--agent NAME] [--strict]`; exits 1 on any
// FAILED case (and, with --strict, on any UNIMPLEMENTED one), 2 when the report is unusable.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export const BEHAVIORS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'] as const;
export type Behavior = (typeof BEHAVIORS)[number];

export interface CaseResult {
  id: string;
  behavior: Behavior;
}

/** The cases of one agent; the only agent when `agent` is not given. */
export function readReport(report: unknown, agent?: string): CaseResult[] {
  if (typeof report !== 'object' || report === null) throw new Error('the report is not a JSON object');
  const agents = Object.keys(report);
  const name = agent ?? (agents.length === 1 ? agents[0] : undefined);
  if (name === undefined) throw new Error(`the report holds ${agents.length} agents (${agents.join(', ')}); name one with --agent`);
  const cases = (report as Record<string, unknown>)[name];
  if (typeof cases !== 'object' || cases === null) throw new Error(`no agent ${JSON.stringify(name)} in the report`);
  return Object.entries(cases as Record<string, { behavior?: string; behaviorClose?: string }>)
    .map(([id, result]) => ({ id, behavior: worstOf(result.behavior, result.behaviorClose) }))
    .sort((a, b) => compareCaseIds(a.id, b.id));
}

/** A case whose close behaviour failed has failed, whatever its data behaviour was. */
function worstOf(behavior: string | undefined, behaviorClose: string | undefined): Behavior {
  if (behavior === 'FAILED' || behaviorClose === 'FAILED') return 'FAILED';
  if (behavior !== undefined && (BEHAVIORS as readonly string[]).includes(behavior)) return behavior as Behavior;
  throw new Error(`unknown behaviour ${JSON.stringify(behavior)}`);
}

export function compareCaseIds(a: string, b: string): number {
  const left = a.split('.').map(Number);
  const right = b.split('.').map(Number);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const difference = (left[i] ?? -1) - (right[i] ?? -1);
    if (difference !== 0) return difference;
  }
  return 0;
}

export type Summary = Map<string, Record<Behavior, number>>;

/** Counts per family: the first number of the case id ("6" for 6.4.1). */
export function summarize(cases: CaseResult[]): Summary {
  const summary: Summary = new Map();
  for (const result of cases) {
    const family = result.id.split('.')[0]!;
    let counts = summary.get(family);
    if (counts === undefined) {
      counts = { OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, UNIMPLEMENTED: 0, FAILED: 0 };
      summary.set(family, counts);
    }
    counts[result.behavior]++;
  }
  return summary;
}

export function formatTable(summary: Summary): string {
  const header = ['family', ...BEHAVIORS, 'total'];
  const rows = [...summary].map(([family, counts]) => [`${family}.*`, ...BEHAVIORS.map((b) => String(counts[b])), String(total(counts))]);
  const all = BEHAVIORS.map((b) => [...summary.values()].reduce((sum, counts) => sum + counts[b], 0));
  rows.push(['all', ...all.map(String), String(all.reduce((a, b) => a + b, 0))]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function total(counts: Record<Behavior, number>): number {
  return BEHAVIORS.reduce((sum, b) => sum + counts[b], 0);
}

export interface Verdict {
  ok: boolean;
  failed: string[];
  unimplemented: string[];
}

/** FAILED always fails; UNIMPLEMENTED fails once every extension is implemented (`strict`). */
export function verdict(cases: CaseResult[], strict: boolean): Verdict {
  const failed = cases.filter((c) => c.behavior === 'FAILED').map((c) => c.id);
  const unimplemented = cases.filter((c) => c.behavior === 'UNIMPLEMENTED').map((c) => c.id);
  return { ok: failed.length === 0 && (!strict || unimplemented.length === 0), failed, unimplemented };
}

function main(argv: string[]): number {
  const file = argv.find((arg) => !arg.startsWith('--') && argv[argv.indexOf(arg) - 1] !== '--agent');
  const agentIndex = argv.indexOf('--agent');
  const agent = agentIndex === -1 ? undefined : argv[agentIndex + 1];
  const strict = argv.includes('--strict');
  if (file === undefined) {
    console.error('usage: report-reader INDEX.json [--agent NAME] [--strict]');
    return 2;
  }
  let cases: CaseResult[];
  try {
    cases = readReport(JSON.parse(readFileSync(file, 'utf8')), agent);
  } catch (error) {
    console.error(`report-reader: ${(error as Error).message}`);
    return 2;
  }
  console.log(formatTable(summarize(cases)));
  const result = verdict(cases, strict);
  if (result.failed.length > 0) console.log(`FAILED: ${result.failed.join(', ')}`);
  if (result.unimplemented.length > 0) console.log(`UNIMPLEMENTED: ${result.unimplemented.join(', ')}${strict ? '' : ' (allowed)'}`);
  console.log(result.ok ? 'result: clean' : 'result: NOT clean');
  return result.ok ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = main(process.argv.slice(2));
