'use strict';
// Exit behaviour and listener exceptions, in child processes.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const run = (name) => execFileSync(process.execPath, [path.join(__dirname, 'fixtures', name)], { encoding: 'utf8', timeout: 10000 });

test('a script whose only port is unref\'d exits', () => {
  assert.match(run('exit-unref.js'), /exited/);
});

test('a script whose only port has no listener exits', () => {
  assert.match(run('exit-no-listener.js'), /exited/);
});

test('a port with a listener keeps the process alive until its partner closes', () => {
  const out = run('exit-listener.js');
  assert.match(out, /got late/);
  assert.match(out, /closed after the timer/);
});

test('a script whose only port has just a close listener exits', () => {
  assert.doesNotMatch(run('exit-close-listener.js'), /closed\?!/);
  assert.match(run('exit-close-listener.js'), /exited/);
});

// as Node's: a ref()'d port that does not receive hears its partner close, ends, and
// lets the process exit (unless a message is still queued, which nothing reads)
for (const [name, expected] of [
  ['ref', /^exited, hasRef false\n$/],
  ['ref, onmessageerror only', /^exited, hasRef false\n$/],
  ['listener removed, then ref', /^exited, hasRef false\n$/],
  ['ref, a message queued', /^still alive, hasRef true\n/],
]) {
  test(`a ref()'d port that does not receive, its partner closed: ${name}`, () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'exit-ref-partner-closes.js'), name], { encoding: 'utf8', timeout: 10000 });
    assert.match(out, expected);
  });
}

test('a pending ready() keeps the process alive until it resolves', () => {
  assert.match(run('exit-ready.js'), /ready\nexited/);
});

// E5: a listener's exception is an uncaught exception (as with Node's ports), and so is
// an async listener's rejection; the other listeners and the later messages are
// unaffected, also when the messages are delivered in one batch (the exception escapes
// from a nextTick run between two messages)
const listenerErrors = (...args) => execFileSync(
  process.execPath,
  [path.join(__dirname, 'fixtures', 'listener-errors.js'), ...args],
  { encoding: 'utf8', timeout: 10000 },
);

for (const mode of [[], ['hooks']]) {
  test(`e5_listener_exception_is_uncaught_and_affects_nothing_else${mode.length ? ' (async hooks on)' : ''}`, () => {
    const got = JSON.parse(listenerErrors(...mode));
    for (const kind of ['port', 'broadcast']) {
      for (const listeners of ['handler alone', 'handler and listener', 'async handler']) {
        // the same events, in the same order, as Node's own
        assert.deepStrictEqual(got[`cm ${kind} ${listeners}`], got[`node ${kind} ${listeners}`], `${kind}, ${listeners}`);
      }
      assert.deepStrictEqual(got[`cm ${kind} handler and listener`], [
        'handler 1', 'listener 1', 'uncaughtException handler threw', 'uncaughtException listener threw', 'handler 2', 'listener 2',
      ]);
      assert.deepStrictEqual(got[`cm ${kind} async handler`], [
        'async handler 1', 'uncaughtException async handler threw', 'async handler 2',
      ]);
    }
  });
}

test('e5_unhandled_listener_exception_ends_the_process_as_Node_does', () => {
  for (const impl of ['node', 'cm']) {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'listener-errors.js'), 'unhandled', impl], { encoding: 'utf8', timeout: 10000 });
    assert.strictEqual(r.status, 1, `${impl}: ${r.stderr}`);
    assert.match(r.stderr, /Error: handler threw/, impl);
    assert.doesNotMatch(r.stdout, /still running/, impl);
  }
});
