'use strict';
// Differential test: every scenario of fixtures/differential.js runs once against
// node:worker_threads and once against channel-messaging, in one child process, and logs
// what a program can observe; channel-messaging's log must equal Node's. Scenarios are
// named after spec.md ids where one applies.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const run = spawnSync(
  process.execPath,
  [path.join(__dirname, 'fixtures', 'differential.js')],
  { encoding: 'utf8', timeout: 20000 },
);

let results = {};
let parseError = null;
try {
  results = JSON.parse(run.stdout);
} catch (e) {
  parseError = e;
}

test('the differential fixture runs every scenario and exits by itself', () => {
  assert.strictEqual(run.error, undefined, `the fixture did not finish: ${run.error}`);
  assert.strictEqual(run.signal, null, `the fixture was killed by ${run.signal}: ${run.stderr}`);
  assert.strictEqual(run.status, 0, run.stderr);
  assert.strictEqual(parseError, null, `unreadable output: ${run.stdout.slice(0, 200)}`);
  assert.ok(Object.keys(results).length >= 30, 'at least 30 scenarios');
});

// Where channel-messaging departs from Node on purpose (node/README.md, "Differences from
// Node"): each entry checks that channel-messaging does what it intends, turns that part
// of its log into Node's, and the rest must still equal Node's log exactly. An entry
// whose scenario comes to match Node fails too: the table must not outlive a difference.
const clone = (v) => JSON.parse(JSON.stringify(v));
const threw = (entry, name, message) => {
  assert.strictEqual(entry.threw.name, name);
  if (message !== undefined) assert.match(entry.threw.message, message);
};
/** The same entries in another order (close events: "when" is not normative, D6). */
const reordered = (cm, node) => {
  const key = (list) => list.map((e) => JSON.stringify(e)).sort();
  assert.deepStrictEqual(key(cm), key(node), 'the same entries, in any order');
  return node;
};
const KNOWN = {
  // -- spec over Node
  a3_port1_port2_are_stable_and_look_like_MessagePorts: (log) => {
    // toStringTag and onclose (D5) as the spec's MessagePort has them
    assert.strictEqual(log[0].portTag, '[object MessagePort]');
    assert.strictEqual(log[0].onclose, null);
    log[0].portTag = '[object EventTarget]';
    log[0].onclose = { undefined: true };
    return log;
  },
  i2_BroadcastChannel_name_is_read_only: (log) => {
    assert.strictEqual(log[1].tag, '[object BroadcastChannel]');
    log[1].tag = '[object EventTarget]';
    return log;
  },
  d5_onclose_attribute: (log) => {
    // the spec's onclose handler exists and fires (Node has no onclose)
    assert.strictEqual(log[0].initial, null);
    assert.deepStrictEqual(log[1], ['port2 onclose', 'close', true]);
    return [{ initial: { undefined: true } }, ...log.slice(2)];
  },
  c7_c8_a_transferred_port_arrives_in_event_ports_and_in_data: (log) => {
    // event.ports is a frozen array (C8, J1)
    assert.strictEqual(log[0].frozen, true);
    threw(log[0].push, 'TypeError');
    log[0].frozen = false;
    log[0].push = { ok: 2 };
    return log;
  },
  c5_a_detached_buffer_transferred_again: (log) => {
    // a detached ArrayBuffer in the transfer list is a DataCloneError (C5 step 3)
    for (const i of [2, 3]) threw(log[i], 'DataCloneError', /detached/);
    log[2] = log[3] = 'ok';
    // so only the first post arrives (Node's second and third arrive)
    assert.strictEqual(log[5].length, 1);
    log[5] = results[currentName].node[5];
    return log;
  },
  c15_a_port_in_data_but_not_in_the_transfer_list: (log) => {
    // C15: a DataCloneError (Node: TypeError ERR_MISSING_TRANSFERABLE_IN_TRANSFER_LIST)
    for (const e of log) threw(e, 'DataCloneError', /not in the transfer list/);
    const nodeError = {
      ctor: 'TypeError', name: 'TypeError', code: 'ERR_MISSING_TRANSFERABLE_IN_TRANSFER_LIST',
      message: 'Object that needs transfer was found in message but not listed in transferList',
      isDOMException: false, isTypeError: true,
    };
    return log.map(() => ({ threw: nodeError }));
  },
  // -- the same error, another message text (name and code as Node's)
  c5_a_closed_port_in_the_transfer_list: (log) => nodeMessage(log, 0, /is closed/),
  c9_the_transferred_away_port_is_inert: (log) => nodeMessage(log, 2, /already transferred/),
  // -- 'close': the same events in another order (D6: the timing is not normative).
  //    The closing port hears it before the setImmediate callbacks queued after close()
  //    (Node: after them); port2, transferred by port1.postMessage(x, [port2]) into a
  //    message addressed to itself, hears it before port1 (Node: after)
  c11_transferring_the_target_port: reordered,
  d5_close_from_port1_fires_close_and_when: reordered,
  d5_close_from_port2_fires_close_and_when: reordered,
  d5_the_close_event_object: (log) => {
    // a plain Event subclass of this package (Node's class is internal)
    for (const side of ['port1', 'port2']) {
      assert.strictEqual(log[0][side].ctor, 'PortEvent');
      log[0][side].ctor = 'MessagePortCloseEvent';
    }
    return [{ port1: log[0].port1, port2: log[0].port2 }];
  },
  // -- BroadcastChannel: receivers are served in the order their first message came
  //    (each receiver still sees every sender's messages in order, I3)
  i3_no_self_delivery_and_interleaving_across_receivers: reordered,
  // -- listener rules
  b3_removeAllListeners_message: (log) => {
    // removing the last 'message' listener stops and unrefs the port (as removing one
    // with off does), so the next message waits in the queue instead of being lost
    assert.deepStrictEqual(log[3], { listenerCount: 0, hasRef: false });
    assert.deepStrictEqual(log[4].props, [{ key: 'message', value: 2 }]);
    log[3].hasRef = true;
    log[4] = { undefined: true };
    return log;
  },
  listener_added_during_a_dispatch: (log) => {
    // the DOM's rule: a listener added during a dispatch is called from the next dispatch
    // on (the list is snapshotted); Node calls it in the dispatch that added it
    assert.deepStrictEqual(log, [['first', 1], ['second', 1], ['first', 2], ['second', 2], ['added', 2]]);
    return clone(results[currentName].node);
  },
  onmessage_set_again_after_null: (log) => {
    // HTML's rule: onmessage set to null, then to a function, is a new listener, after
    // the others; Node puts the handler back in its first place
    assert.deepStrictEqual(log, ['B', 'C']);
    return ['C', 'B'];
  },
  listenerCount_eventNames_and_max_listeners: (log) => {
    // eventNames lists only the events that have listeners: the EventEmitter meta
    // events (newListener / removeListener) are never emitted here
    assert.deepStrictEqual(log[0].fresh, []);
    log[0].fresh = ['newListener', 'removeListener'];
    log[2].names = [...log[2].names, 'newListener', 'removeListener'];
    return log;
  },
  // -- values the wire format has no place for (docs/wire-format.md)
  g2_node_Blob: (log) => hostObjectRefused(log, 'Blob'),
  g2_node_BlockList: (log) => hostObjectRefused(log, 'BlockList'),
  g2_WebAssembly_Module: (log) => hostObjectRefused(log, 'Module'),
  g_depth_of_nesting_1000: (log) => {
    threw(log[0], 'DataCloneError', /depth limit \(256\)/);
    return ['arrived'];
  },
  d4_a_listening_port_closes_before_its_queue_is_delivered: (log) => {
    // messages already queued at a port that closes are still delivered (the project's
    // D4 choice, README.md); Node drops them, unless close() runs inside a handler
    assert.deepStrictEqual(log, ['closed', ['message', 1], ['message', 2]]);
    return ['closed'];
  },
  d3_a_message_posted_to_a_port_closed_in_the_same_tick: (log) => {
    // D3: a message sent to a closed port is dropped; Node's close reaches the partner
    // later, and until then the closed port can still read what the partner posts
    assert.deepStrictEqual(log, [{ undefined: true }, { undefined: true }]);
    return clone(results[currentName].node);
  },
  d2_the_partner_of_a_closed_or_lost_port_stays_transferable: (log) => {
    // D2: only close() detaches; Node closes the partner of a port that was lost, or that
    // closed while this one was started, and then refuses to transfer it
    assert.deepStrictEqual(log, ['ok', 'ok']);
    return clone(results[currentName].node);
  },
  g3_an_arguments_object: (log) => {
    // cloned as the plain object of its indices; Node refuses it (an exotic object: G3).
    // Telling it apart would cost a native call on every plain object sent.
    assert.deepStrictEqual(log[0].got.props.map((p) => p.key), ['0', '1']);
    return [{ threw: { ctor: 'DOMException', name: 'DataCloneError', code: 25, message: '#<Object> could not be cloned.', isDOMException: true, isTypeError: false } }];
  },
  g2_arrays_with_holes_and_extra_properties: (log) => {
    // an array's own non-index properties are not carried (G2 asks for them)
    const a = log[0].got.props.find((p) => p.key === 'a').value;
    assert.ok(!a.props.some((p) => p.key === 'extra'));
    a.props.push({ key: 'extra', value: 'e' });
    return log;
  },
};

