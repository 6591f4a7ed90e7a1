// What every Node row shares (bench/node/peers.mjs, bench/node/channel_messaging_rows.mjs):
// the W3 buffer size, the clock, the warm-up count, the message checks, and the result line.

export const W3_BYTES = 64 * 1024;
export const now = () => process.hrtime.bigint();
export const warmup = (n) => Math.max(10, Math.min(1000, Math.floor(n / 100)));

export function checkTick(m, seq) {
  if (m.seq !== seq || m.name !== 'tick') {
    throw new Error(`message ${seq} arrived as ${JSON.stringify(m)}`);
  }
}

export function checkBuffer(ab, seq) {
  if (ab.byteLength !== W3_BYTES || new DataView(ab).getUint32(0, true) !== seq) {
    throw new Error(`buffer ${seq} arrived wrong`);
  }
}

export function stamp(ab, seq) {
  new DataView(ab).setUint32(0, seq, true);
}

/** Prints the one `RESULT {json}` line the harness reads. */
export function report(value, unit, extra = {}) {
  console.log('RESULT ' + JSON.stringify({ value, unit, ...extra }));
}
