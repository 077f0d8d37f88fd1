// The saved-engine record decoder (src/record.js) against hostile bytes:
// seeded mutations of valid records (byte flips, boundary values written
// into the length fields, insertions, deletions, truncation, splices). It
// must never throw; what it accepts must re-encode to the same bytes, and
// what it refuses comes with a reason. RLRAG_RECORD_FUZZ_INPUTS sets the
// number of inputs (scripts/fuzz.sh runs millions; the test command 200,000).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decodeRecord, encodeRecord } from '../src/record.js';

const INPUTS = Number(process.env.RLRAG_RECORD_FUZZ_INPUTS ?? 200_000);

/** xorshift32: a seeded generator of u32s. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function bytes(next, n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() & 0xff;
  return out;
}

function validRecord(next) {
  const count = next() % 2 ? 4 : 7;
  return encodeRecord(Array.from({ length: count }, () => bytes(next, next() % 24)));
}

const BOUNDARY = [0, 1, 3, 4, 7, 15, 16, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(next, input) {
  let b = Uint8Array.from(input);
  const at = () => (b.length ? next() % b.length : 0);
  const rounds = 1 + (next() % 3);
  for (let r = 0; r < rounds; r++) {
    switch (next() % 7) {
      case 0: // flip a bit
        if (b.length) b[at()] ^= 1 << (next() % 8);
        break;
      case 1: {
        // a boundary value into a (likely) length field
        if (b.length >= 4) {
          const off = Math.min(b.length - 4, 4 * Math.floor(at() / 4));
          new DataView(b.buffer).setUint32(off, BOUNDARY[next() % BOUNDARY.length], true);
        }
        break;
      }
      case 2: {
        const i = at();
        b = Uint8Array.from([...b.subarray(0, i), ...bytes(next, 1 + (next() % 8)), ...b.subarray(i)]);
        break;
      }
      case 3: {
        const i = at();
        b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1 + (next() % 8))]);
        break;
      }
      case 4:
        b = b.subarray(0, at());
        break;
      case 5: {
        const i = at();
        const j = at();
        b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(j, j + (next() % 16)), ...b.subarray(i)]);
        break;
      }
      default:
        if (b.length) b[at()] = next() & 0xff;
    }
  }
  return b;
}

test('records of 4 and 7 parts round-trip', () => {
  const next = rng(1);
  for (let i = 0; i < 1000; i++) {
    const rec = validRecord(next);
    const { parts, why } = decodeRecord(rec);
    assert.equal(why, undefined);
    assert.deepEqual(encodeRecord(parts), rec);
  }
});

test(`${INPUTS} mutated records: never a throw; accepted ones re-encode exactly, refused ones say why`, () => {
  const next = rng(0x5eed);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < INPUTS; i++) {
    const input = mutate(next, validRecord(next));
    let out;
    assert.doesNotThrow(() => {
      out = decodeRecord(input);
    }, `input ${i}: ${Buffer.from(input).toString('hex')}`);
    if (out.parts) {
      accepted++;
      assert.ok(out.parts.length === 4 || out.parts.length === 7);
      assert.deepEqual(encodeRecord(out.parts), input, `input ${i}`);
    } else {
      refused++;
      assert.equal(typeof out.why, 'string');
      assert.ok(out.why.length > 0);
    }
  }
  // Both outcomes are reached, so the mutations probe the checks.
  assert.ok(accepted > INPUTS / 100 && refused > INPUTS / 10, `accepted ${accepted}, refused ${refused}`);
});
