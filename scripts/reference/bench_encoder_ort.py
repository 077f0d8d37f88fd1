"""ONNX Runtime side of the encoder throughput comparison.

Builds the BERT graph of a model directory (config.json + model.safetensors)
directly with the `onnx` package (no torch, no exporter: the same weights the
burn encoder loads), then encodes exactly the token ids that
`trainer bench-encoder --out FILE` used, in the same batches, on one
thread, and prints passages/s, the ratio burn/ORT, and how far the first
outputs of the two runtimes differ.

    "$(scripts/pyenv.sh)" scripts/reference/bench_encoder_ort.py MODEL_DIR INPUTS.json

Called by scripts/bench-encoder.sh.
"""

import json
import math
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_encoders import read_safetensors  # noqa: E402

OPSET = 20  # Gelu (exact, erf) is a standard op from opset 20
IR_VERSION = 10  # what onnxruntime 1.31 reads (onnx 1.23 would write 14)


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, prefix="t"):
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, array):
        n = self.name("c")
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def op(self, op, *inputs, **attrs):
        out = self.name()
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def get(self, *names):
        for n in names:
            if n in self.w:
                return self.w[n].astype(np.float32)
        raise KeyError(names)

    def linear(self, x, prefix):
        wt = self.const(self.get(prefix + ".weight").T)
        return self.op("Add", self.op("MatMul", x, wt), self.const(self.get(prefix + ".bias")))

    def layer_norm(self, x, prefix, eps):
        g = self.const(self.get(prefix + ".weight", prefix + ".gamma"))
        b = self.const(self.get(prefix + ".bias", prefix + ".beta"))
        return self.op("LayerNormalization", x, g, b, axis=-1, epsilon=eps)


def bert(g, cfg, prefix, ids, maskf):
    eps = cfg["layer_norm_eps"]
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = hidden // heads
    word = g.op("Gather", g.const(g.get(prefix + "embeddings.word_embeddings.weight")), ids)
    length = g.op("Gather", g.op("Shape", ids), g.const(np.array([1], np.int64)))
    pos = g.op(
        "Slice",
        g.const(g.get(prefix + "embeddings.position_embeddings.weight")),
        g.const(np.array([0], np.int64)),
        length,
        g.const(np.array([0], np.int64)),
    )
    tt = g.const(g.get(prefix + "embeddings.token_type_embeddings.weight")[0])
    x = g.op("Add", g.op("Add", word, pos), tt)
    x = g.layer_norm(x, prefix + "embeddings.LayerNorm", eps)
    # Additive attention bias [B, 1, 1, L]: 0 for tokens, -1e9 for padding.
    neg = g.op("Mul", g.op("Sub", g.const(np.float32(1.0)), maskf), g.const(np.float32(-1e9)))
    bias = g.op("Unsqueeze", neg, g.const(np.array([1, 2], np.int64)))
    split = g.const(np.array([0, 0, heads, d], np.int64))
    merge = g.const(np.array([0, 0, hidden], np.int64))
    scale = g.const(np.float32(1.0 / math.sqrt(d)))
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{i}."
        q = g.op("Transpose", g.op("Reshape", g.linear(x, p + "attention.self.query"), split), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", g.linear(x, p + "attention.self.key"), split), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", g.linear(x, p + "attention.self.value"), split), perm=[0, 2, 1, 3])
        s = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
        ctx = g.op("MatMul", g.op("Softmax", s, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge)
        x = g.layer_norm(g.op("Add", x, g.linear(ctx, p + "attention.output.dense")), p + "attention.output.LayerNorm", eps)
        h = g.op("Gelu", g.linear(x, p + "intermediate.dense"))
        x = g.layer_norm(g.op("Add", x, g.linear(h, p + "output.dense")), p + "output.LayerNorm", eps)
    return x


def build(model_dir, sparse):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    g = Graph(read_safetensors(os.path.join(model_dir, "model.safetensors")))
    ids = "input_ids"
    maskf = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    prefix = "bert." if sparse else ""
    x = bert(g, cfg, prefix, ids, maskf)
    mask3 = g.op("Unsqueeze", maskf, g.const(np.array([2], np.int64)))
    if sparse:
        h = g.op("Gelu", g.linear(x, "cls.predictions.transform.dense"))
        h = g.layer_norm(h, "cls.predictions.transform.LayerNorm", cfg["layer_norm_eps"])
        vocab_t = g.const(g.get("bert.embeddings.word_embeddings.weight").T)
        logits = g.op("Add", g.op("MatMul", h, vocab_t), g.const(g.get("cls.predictions.bias")))
        pad_bias = g.op("Mul", g.op("Sub", g.const(np.float32(1.0)), mask3), g.const(np.float32(-1e9)))
        pooled = g.op("ReduceMax", g.op("Add", logits, pad_bias), g.const(np.array([1], np.int64)), keepdims=0)
        out = g.op("Log", g.op("Add", g.op("Relu", pooled), g.const(np.float32(1.0))))
    else:
        axis = g.const(np.array([1], np.int64))
        summed = g.op("ReduceSum", g.op("Mul", x, mask3), axis, keepdims=0)
        count = g.op("Max", g.op("ReduceSum", mask3, axis, keepdims=0), g.const(np.float32(1e-9)))
        out = g.op("LpNormalization", g.op("Div", summed, count), axis=-1, p=2)
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"]),
    ]
    graph = helper.make_graph(g.nodes, "bert", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", "dim"])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main():
    model_dir, inputs_path = sys.argv[1], sys.argv[2]
    inp = json.load(open(inputs_path))
    sparse, batch, ids = inp["sparse"], inp["batch"], inp["ids"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(build(model_dir, sparse), opts, providers=["CPUExecutionProvider"])

    def feeds(rows):
        n = max(len(r) for r in rows)
        a = np.zeros((len(rows), n), np.int64)
        m = np.zeros((len(rows), n), np.int64)
        for i, r in enumerate(rows):
            a[i, : len(r)] = r
            m[i, : len(r)] = 1
        return {"input_ids": a, "attention_mask": m}

    def run(rows):
        out = sess.run(None, feeds(rows))[0]
        if sparse:  # the same sparsification burn's side does
            return [(np.nonzero(r)[0], r[np.nonzero(r)[0]]) for r in out], out
        return out, out

    _, first = run(ids[:batch])  # warm-up, and the outputs to compare
    start = time.perf_counter()
    for b in range(0, len(ids), batch):
        run(ids[b : b + batch])
    seconds = time.perf_counter() - start
    pps = len(ids) / seconds

    worst = 0.0
    for want, got in zip(inp["first_outputs"], first):
        if sparse:
            for term, weight in want:
                worst = max(worst, abs(float(got[term]) - weight))
        else:
            worst = max(worst, float(np.max(np.abs(np.asarray(want, np.float32) - got))))
    burn = inp["burn"]
    print(
        json.dumps(
            {
                "runtime": f"onnxruntime {ort.__version__}",
                "model": model_dir,
                "passages": len(ids),
                "tokens": burn["tokens"],
                "batch": batch,
                "seconds": seconds,
                "passages_per_s": pps,
                "burn_passages_per_s": burn["passages_per_s"],
                "ratio_burn_over_ort": burn["passages_per_s"] / pps,
                "max_abs_diff_first_outputs": worst,
            }
        )
    )


if __name__ == "__main__":
    main()
