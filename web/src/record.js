// The saved-engine record of `Rlrag.save` / `Rlrag.load` (one OPFS file per
// key): magic, u32 version, u32 part count, then per part u32 length +
// bytes, little-endian. The parts are the model files (weights, config,
// tokenizer; again for a dense model) and the exported index. Its decoder
// reads bytes from the user's storage, so it is fuzzed
// (test/record.test.mjs).
const RECORD_MAGIC = 'RLRAGWEB';
const RECORD_VERSION = 1;

/** magic, u32 version, u32 part count, then per part u32 length + bytes (little-endian). */
export function encodeRecord(parts) {
  const total = 16 + parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(RECORD_MAGIC), 0);
  view.setUint32(8, RECORD_VERSION, true);
  view.setUint32(12, parts.length, true);
  let at = 16;
  for (const p of parts) {
    view.setUint32(at, p.length, true);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** The parts of a record, or a reason why it is unusable. */
export function decodeRecord(bytes) {
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== RECORD_MAGIC) {
    return { why: 'not an rlrag saved engine' };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== RECORD_VERSION) return { why: `format version ${version} (this build reads ${RECORD_VERSION})` };
  const count = view.getUint32(12, true);
  if (count !== 4 && count !== 7) return { why: `${count} parts` };
  const parts = [];
  let at = 16;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.length) return { why: 'truncated' };
    const len = view.getUint32(at, true);
    if (at + 4 + len > bytes.length) return { why: 'truncated' };
    parts.push(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (at !== bytes.length) return { why: `${bytes.length - at} trailing bytes` };
  return { parts };
}
