'use strict';
// Stress of the wake-up path across threads (fixtures/wake-stress.js): ports woken from
// two poster Workers while the main thread moves some of them to a relay Worker, closes
// others, and churns through ports it drops without closing, with the GC running. A lost
// wake-up hangs the run (the timeout fails it); a lost or reordered message is an error.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROUNDS = 5;

test('wake-ups under churn: every port sees an unbroken, complete run (b6, c10, f4)', () => {
  for (let round = 0; round < ROUNDS; round++) {
    const run = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'wake-stress.js')], {
      encoding: 'utf8',
      timeout: 60000,
    });
    assert.strictEqual(run.signal, null, `round ${round}: killed by ${run.signal} (a hang?) ${run.stderr}`);
    assert.strictEqual(run.status, 0, `round ${round}: ${run.stderr}`);
    const { config, ports, errors, churned } = JSON.parse(run.stdout);
    assert.deepStrictEqual(errors, [], `round ${round}`);
    assert.strictEqual(ports.length, config.PORTS);
    assert.ok(churned > 0, 'the churn ran');
    ports.forEach((r, p) => {
      const where = p % 3 === 0 ? 'relay' : p % 7 === 0 ? 'closed' : 'main';
      assert.strictEqual(r.where, where, `round ${round}, port ${p}`);
      if (where === 'closed') {
        // closed mid-stream: an unbroken prefix, at least up to the close
        assert.ok(r.received >= config.CLOSE_AT && r.received <= config.MESSAGES, `port ${p}: ${r.received}`);
      } else {
        assert.strictEqual(r.received, config.MESSAGES, `round ${round}, port ${p}`);
      }
    });
  }
});