function hostObjectRefused(log, ctor) {
  assert.strictEqual(log.length, 1);
  threw(log[0], 'DataCloneError', new RegExp(`^#<${ctor}> could not be cloned`));
  return clone(results[currentName].node);
}

function nodeMessage(log, i, pattern) {
  threw(log[i], 'DataCloneError', pattern);
  assert.strictEqual(log[i].threw.code, 25);
  log[i].threw.message = 'MessagePort in transfer list is already detached';
  return log;
}

// Posting a SharedArrayBuffer shares it where this process uses V8's API; elsewhere (the
// N-API backend) it is a DataCloneError, which these scenarios must then show.
if (require('..').bufferPoolStats().backend !== 'v8') {
  for (const name of Object.keys(results)) {
    if (!/shared_array_buffer|SharedArrayBuffer/.test(name)) continue;
    KNOWN[name] = (log) => {
      assert.match(JSON.stringify(log), /DataCloneError.*SharedArrayBuffer.*V8's API/);
      return clone(results[name].node);
    };
  }
}

let currentName = null;
for (const [name, { node, cm }] of Object.entries(results)) {
  test(name, () => {
    currentName = name;
    const known = KNOWN[name];
    if (known === undefined) {
      assert.deepStrictEqual(cm, node, `${name}: channel-messaging (actual) against node:worker_threads (expected)`);
      return;
    }
    assert.notDeepStrictEqual(cm, node, `${name} now matches Node: remove it from KNOWN`);
    assert.deepStrictEqual(known(clone(cm), clone(node)), node, `${name}: beyond the known difference`);
  });
}

test('every known difference names a scenario that ran', () => {
  for (const name of Object.keys(KNOWN)) assert.ok(name in results, `${name} did not run`);
});
