'use strict';
// index.d.ts is written by hand: check that it and the module agree, both ways.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const cm = require('..');

const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');

function declaredExports() {
  const names = new Set();
  for (const m of dts.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)) names.add(m[1]);
  return names;
}

/** Member names declared in `export class Name ... { ... }` (one level of braces). */
function declaredMembers(cls) {
  const start = dts.indexOf(`export class ${cls}`);
  assert.ok(start >= 0, `class ${cls} in index.d.ts`);
  const open = dts.indexOf('{', start);
  let depth = 0;
  let end = open;
  for (; end < dts.length; end++) {
    if (dts[end] === '{') depth++;
    else if (dts[end] === '}' && --depth === 0) break;
  }
  const body = dts.slice(open + 1, end);
  const members = { instance: new Set(), statics: new Set() };
  for (const line of body.split('\n')) {
    const m = line.match(/^\s{2}(static\s+)?(?:readonly\s+)?(?:private\s+)?(\w+)\s*[(:?<]/);
    if (!m || m[2] === 'constructor') continue;
    (m[1] ? members.statics : members.instance).add(m[2]);
  }
  return members;
}

test('every export of the module is declared in index.d.ts, and vice versa', () => {
  assert.deepStrictEqual([...declaredExports()].sort(), Object.keys(cm).sort());
});

for (const cls of ['MessagePort', 'MessageChannel', 'BroadcastChannel', 'PortCollection', 'MessageEvent']) {
  test(`${cls}: declared members exist at runtime, and public runtime members are declared`, () => {
    const { instance, statics } = declaredMembers(cls);
    const C = cm[cls];
    let sample;
    if (cls === 'MessagePort') sample = new cm.MessageChannel().port1;
    else if (cls === 'BroadcastChannel') sample = new cm.BroadcastChannel('dts');
    else if (cls === 'MessageEvent') sample = new cm.MessageEvent('message', { data: 1 });
    else sample = new C();
    try {
      check(C, sample, instance, statics);
    } finally {
      if (cls === 'BroadcastChannel' || cls === 'MessagePort') sample.close();
    }
  });
}

function check(C, sample, instance, statics) {
  const cls = C.name;
  {
    for (const name of instance) assert.ok(name in sample, `${cls}.prototype.${name} exists`);
    for (const name of statics) assert.strictEqual(typeof C[name], 'function', `${cls}.${name} exists`);
    // public (string-named, own to this package's classes) members are declared
    const runtime = new Set();
    for (let p = C.prototype; p && p !== EventTarget.prototype && p !== Event.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor') runtime.add(k);
    }
    for (const k of Object.keys(sample)) runtime.add(k);
    // members that override EventTarget's / Event's own are declared by `extends`
    const inherited = (k) => k in EventTarget.prototype || k in Event.prototype;
    for (const k of runtime) {
      if (!inherited(k)) assert.ok(instance.has(k), `${cls}: runtime member ${k} is declared in index.d.ts`);
    }
    for (const k of Object.getOwnPropertyNames(C)) {
      if (!['length', 'name', 'prototype'].includes(k)) assert.ok(statics.has(k), `${cls}.${k} is declared`);
    }
  }
}
