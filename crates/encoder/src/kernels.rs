//! Fused, vectorisable CPU kernels for the hot spots of the encoder: the
//! exact GELU of the feed-forward layers, the scaled, biased softmax of
//! attention, the max-pooling of vocabulary logits over tokens and, in
//! WebAssembly, the MLM decoder fused with that pooling
//! ([`decode_max_over_tokens`]).
//!
//! burn-flex evaluates both with scalar libm calls (`erff`, `expf`) one
//! element at a time, about a quarter of an encoder forward pass. Here the
//! error function is a rational approximation and `exp` a range-reduced
//! polynomial, written as branch-free loops over slices that the compiler
//! vectorises (SSE/AVX natively, SIMD128 in wasm); the softmax also folds the
//! 1/√d scaling and the padding bias into the same pass over each row.
//!
//! The fast path runs only on flex tensors outside autodiff (inference).
//! Every other device — WebGPU, CUDA, an autodiff graph during training —
//! takes burn's own operations, so one model code path serves them all.
//! `scripts/reference/fit_erf.py` derives the error-function coefficients; the tests
//! below bound both kernels against libm.
//!
//! One file though it is long: the kernels share the 16-lane chunk helpers
//! and the run-time dispatch (`pulp` on x86_64, SIMD128 in wasm), and split
//! per kernel each file would repeat that scaffolding.

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::activation::{gelu as burn_gelu, softmax};
use burn::tensor::{Bool, DType, Tensor, TensorData};

type FlexTensor = <burn::backend::Flex as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// The exact GELU, `x · Φ(x) = ½x(1 + erf(x/√2))`.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match into_flex_f32(x) {
        Placed::Flex(t) => from_flex(map_f32(t, Gelu)),
        Placed::Other(x) => burn_gelu(x),
    }
}

/// `softmax(scores / scale_div + bias)` over the last dimension of attention
/// scores `[batch, heads, len, len]`; `bias` is `[batch, 1, 1, len]` (0 for
/// real tokens, a large negative number for padding) or `None`.
pub(crate) fn attention_softmax(
    scores: Tensor<4>,
    scale_div: f32,
    bias: Option<Tensor<4>>,
) -> Tensor<4> {
    let [b, h, lq, lk] = scores.dims();
    if bias
        .as_ref()
        .is_some_and(|bias| bias.dims() != [b, 1, 1, lk])
    {
        // Another shape of bias: burn broadcasts it.
        return burn_softmax(scores, scale_div, bias);
    }
    let scores = match into_flex_f32(scores) {
        Placed::Flex(t) => t,
        Placed::Other(scores) => return burn_softmax(scores, scale_div, bias),
    };
    let bias_data = match bias.map(into_flex_f32) {
        None => None,
        Some(Placed::Flex(bias)) => Some(bias.to_contiguous()),
        Some(Placed::Other(bias)) => return burn_softmax(from_flex(scores), scale_div, Some(bias)),
    };
    let bias_rows: Option<&[f32]> = bias_data.as_ref().and_then(|t| t.as_slice::<f32>());
    if bias_data.is_some() && bias_rows.is_none_or(|rows| rows.len() != b * lk) {
        let bias = bias_data.map(from_flex);
        return burn_softmax(from_flex(scores), scale_div, bias);
    }
    let softmax = Softmax {
        len: lk,
        rows_per_batch: h * lq,
        scale_div,
        bias_rows,
    };
    from_flex(map_f32(scores, softmax))
}

