import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareCaseIds, formatTable, readReport, summarize, verdict } from '../../autobahn/report-reader.js';

const samplePath = path.resolve('spec/fixtures/autobahn-sample-report.json');
const sample = JSON.parse(readFileSync(samplePath, 'utf8')) as unknown;
const readerScript = fileURLToPath(new URL('../../autobahn/report-reader.js', import.meta.url));

function runReader(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [readerScript, ...args], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
  });
}

describe('autobahn report reader', () => {
  it('reads every case of the only agent, in case order', () => {
    const cases = readReport(sample);
    expect(cases.map((c) => c.id)).to.deep.equal(['1.1.1', '1.2.8', '2.10', '3.1', '5.1', '6.4.1', '7.1.6', '7.13.1', '9.1.1', '10.1.1', '12.1.1', '13.1.1']);
  });

  it('counts a failed close behaviour as FAILED', () => {
    const cases = readReport(sample);
    expect(cases.find((c) => c.id === '3.1')!.behavior).to.equal('FAILED');
    expect(cases.find((c) => c.id === '5.1')!.behavior).to.equal('NON-STRICT');
  });

  it('summarizes behaviours per family', () => {
    const summary = summarize(readReport(sample));
    expect(summary.get('7')).to.deep.equal({ OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 2, UNIMPLEMENTED: 0, FAILED: 0 });
    expect(summary.get('1')!.OK).to.equal(2);
    expect(summary.get('12')!.UNIMPLEMENTED).to.equal(1);
    const table = formatTable(summary);
    expect(table).to.match(/^family\s+OK\s+NON-STRICT\s+INFORMATIONAL\s+UNIMPLEMENTED\s+FAILED\s+total/);
    expect(table).to.match(/\nall\s+6\s+1\s+2\s+2\s+1\s+12$/);
  });

  it('fails on FAILED, and on UNIMPLEMENTED only when strict', () => {
    const cases = readReport(sample);
    expect(verdict(cases, false)).to.deep.include({ ok: false, failed: ['3.1'] });
    const withoutFailure = cases.filter((c) => c.id !== '3.1');
    expect(verdict(withoutFailure, false).ok).to.equal(true);
    expect(verdict(withoutFailure, true)).to.deep.equal({ ok: false, failed: [], unimplemented: ['12.1.1', '13.1.1'] });
  });

  it('needs --agent when a report holds several agents, and rejects unknown ones', () => {
    const two = { a: {}, b: {} };
    expect(() => readReport(two)).to.throw(/2 agents/);
    expect(() => readReport(two, 'c')).to.throw(/no agent/);
    expect(readReport(two, 'a')).to.deep.equal([]);
  });

  it('orders case ids numerically', () => {
    expect(['10.1.1', '9.2', '9.10', '1.1.1'].sort(compareCaseIds)).to.deep.equal(['1.1.1', '9.2', '9.10', '10.1.1']);
  });

  it('as a command: prints the table and exits 1 on a FAILED case, 0 on a clean report, 2 on a bad one', async () => {
    const failing = await runReader([samplePath]);
    expect(failing.code).to.equal(1);
    expect(failing.stdout).to.contain('FAILED: 3.1');
    const dir = mkdtempSync(path.join(tmpdir(), 'autobahn-report-'));
    const cleanPath = path.join(dir, 'clean.json');
    const cases = (sample as Record<string, Record<string, unknown>>)['sample-agent']!;
    const clean = Object.fromEntries(Object.entries(cases).filter(([id]) => id !== '3.1'));
    writeFileSync(cleanPath, JSON.stringify({ agent: clean }));
    const passing = await runReader([cleanPath]);
    expect(passing.code).to.equal(0);
    expect(passing.stdout).to.contain('result: clean');
    expect((await runReader([cleanPath, '--strict'])).code).to.equal(1);
    writeFileSync(cleanPath, 'not json');
    expect((await runReader([cleanPath])).code).to.equal(2);
  });
});
