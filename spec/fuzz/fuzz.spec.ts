// The bounded fuzz run of `npm test`: every property of properties.ts for a few hundred
// to 1,500 inputs, and 200 garbage request heads against a real server. A random seed each run
// (FUZZ_SEED=n to fix it); a failure prints the seed, the path and the shrunk counterexample.
// Long runs: `npm run fuzz -- --runs N` (spec/fuzz/run.ts).
import fc from 'fast-check';
import { PROPERTIES } from './properties.js';
import { TcpFuzzFixture } from './tcp-server.js';

const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const parameters = (numRuns: number): fc.Parameters<unknown> => (seed === undefined ? { numRuns, includeErrorInReport: true } : { numRuns, seed, includeErrorInReport: true });

/** Garbage request heads sent to the real server in the bounded run. */
const TCP_RUNS = 200;

describe('fuzz: property-based, bounded (npm run fuzz -- --runs N for long runs)', function () {
  this.timeout(60_000);

  for (const property of PROPERTIES) {
    it(`${property.name} (${property.bounded} inputs): ${property.summary}`, async () => {
      await fc.assert(property.create(), parameters(property.bounded));
    });
  }

  it(`tcp-server (${TCP_RUNS} inputs): a WebSocketStreamServer fed arbitrary request heads over TCP closes each connection, never crashes, and keeps serving a normal client`, async () => {
    const fixture = await TcpFuzzFixture.start();
    try {
      await fc.assert(fixture.property(5), parameters(TCP_RUNS));
      await fixture.probe();
      await fixture.settled();
    } finally {
      await fixture.stop();
    }
  });
});