/// The maximum over the token axis of logits `[batch, len, vocab]`, skipping
/// the tokens `pad` marks (true at padding; `None`: no padding). A row that
/// is all padding pools to −∞.
pub(crate) fn max_over_tokens(logits: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Tensor<2> {
    let [b, l, v] = logits.dims();
    let device = logits.device();
    let logits = match into_flex_f32(logits) {
        Placed::Flex(t) => t,
        Placed::Other(logits) => return burn_max_over_tokens(logits, pad),
    };
    let Some(keep) = kept_tokens(pad.as_ref(), b, l) else {
        return burn_max_over_tokens(from_flex(logits), pad);
    };
    let logits = contiguous(logits);
    let Some(xs) = logits.as_slice::<f32>() else {
        return burn_max_over_tokens(from_flex(logits), pad);
    };
    let mut out = vec![f32::NEG_INFINITY; b * v];
    let kernel = MaxOverTokens {
        logits: xs,
        keep: &keep,
        len: l,
    };
    vectorized(kernel, &mut out);
    Tensor::from_data(TensorData::new(out, [b, v]), &device)
}

/// Where the fused decoder below runs in place of a matrix product and
/// [`max_over_tokens`]: in WebAssembly, where gemm packs the whole decoder
/// (30,522 × 128 for BERT) on every call — a quarter of a browser query —
/// and has no FMA; natively gemm's AVX-512/FMA kernels are faster.
const FUSED_DECODER: bool = cfg!(target_arch = "wasm32");

/// The MLM decoder's logits max-pooled over tokens: for every vocabulary row
/// `v` of `decoder` `[vocab, hidden]` (the tied word embeddings), the maximum
/// over each batch's non-padding tokens of `states[token] · decoder[v]`
/// (`states` `[batch, len, hidden]`; `pad` true at padding, `None`: none). A
/// row that is all padding pools to −∞. In WebAssembly on flex outside
/// autodiff one fused pass reads each decoder row once, in place, and
/// writes only the pooled `[batch, vocab]`; elsewhere it is burn's matrix
/// product and [`max_over_tokens`].
pub(crate) fn decode_max_over_tokens(
    states: Tensor<3>,
    decoder: Tensor<2>,
    pad: Option<Tensor<2, Bool>>,
) -> Tensor<2> {
    if FUSED_DECODER {
        fused_decode_max(states, decoder, pad)
    } else {
        burn_decode_max(states, decoder, pad)
    }
}

fn burn_decode_max(
    states: Tensor<3>,
    decoder: Tensor<2>,
    pad: Option<Tensor<2, Bool>>,
) -> Tensor<2> {
    let [b, l, h] = states.dims();
    let vocab = decoder.dims()[0];
    let logits = states
        .reshape([b * l, h])
        .matmul(decoder.transpose())
        .reshape([b, l, vocab]);
    max_over_tokens(logits, pad)
}

fn fused_decode_max(
    states: Tensor<3>,
    decoder: Tensor<2>,
    pad: Option<Tensor<2, Bool>>,
) -> Tensor<2> {
    let [b, l, h] = states.dims();
    let [vocab, dh] = decoder.dims();
    let device = states.device();
    let (states, decoder) = match (into_flex_f32(states), into_flex_f32(decoder)) {
        (Placed::Flex(s), Placed::Flex(d)) if dh == h && h > 0 && h.is_multiple_of(4) => {
            (contiguous(s), contiguous(d))
        }
        (s, d) => return burn_decode_max(placed(s), placed(d), pad),
    };
    let Some(keep) = kept_tokens(pad.as_ref(), b, l) else {
        return burn_decode_max(from_flex(states), from_flex(decoder), pad);
    };
    let (Some(xs), Some(ws)) = (states.as_slice::<f32>(), decoder.as_slice::<f32>()) else {
        return burn_decode_max(from_flex(states), from_flex(decoder), pad);
    };
    let mut out = vec![f32::NEG_INFINITY; b * vocab];
    let kernel = DecodeMax {
        states: xs,
        keep: &keep,
        decoder: ws,
        len: l,
        hidden: h,
    };
    vectorized(kernel, &mut out);
    Tensor::from_data(TensorData::new(out, [b, vocab]), &device)
}

fn placed<const D: usize>(p: Placed<D>) -> Tensor<D> {
    match p {
        Placed::Flex(t) => from_flex(t),
        Placed::Other(t) => t,
    }
}

/// Which of `batch × len` tokens are pooled: those `pad` does not mark
/// (every one without a mask); `None` for a mask that is not `[batch, len]`
/// booleans (burn's operations then check it).
fn kept_tokens(pad: Option<&Tensor<2, Bool>>, batch: usize, len: usize) -> Option<Vec<bool>> {
    match pad.map(|p| p.clone().into_data().try_into_vec::<bool>()) {
        None => Some(vec![true; batch * len]),
        Some(Ok(values)) if values.len() == batch * len => {
            Some(values.iter().map(|&p| !p).collect())
        }
        Some(_) => None,
    }
}

fn burn_max_over_tokens(logits: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Tensor<2> {
    let [b, l, v] = logits.dims();
    let logits = match pad {
        Some(pad) => logits.mask_fill(pad.reshape([b, l, 1]).expand([b, l, v]), f32::NEG_INFINITY),
        None => logits,
    };
    logits.max_dim(1).reshape([b, v])
}

fn burn_softmax(scores: Tensor<4>, scale_div: f32, bias: Option<Tensor<4>>) -> Tensor<4> {
    let mut scores = scores.div_scalar(scale_div);
    if let Some(bias) = bias {
        scores = scores + bias;
    }
    softmax(scores, 3)
}

/// Where a tensor runs: on flex in `f32` outside autodiff (the fast kernels
/// apply), or anywhere else. Short-lived and moved once, so the size of a
/// `Tensor` (the dispatch enum over every backend) is not worth a box.
#[allow(clippy::large_enum_variant)]
enum Placed<const D: usize> {
    Flex(FlexTensor),
    Other(Tensor<D>),
}

fn into_flex_f32<const D: usize>(x: Tensor<D>) -> Placed<D> {
    match x.into_dispatch() {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        } if t.dtype() == DType::F32 => Placed::Flex(t),
        other => Placed::Other(Tensor::from_dispatch(other)),
    }
}

fn from_flex<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// A computation over a contiguous `f32` buffer.
trait SliceKernel {
    fn run(self, xs: &mut [f32]);
}

/// Runs `kernel` over `xs`: on x86_64 compiled (inlined) for the widest SIMD
/// the CPU has (AVX-512, AVX2 or SSE), chosen at run time by `pulp`;
/// elsewhere as built (wasm32 with SIMD128, aarch64 with NEON). Not `pulp`
/// on wasm32: its dispatch there enables relaxed SIMD, which browsers do not
/// all have.
#[cfg(target_arch = "x86_64")]
fn vectorized(kernel: impl SliceKernel, xs: &mut [f32]) {
    struct Vectorized<'a, K> {
        kernel: K,
        xs: &'a mut [f32],
    }

    impl<K: SliceKernel> pulp::WithSimd for Vectorized<'_, K> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            self.kernel.run(self.xs);
        }
    }

    pulp::Arch::new().dispatch(Vectorized { kernel, xs });
}

