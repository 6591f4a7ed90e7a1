'use strict';
// Exit behaviour, in child processes: listener-driven ref rules.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

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

test('a pending ready() keeps the process alive until it resolves', () => {
  assert.match(run('exit-ready.js'), /ready\nexited/);
});
