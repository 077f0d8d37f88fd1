"""Golden values for rlrag's GGUF reader (crates/generator/src/gguf.rs), from
the `gguf` package (gguf-py, llama.cpp's own Python reader and writer).

Writes tests/golden/gguf/tiny.gguf with gguf-py's GGUFWriter: metadata of
every value type, and one small tensor per block format the reader decodes,
filled with seeded random blocks (the f16/bf16 fields finite). Then reads it
back with GGUFReader and writes tests/golden/gguf/tiny.json: the metadata,
and per tensor its dims, type id, and every element as gguf.quants.dequantize
gives it (f32 bit patterns, for a bit-exact comparison).

With --model NAME=PATH it also reads a real model file (the SmolLM2 GGUF
that scripts/fetch-models.sh fetches) and writes tests/golden/gguf/NAME.json:
per tensor its dims, type id and the sha256 of its dequantised values
(float32, little-endian), so the Rust reader is checked on every tensor.

Usage: "$(scripts/pyenv.sh)" scripts/reference/gguf_golden.py \
         [--model smollm2=$HOME/.cache/rlrag/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import hashlib
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "gguf")
rng = np.random.default_rng(0x6_6_0F)

# Byte offsets of each block's f16 fields (scales, minimums), set finite.
HALVES = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def finite_halves(n):
    return rng.normal(0, 0.05, n).astype(np.float16).view(np.uint16)


def blocks(qtype, n_blocks):
    elems, size = GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        return rng.normal(0, 1, n_blocks).astype(np.float32).view(np.uint8)
    if qtype == T.F16:
        return rng.normal(0, 1, n_blocks).astype(np.float16).view(np.uint8)
    if qtype == T.BF16:
        f = rng.normal(0, 1, n_blocks).astype(np.float32).view(np.uint32)
        return (f >> 16).astype(np.uint16).view(np.uint8)
    b = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for at in HALVES[qtype]:
        b[:, at:at + 2] = finite_halves(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return b.reshape(-1)


def model_digests(name, path):
    r = GGUFReader(path)
    tensors = {}
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1)
        tensors[t.name] = {
            "dims": [int(d) for d in t.shape],
            "type": int(t.tensor_type),
            "sha256": hashlib.sha256(values.tobytes()).hexdigest(),
        }
    out = os.path.join(OUT, f"{name}.json")
    with open(out, "w") as f:
        json.dump({"file_sha256": sha256_file(path), "tensors": tensors}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}: {len(tensors)} tensors")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH of a GGUF file")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for spec in args.model:
        name, path = spec.split("=", 1)
        model_digests(name, path)
    path = os.path.join(OUT, "tiny.gguf")
    w = GGUFWriter(path, "llama")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo ✓")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 1e-300)
    w.add_array("test.strings", ["a", "", "Ġthe"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.5])
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    for qtype in types:
        elems, size = GGML_QUANT_SIZES[qtype]
        row = 2 * max(elems, 32)  # two blocks per row (64 for the float types)
        rows = 3
        n_blocks = rows * row // elems
        data = blocks(qtype, n_blocks).reshape(rows, row // elems * size)
        w.add_tensor(f"t.{qtype.name.lower()}", data, raw_shape=data.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = GGUFReader(path)
    meta = {}
    for name, field in r.fields.items():
        if not name.startswith("test."):
            continue
        v = field.contents()
        meta[name] = v
    tensors = []
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": int(t.tensor_type),
            "bits": values.view(np.uint32).tolist(),
        })
    with open(os.path.join(OUT, "tiny.json"), "w") as f:
        json.dump({"metadata": meta, "tensors": tensors}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and tiny.json: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