#[cfg(not(target_arch = "x86_64"))]
fn vectorized(kernel: impl SliceKernel, xs: &mut [f32]) {
    kernel.run(xs);
}

/// `t` itself when its elements fill its buffer from the start in
/// row-major order, else a contiguous copy.
fn contiguous(t: FlexTensor) -> FlexTensor {
    let n = t.layout().num_elements();
    if t.layout().contiguous_offsets() == Some((0, n)) {
        t
    } else {
        t.to_contiguous()
    }
}

/// Applies `kernel` to the elements of `t` in row-major order, in place when
/// `t` owns a contiguous buffer, on a contiguous copy otherwise.
fn map_f32(t: FlexTensor, kernel: impl SliceKernel) -> FlexTensor {
    let n = t.layout().num_elements();
    let mut t = contiguous(t);
    let storage = t.storage_mut::<f32>();
    let len = storage.len().min(n);
    vectorized(kernel, &mut storage[..len]);
    t
}

/// Lanes processed together: wide enough for AVX-512, a multiple of SIMD128's.
const LANES: usize = 16;

struct Gelu;

impl SliceKernel for Gelu {
    #[inline(always)]
    fn run(self, xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for x in chunk {
                *x = gelu_one(*x);
            }
        }
        for x in chunks.into_remainder() {
            *x = gelu_one(*x);
        }
    }
}

/// Writes, into the `[batch, vocab]` output, the maximum of each batch's kept
/// rows of `[batch · len, vocab]` logits.
struct MaxOverTokens<'a> {
    logits: &'a [f32],
    keep: &'a [bool],
    len: usize,
}

impl SliceKernel for MaxOverTokens<'_> {
    #[inline(always)]
    fn run(self, out: &mut [f32]) {
        let rows = self.keep.len();
        let vocab = self.logits.len().checked_div(rows).unwrap_or(0);
        if vocab == 0 {
            return;
        }
        for (batch, pooled) in out.chunks_exact_mut(vocab).enumerate() {
            let first = batch * self.len;
            for token in first..(first + self.len).min(rows) {
                if !self.keep[token] {
                    continue;
                }
                let row = &self.logits[token * vocab..(token + 1) * vocab];
                for (m, &x) in pooled.iter_mut().zip(row) {
                    *m = if x > *m { x } else { *m };
                }
            }
        }
    }
}

