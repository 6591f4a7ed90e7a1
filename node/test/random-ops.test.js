'use strict';
// Random sequences of port operations, and of BroadcastChannel operations
// (fixtures/random-ops.js), 2000 seeds each, every one run against node:worker_threads and
// against channel-messaging: every log must match. The sequences keep away from the
// documented differences (node/README.md), so a mismatch is a bug; the failure shows the
// seed and both logs.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

test('random port operations behave as in Node (2000 seeds)', () => {
  const run = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'random-ops.js'), '1', '2000'], {
    encoding: 'utf8',
    timeout: 60000,
    maxBuffer: 1 << 26,
  });
  assert.strictEqual(run.status, 0, run.stderr);
  const { seeds, seen, differing } = JSON.parse(run.stdout);
  assert.strictEqual(seeds, 2000);
  // the runs did exercise delivery, receiving, transfers and refusals
  assert.ok(seen.delivered > 1000 && seen.received > 500 && seen.sent > 200 && seen.threw > 20, JSON.stringify(seen));
  if (differing.length > 0) {
    const { seed, node, ours } = differing[0];
    assert.deepStrictEqual(ours, node, `seed ${seed} (of ${differing.length} differing)`);
  }
});

test('random BroadcastChannel operations behave as in Node (2000 seeds)', () => {
  const run = spawnSync(
    process.execPath,
    [path.join(__dirname, 'fixtures', 'random-ops.js'), 'broadcast', '1', '2000'],
    { encoding: 'utf8', timeout: 60000, maxBuffer: 1 << 26 },
  );
  assert.strictEqual(run.status, 0, run.stderr);
  const { seeds, seen, differing } = JSON.parse(run.stdout);
  assert.strictEqual(seeds, 2000);
  assert.ok(seen.delivered > 2000, JSON.stringify(seen));
  if (differing.length > 0) {
    const { seed, node, ours } = differing[0];
    assert.deepStrictEqual(ours, node, `seed ${seed} (of ${differing.length} differing)`);
  }
});
