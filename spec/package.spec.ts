import { expect } from 'chai';
import { createRequire } from 'node:module';
import * as source from '../lib/index.js';

// The package as users load it, through package.json "exports" (self-reference by name).
describe('package entry points', () => {
  const expected = Object.keys(source).sort();

  it('the ESM entry exports the whole public surface', async () => {
    const esm = (await import('websocketstream-node' as string)) as Record<string, unknown>;
    expect(Object.keys(esm).sort()).to.deep.equal(expected);
    expect(esm.WebSocketStream).to.be.a('function');
  });

  it('the CommonJS entry exports the same names', () => {
    const require = createRequire(import.meta.url);
    const cjs = require('websocketstream-node') as Record<string, unknown>;
    expect(Object.keys(cjs).filter((name) => name !== '__esModule').sort()).to.deep.equal(expected);
    const { WebSocketError } = cjs as { WebSocketError: new (m: string, i: object) => { closeCode: number | null } };
    expect(new WebSocketError('x', { closeCode: 4000 }).closeCode).to.equal(4000);
  });

  it('ships type declarations for both entries', async () => {
    const { existsSync } = await import('node:fs');
    expect(existsSync('dist/esm/index.d.ts')).to.equal(true);
    expect(existsSync('dist/cjs/index.d.ts')).to.equal(true);
  });
});
