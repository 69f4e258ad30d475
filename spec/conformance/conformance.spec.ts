// The Docker-free Autobahn-style conformance suite: every case of the table in ./cases.ts, run
// against our client (the scripted peer is the server) and against our server (the peer is the
// client), each asserting Autobahn's expectation and the health of the endpoint afterwards.
import { FAMILIES, releasePayloads } from './cases.js';
import { harnessFor } from './harness.js';

/** Per-test allowance for the cases that move many megabytes through a 2-core CI machine. */
const SLOW_CASE_TIMEOUT = 60_000;

describe('conformance (Autobahn|Testsuite families 1–10, scripted peer, no Docker)', function () {
  after(function () {
    releasePayloads();
  });

  for (const role of ['client', 'server'] as const) {
    describe(`our ${role} against a scripted Autobahn-style peer`, function () {
      const harness = harnessFor(role);

      before(async function () {
        await harness.start();
      });

      afterEach(function () {
        // A failed case may leave its connection open; the next case must not inherit it.
        harness.cleanup();
      });

      after(async function () {
        await harness.stop();
      });

      for (const family of FAMILIES) {
        describe(`${family.id}.x ${family.title} [${role}]`, function () {
          for (const testCase of family.cases) {
            it(`${testCase.id} ${testCase.title} [${role}]`, async function () {
              if (testCase.slow) this.timeout(SLOW_CASE_TIMEOUT);
              await testCase.run(harness);
            });
          }
        });
      }
    });
  }
});
