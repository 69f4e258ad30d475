// Builds the ESM package (dist/esm), the CommonJS entry (dist/cjs) and the test tree (build/).
// --no-tests leaves out the test tree; --esm builds dist/esm alone (what `npm start` runs), which
// takes a few seconds on a fresh clone where the whole build takes half a minute.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = (project) => {
  try {
    execFileSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' });
  } catch {
    console.error(`build: tsc -p ${project} failed`);
    process.exit(1);
  }
};

// The package's bin: runnable as ./dist/esm/cli.js too, not only through npm's shim.
const chmodBin = () => chmodSync('dist/esm/cli.js', 0o755);
if (process.argv.includes('--esm')) {
  rmSync('dist/esm', { recursive: true, force: true });
  run('tsconfig.json');
  chmodBin();
  process.exit(0);
}

rmSync('dist', { recursive: true, force: true });
rmSync('build', { recursive: true, force: true });
run('tsconfig.json');
run('tsconfig.cjs.json');
// dist/cjs holds .js files compiled to CommonJS; this marker makes Node load them as such.
mkdirSync('dist/cjs', { recursive: true });
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
chmodBin();
if (!process.argv.includes('--no-tests')) run('tsconfig.test.json');