/// Tokens per block of [`DecodeMax`]: 4 tokens × 2 decoder rows of 4-lane
/// accumulators, with their operands, fit SIMD128's 16 registers.
const DOT_TOKENS: usize = 4;

/// One token's state or one decoder row, as 4-float chunks.
type Chunks<'a> = &'a [[f32; 4]];

/// Writes, into the `[batch, vocab]` output (−∞ at the start), the maximum
/// over each batch's kept tokens of the dot products of the token states
/// `[batch · len, hidden]` with the decoder rows `[vocab, hidden]`; `hidden`
/// is a multiple of 4.
struct DecodeMax<'a> {
    states: &'a [f32],
    keep: &'a [bool],
    decoder: &'a [f32],
    len: usize,
    hidden: usize,
}

impl SliceKernel for DecodeMax<'_> {
    #[inline(always)]
    fn run(self, out: &mut [f32]) {
        let n = self.hidden / 4;
        let states = self.states.as_chunks::<4>().0;
        let rows = self.decoder.as_chunks::<4>().0;
        let vocab = rows.len().checked_div(n).unwrap_or(0);
        if vocab == 0 || !self.hidden.is_multiple_of(4) {
            return;
        }
        for (batch, pooled) in out.chunks_exact_mut(vocab).enumerate() {
            let kept: Vec<Chunks<'_>> = (batch * self.len..(batch + 1) * self.len)
                .filter(|&t| self.keep.get(t).copied().unwrap_or(false))
                .filter_map(|t| states.get(t * n..(t + 1) * n))
                .collect();
            // Blocks of DOT_TOKENS tokens; a short last block repeats its
            // last token, which cannot change a maximum.
            let blocks: Vec<[Chunks<'_>; DOT_TOKENS]> = kept
                .chunks(DOT_TOKENS)
                .map(|c| std::array::from_fn(|i| c[i.min(c.len() - 1)]))
                .collect();
            if blocks.is_empty() {
                continue;
            }
            let mut pairs = rows.chunks_exact(2 * n);
            let mut outs = pooled.chunks_exact_mut(2);
            for (out_pair, pair) in (&mut outs).zip(&mut pairs) {
                let (r0, r1) = pair.split_at(n);
                out_pair.copy_from_slice(&pair_max(&blocks, r0, r1));
            }
            // An odd last row: paired with itself.
            if let (Some(last), Some(r)) = (
                outs.into_remainder().first_mut(),
                pairs.remainder().get(..n),
            ) {
                *last = pair_max(&blocks, r, r)[0];
            }
        }
    }
}

/// The maximum over every token of `blocks` of its dot product with `r0`
/// and with `r1` (every slice `n` chunks long). Kept out of line: a small
/// function whose accumulators stay in registers.
#[inline(never)]
fn pair_max(blocks: &[[Chunks<'_>; DOT_TOKENS]], r0: Chunks<'_>, r1: Chunks<'_>) -> [f32; 2] {
    let mut best = [f32::NEG_INFINITY; 2];
    for block in blocks {
        for token in block_dots(block, r0, r1) {
            for (m, d) in best.iter_mut().zip(token) {
                *m = if d > *m { d } else { *m };
            }
        }
    }
    best
}

/// The dot products of a block's four tokens with `r0` and `r1`, in
/// SIMD128: eight 4-lane accumulators, each row chunk loaded once for the
/// four tokens.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn block_dots(
    block: &[Chunks<'_>; DOT_TOKENS],
    r0: Chunks<'_>,
    r1: Chunks<'_>,
) -> [[f32; 2]; DOT_TOKENS] {
    use std::arch::wasm32::{f32x4, f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128};
    let load = |c: &[f32; 4]| f32x4(c[0], c[1], c[2], c[3]);
    let zero = f32x4_splat(0.0);
    let (mut a00, mut a01, mut a10, mut a11) = (zero, zero, zero, zero);
    let (mut a20, mut a21, mut a30, mut a31) = (zero, zero, zero, zero);
    // Indexing, not a chain of zips (whose `next` stays a call per step at
    // opt-level z); every slice is cut to `n`, so no bound is checked.
    let n = r0
        .len()
        .min(r1.len())
        .min(block.iter().map(|t| t.len()).min().unwrap_or(0));
    let (r0, r1) = (&r0[..n], &r1[..n]);
    let (x0s, x1s, x2s, x3s) = (
        &block[0][..n],
        &block[1][..n],
        &block[2][..n],
        &block[3][..n],
    );
    for k in 0..n {
        let (w0, w1) = (load(&r0[k]), load(&r1[k]));
        let x0 = load(&x0s[k]);
        a00 = f32x4_add(a00, f32x4_mul(x0, w0));
        a01 = f32x4_add(a01, f32x4_mul(x0, w1));
        let x1 = load(&x1s[k]);
        a10 = f32x4_add(a10, f32x4_mul(x1, w0));
        a11 = f32x4_add(a11, f32x4_mul(x1, w1));
        let x2 = load(&x2s[k]);
        a20 = f32x4_add(a20, f32x4_mul(x2, w0));
        a21 = f32x4_add(a21, f32x4_mul(x2, w1));
        let x3 = load(&x3s[k]);
        a30 = f32x4_add(a30, f32x4_mul(x3, w0));
        a31 = f32x4_add(a31, f32x4_mul(x3, w1));
    }
    let sum = |v: v128| {
        (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
    };
    [
        [sum(a00), sum(a01)],
        [sum(a10), sum(a11)],
        [sum(a20), sum(a21)],
        [sum(a30), sum(a31)],
    ]
}

/// [`block_dots`] in portable code, summed in the same order (native builds
/// use gemm for the decoder; this runs the fused kernel's tests).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn block_dots(
    block: &[Chunks<'_>; DOT_TOKENS],
    r0: Chunks<'_>,
    r1: Chunks<'_>,
) -> [[f32; 2]; DOT_TOKENS] {
    let mut dots = [[0.0f32; 2]; DOT_TOKENS];
    for (d_t, x_t) in dots.iter_mut().zip(block) {
        for (d, r) in d_t.iter_mut().zip([r0, r1]) {
            let mut acc = [0.0f32; 4];
            for (x, w) in x_t.iter().zip(r) {
                for lane in 0..4 {
                    acc[lane] += x[lane] * w[lane];
                }
            }
            *d = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
    }
    dots
}

/// Row-wise attention softmax over `[batch, heads, len, len]` scores.
struct Softmax<'a> {
    len: usize,
    rows_per_batch: usize,
    scale_div: f32,
    /// `[batch, len]` additive bias.
    bias_rows: Option<&'a [f32]>,
}

impl SliceKernel for Softmax<'_> {
    #[inline(always)]
    fn run(self, xs: &mut [f32]) {
        let len = self.len.max(1);
        for (r, row) in xs.chunks_exact_mut(len).enumerate() {
            let batch = r / self.rows_per_batch.max(1);
            let bias_row = self
                .bias_rows
                .and_then(|rows| rows.get(batch * len..(batch + 1) * len));
            softmax_row(row, self.scale_div, bias_row);
        }
    }
}

#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Beyond ±4, erf is ±1 in `f32` (erfc(4) ≈ 1.5e-8 is below half an ulp).
const ERF_CLAMP: f32 = 4.0;
/// erf(x) ≈ x·P(x²)/Q(x²) on [−4, 4], as printed by `scripts/reference/fit_erf.py`
/// (max error 2.1e-8 in exact arithmetic, 3.6e-7 evaluated in `f32`).
// The leading coefficient is fitted, not 2/√π (which it approximates).
#[allow(clippy::approx_constant)]
const ERF_P: [f32; 6] = [
    1.128379e+00,
    1.962493e-01,
    5.3467527e-02,
    4.0036626e-03,
    2.8804218e-04,
    1.9748315e-06,
];
const ERF_Q: [f32; 6] = [
    1e+00,
    5.072526e-01,
    1.16476566e-01,
    1.5444453e-02,
    1.2163648e-03,
    3.7480917e-05,
];

/// The error function, branch-free (vectorisable), absolute error < 4e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let saturated = x.abs() >= ERF_CLAMP;
    let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
    let t = x * x;
    let p = horner(&ERF_P, t);
    let q = horner(&ERF_Q, t);
    let y = (x * p / q).clamp(-1.0, 1.0);
    if saturated { 1.0f32.copysign(x) } else { y }
}

#[inline(always)]
fn horner(c: &[f32; 6], t: f32) -> f32 {
    let mut acc = c[5];
    for &k in c[..5].iter().rev() {
        acc = acc * t + k;
    }
    acc
}

/// One softmax row: `row = softmax(row / scale_div + bias)`.
#[inline(always)]
fn softmax_row(row: &mut [f32], scale_div: f32, bias: Option<&[f32]>) {
    match bias {
        Some(bias) => {
            for (s, b) in row.iter_mut().zip(bias) {
                *s = *s / scale_div + b;
            }
        }
        None => {
            for s in row.iter_mut() {
                *s /= scale_div;
            }
        }
    }
    // Per-lane partial maxima and sums, so both reductions vectorise.
    let mut lane_max = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &s) in lane_max.iter_mut().zip(chunk) {
            *m = if s > *m { s } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lane_max)
        .fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
    let mut sum = 0.0f32;
    let mut partial = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, acc) in chunk.iter_mut().zip(partial.iter_mut()) {
            *s = exp(*s - max);
            *acc += *s;
        }
    }
    for s in chunks.into_remainder() {
        *s = exp(*s - max);
        sum += *s;
    }
    sum += partial.iter().sum::<f32>();
    let inv = 1.0 / sum;
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// `e^x` for `x ≤ 0` (softmax arguments after the max is subtracted),
/// branch-free: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor
/// polynomial (relative error < 1e-8 before rounding), 2^n from the exponent
/// bits. Below −87 (where `f32` underflows) the result is 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for k in [720.0f32, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / k;
    }
    // n ∈ [−126, 1]: the biased exponent n + 127 is a normal float's.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData, Tolerance};

    #[test]
    fn erf_matches_libm_on_a_dense_grid() {
        let mut worst = 0.0f32;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            worst = worst.max((erf(x) - erf_ref(x)).abs());
        }
        assert!(worst < 4e-7, "max |erf − libm| = {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(-30.0), -1.0);
        // Odd, so GELU of −x is exactly x − GELU(x) up to rounding.
        assert_eq!(erf(-0.7), -erf(0.7));
    }

    #[test]
    fn exp_matches_libm_relatively() {
        for i in 0..=900_000 {
            let x = -(i as f32) * 1e-4;
            let (got, want) = (exp(x), x.exp());
            let rel = (got - want).abs() / want.max(f32::MIN_POSITIVE);
            assert!(rel < 3e-7 || want < 1e-37, "exp({x}) = {got}, libm {want}");
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1.0e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    fn erf_ref(x: f32) -> f32 {
        // f64 libm as the reference.
        libm_erf(f64::from(x)) as f32
    }

    /// erf in `f64` by its Maclaurin series (|x| < 3) or continued fraction
    /// for erfc (|x| ≥ 3): an independent reference, accurate to ~1e-15.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }

    /// Deterministic values spread over about [−6, 6].
    fn random(shape: [usize; 4], seed: u64) -> Tensor<4> {
        let n = shape.iter().product::<usize>();
        let values = (0..n)
            .map(|i| 6.0 * ((i as f32 + seed as f32) * 0.618_034).sin() * ((i as f32) * 0.1).cos())
            .collect::<Vec<f32>>();
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    #[test]
    fn gelu_matches_burn_on_flex() {
        let x = random([2, 3, 5, 37], 7);
        let want = burn_gelu(x.clone()).into_data();
        // A transposed view takes the copying path.
        let xt = x.clone().swap_dims(2, 3);
        let got_t = gelu(xt).swap_dims(2, 3).into_data();
        gelu(x)
            .into_data()
            .assert_approx_eq::<f32>(&want, Tolerance::absolute(2e-6));
        got_t.assert_approx_eq::<f32>(&want, Tolerance::absolute(2e-6));
    }

    #[test]
    fn attention_softmax_matches_burn_with_and_without_bias() {
        let device = Device::flex();
        let scores = random([2, 3, 5, 5], 11);
        let pad = TensorData::new(
            vec![0.0f32, 0.0, 0.0, -1.0e9, -1.0e9, 0.0, 0.0, 0.0, 0.0, 0.0],
            [2, 1, 1, 5],
        );
        let bias = Tensor::<4>::from_data(pad, &device);
        for bias in [None, Some(bias)] {
            let want = burn_softmax(scores.clone(), 5.657, bias.clone()).into_data();
            attention_softmax(scores.clone(), 5.657, bias)
                .into_data()
                .assert_approx_eq::<f32>(&want, Tolerance::absolute(1e-6));
        }
        // Rows sum to one and padded keys get no weight.
        let probs = attention_softmax(
            scores,
            1.0,
            Some(Tensor::from_data(
                TensorData::new(
                    vec![0.0f32, -1.0e9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                    [2, 1, 1, 5],
                ),
                &device,
            )),
        );
        let sums = probs.clone().sum_dim(3).into_data();
        sums.assert_approx_eq::<f32>(
            &TensorData::new(vec![1.0f32; 30], [2, 3, 5, 1]),
            Tolerance::absolute(1e-6),
        );
        let masked = probs.slice([0..1, 0..3, 0..5, 1..2]).into_data();
        masked.assert_eq(&TensorData::new(vec![0.0f32; 15], [1, 3, 5, 1]), false);
    }

    #[test]
    fn max_over_tokens_skips_padding_like_burn() {
        let device = Device::flex();
        let logits = random([3, 4, 37, 1], 3).reshape([3, 4, 37]);
        let pad = Tensor::<2, Bool>::from_data(
            TensorData::new(
                vec![
                    false, false, true, true, false, false, false, false, true, true, true, true,
                ],
                [3, 4],
            ),
            &device,
        );
        for pad in [None, Some(pad)] {
            let want = burn_max_over_tokens(logits.clone(), pad.clone()).into_data();
            max_over_tokens(logits.clone(), pad)
                .into_data()
                .assert_eq(&want, true);
        }
        // A transposed view pools the same as its contiguous copy.
        let t = logits.clone().swap_dims(1, 2);
        let want = burn_max_over_tokens(logits, None).into_data();
        max_over_tokens(t.swap_dims(1, 2), None)
            .into_data()
            .assert_eq(&want, true);
    }

    #[test]
    fn fused_decoder_pools_like_the_matrix_product() {
        let device = Device::flex();
        // Odd sizes: an odd vocabulary (a last row without a partner),
        // token counts that leave short blocks, a fully padded row, and a
        // width that is not a multiple of 4 (burn's product then).
        for (b, l, h, vocab) in [
            (3, 7, 132, 11),
            (1, 9, 128, 64),
            (2, 1, 4, 5),
            (2, 3, 130, 7),
        ] {
            let states = random([b, l, h, 1], 13).reshape([b, l, h]);
            let decoder = random([vocab, h, 1, 1], 17).reshape([vocab, h]);
            let mask: Vec<bool> = (0..b * l).map(|i| i / l == 1 || (i % l) % 3 == 2).collect();
            let pad = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, l]), &device);
            for pad in [None, Some(pad)] {
                let want =
                    burn_decode_max(states.clone(), decoder.clone(), pad.clone()).into_data();
                let got = fused_decode_max(states.clone(), decoder.clone(), pad.clone());
                assert_eq!(got.dims(), [b, vocab]);
                let (got, want) = (
                    got.into_data().try_to_vec::<f32>().expect("f32"),
                    want.try_to_vec::<f32>().expect("f32"),
                );
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    if w.is_infinite() {
                        assert_eq!(g, w, "{b}x{l}x{h}, vocab {vocab}: entry {i}");
                    } else {
                        assert!(
                            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                            "{b}x{l}x{h}: entry {i}: {g} vs {w}"
                        );
                    }
                }
                // The padded batch row (1) pools to −∞ only when padded.
                if b > 1 {
                    assert_eq!(got[vocab].is_infinite(), pad.is_some());
                }
            }
        }
        // A transposed (strided) decoder view is made contiguous first.
        let states = random([1, 5, 8, 1], 3).reshape([1, 5, 8]);
        let decoder_t = random([8, 6, 1, 1], 4).reshape([8, 6]);
        let want = burn_decode_max(states.clone(), decoder_t.clone().transpose(), None).into_data();
        fused_decode_max(states, decoder_t.transpose(), None)
            .into_data()
            .assert_approx_eq::<f32>(&want, Tolerance::absolute(1e-4));
    }

    #[test]
    fn other_shapes_of_bias_fall_back_to_burn() {
        let scores = random([2, 3, 4, 4], 5);
        let bias = random([1, 3, 4, 4], 6);
        let want = burn_softmax(scores.clone(), 2.0, Some(bias.clone())).into_data();
        attention_softmax(scores, 2.0, Some(bias))
            .into_data()
            .assert_approx_eq::<f32>(&want, Tolerance::absolute(1e-6));
    }
}
