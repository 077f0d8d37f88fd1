//! llama.cpp's model file, GGUF (versions 2 and 3, little-endian): the
//! header, the metadata, the tensor table, and every tensor dequantised to
//! `f32`.
//!
//! [`Gguf::parse`] reads the header and tables from the file's bytes and
//! checks everything against them before allocating: string and array
//! lengths against the bytes left, dimensions against overflow, every
//! tensor's byte range inside the data section, aligned and not
//! overlapping another. [`Gguf::tensor`] then dequantises one tensor from
//! the same bytes. The block formats follow ggml's (`ggml-common.h`) and are
//! decoded with the arithmetic of the `gguf` Python package's
//! `gguf.quants.dequantize` (f32, no fused multiply-add), which the tests
//! compare against bit for bit (`scripts/reference/gguf_golden.py`).

use std::collections::BTreeMap;

use crate::GeneratorError;

/// The magic bytes.
const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// The longest tensor name, in bytes (ggml's `GGML_MAX_NAME` less its NUL).
pub const MAX_NAME: usize = 63;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `UINT8`.
    U8(u8),
    /// `INT8`.
    I8(i8),
    /// `UINT16`.
    U16(u16),
    /// `INT16`.
    I16(i16),
    /// `UINT32`.
    U32(u32),
    /// `INT32`.
    I32(i32),
    /// `FLOAT32`.
    F32(f32),
    /// `BOOL`.
    Bool(bool),
    /// `STRING` (UTF-8).
    String(String),
    /// `ARRAY` of values of one type (never arrays of arrays).
    Array(Vec<Value>),
    /// `UINT64`.
    U64(u64),
    /// `INT64`.
    I64(i64),
    /// `FLOAT64`.
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, from any integer type that holds
    /// it (files write counts as `UINT32` or `UINT64`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, from `FLOAT32` or `FLOAT64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// How a tensor's elements are stored: ggml's types that model files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of 32: an f16 scale, 4-bit values offset by 8.
    Q4_0,
    /// Blocks of 32: f16 scale and minimum, 4-bit values.
    Q4_1,
    /// Blocks of 32: an f16 scale, 5-bit values offset by 16.
    Q5_0,
    /// Blocks of 32: f16 scale and minimum, 5-bit values.
    Q5_1,
    /// Blocks of 32: an f16 scale, 8-bit values.
    Q8_0,
    /// Super-blocks of 256: 2-bit values, 4-bit scales and minimums.
    Q2K,
    /// Super-blocks of 256: 3-bit values, 6-bit scales.
    Q3K,
    /// Super-blocks of 256: 4-bit values, 6-bit scales and minimums.
    Q4K,
    /// Super-blocks of 256: 5-bit values, 6-bit scales and minimums.
    Q5K,
    /// Super-blocks of 256: 6-bit values, 8-bit scales.
    Q6K,
}

impl TensorType {
    /// The type with ggml's id `id`; `Err` carries ggml's name for an id
    /// this reader does not decode.
    pub fn from_id(id: u32) -> Result<Self, &'static str> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::Bf16,
            9 => return Err("Q8_1"),
            15 => return Err("Q8_K"),
            16..=23 | 29 => return Err("an IQ quantisation"),
            24..=27 => return Err("an integer type"),
            28 => return Err("F64"),
            34 | 35 => return Err("a ternary quantisation"),
            _ => return Err("unknown"),
        })
    }

    /// ggml's id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q2K => 10,
            Self::Q3K => 11,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::Bf16 => 30,
        }
    }

    /// Elements per block.
    pub fn block_elements(self) -> u64 {
        match self {
            Self::F32 | Self::F16 | Self::Bf16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q2K => 84,
            Self::Q3K => 110,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
        }
    }
}

/// One tensor of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Its name (`blk.0.attn_q.weight`).
    pub name: String,
    /// ggml's dimensions: `dims[0]` varies fastest (a row's length), so a
    /// weight of `dims = [n_in, n_out]` is `n_out` rows of `n_in`.
    pub dims: Vec<u64>,
    /// How its elements are stored.
    pub ty: TensorType,
    /// Its bytes in the file: `start..start + len` (absolute offsets).
    pub start: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A GGUF file's header and tables (the tensors' bytes stay in the file).
#[derive(Debug, Clone)]
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts.
    pub data_start: u64,
    /// Its alignment.
    pub alignment: u64,
}

/// A cursor over the file's bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn malformed(offset: usize, reason: impl Into<String>) -> GeneratorError {
    GeneratorError::Gguf {
        offset: offset as u64,
        reason: reason.into(),
    }
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GeneratorError> {
        if n > self.remaining() {
            return Err(malformed(
                self.at,
                format!(
                    "the file ends inside {what} ({n} bytes wanted, {} left)",
                    self.remaining()
                ),
            ));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GeneratorError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GeneratorError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GeneratorError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit in the bytes left at `min_size` bytes per item.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize, GeneratorError> {
        let at = self.at;
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| {
            n.checked_mul(min_size)
                .is_some_and(|b| b <= self.remaining())
        });
        fits.ok_or_else(|| {
            malformed(
                at,
                format!(
                    "{what} is {n}, more than the {} bytes left can hold",
                    self.remaining()
                ),
            )
        })
    }

    fn string(&mut self, what: &str) -> Result<String, GeneratorError> {
        let n = self.count(what, 1)?;
        let at = self.at;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed(at, format!("{what} is not UTF-8")))
    }

    /// A value of type `ty` (arrays only at the top level: `nested` false).
    fn value(&mut self, ty: u32, nested: bool) -> Result<Value, GeneratorError> {
        let at = self.at;
        Ok(match ty {
            0 => Value::U8(self.array::<1>("a value")?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array("a value")?)),
            2 => Value::U16(u16::from_le_bytes(self.array("a value")?)),
            3 => Value::I16(i16::from_le_bytes(self.array("a value")?)),
            4 => Value::U32(u32::from_le_bytes(self.array("a value")?)),
            5 => Value::I32(i32::from_le_bytes(self.array("a value")?)),
            6 => Value::F32(f32::from_le_bytes(self.array("a value")?)),
            7 => match self.array::<1>("a value")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(malformed(at, format!("a BOOL value is {b} (0 or 1)"))),
            },
            8 => Value::String(self.string("a string value")?),
            9 if nested => return Err(malformed(at, "an array of arrays")),
            9 => {
                let elem = self.u32("an array's element type")?;
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => return Err(malformed(at, "an array of arrays")),
                    t => return Err(malformed(at, format!("unknown array element type {t}"))),
                };
                let n = self.count("an array's length", min_size)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, true)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(u64::from_le_bytes(self.array("a value")?)),
            11 => Value::I64(i64::from_le_bytes(self.array("a value")?)),
            12 => Value::F64(f64::from_le_bytes(self.array("a value")?)),
            t => return Err(malformed(at, format!("unknown value type {t}"))),
        })
    }
}

impl Gguf {
    /// Read and check the header and tables of a GGUF file held in
    /// `bytes` (the whole file).
    pub fn parse(bytes: &[u8]) -> Result<Self, GeneratorError> {
        let mut r = Reader { bytes, at: 0 };
        if r.array::<4>("the magic")? != *MAGIC {
            return Err(malformed(0, "not a GGUF file (the magic is not `GGUF`)"));
        }
        let version = r.u32("the version")?;
        if version & 0xFFFF == 0 && version != 0 {
            return Err(malformed(4, "a big-endian GGUF file (not supported)"));
        }
        if !(2..=3).contains(&version) {
            return Err(malformed(
                4,
                format!("version {version} (2 and 3 are read)"),
            ));
        }
        // At least 8 bytes per tensor (its name's length) and per pair.
        let tensor_count = r.count("the tensor count", 8)?;
        let kv_count = r.count("the metadata count", 8)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let at = r.at;
            let key = r.string("a metadata key")?;
            if key.is_empty() {
                return Err(malformed(at, "an empty metadata key"));
            }
            let ty = r.u32("a metadata type")?;
            let value = r.value(ty, false)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(malformed(at, format!("metadata key `{key}` appears twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(v) => {
                return Err(malformed(
                    r.at,
                    format!("general.alignment is {v:?} (a power of two, as UINT32)"),
                ));
            }
        };
        let mut raw = Vec::with_capacity(tensor_count);
        let mut names = std::collections::HashSet::new();
        for _ in 0..tensor_count {
            let at = r.at;
            let name = r.string("a tensor name")?;
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(malformed(
                    at,
                    format!("tensor name `{name}` (1 to {MAX_NAME} bytes)"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(malformed(at, format!("tensor `{name}` appears twice")));
            }
            let n_dims = r.u32("a tensor's dimension count")? as usize;
            if n_dims > MAX_DIMS {
                return Err(malformed(
                    at,
                    format!("tensor `{name}` has {n_dims} dimensions (at most {MAX_DIMS})"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(r.u64("a tensor dimension")?);
            }
            let type_id = r.u32("a tensor type")?;
            let offset = r.u64("a tensor offset")?;
            let ty =
                TensorType::from_id(type_id).map_err(|known| GeneratorError::UnsupportedType {
                    tensor: name.clone(),
                    type_id,
                    name: known,
                })?;
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&e| e <= i64::MAX as u64)
                .ok_or_else(|| malformed(at, format!("tensor `{name}`: {dims:?} overflows")))?;
            let row = dims.first().copied().unwrap_or(1);
            if row % ty.block_elements() != 0 {
                return Err(malformed(
                    at,
                    format!(
                        "tensor `{name}`: rows of {row} do not divide into blocks of {}",
                        ty.block_elements()
                    ),
                ));
            }
            let len = (elements / ty.block_elements())
                .checked_mul(ty.block_bytes())
                .ok_or_else(|| malformed(at, format!("tensor `{name}` is too large")))?;
            if offset % alignment != 0 {
                return Err(malformed(
                    at,
                    format!("tensor `{name}` starts at {offset}, not a multiple of {alignment}"),
                ));
            }
            raw.push((at, name, dims, ty, offset, len));
        }
        let data_start = (r.at as u64).next_multiple_of(alignment);
        let file_len = bytes.len() as u64;
        if data_start > file_len && tensor_count > 0 {
            return Err(malformed(r.at, "the file ends before its data section"));
        }
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(raw.len());
        for (at, name, dims, ty, offset, len) in raw {
            let start = data_start.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(len));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(malformed(
                    at,
                    format!("tensor `{name}`: its offset overflows"),
                ));
            };
            if end > file_len {
                return Err(malformed(
                    at,
                    format!("tensor `{name}` ends at byte {end}, past the file's {file_len}"),
                ));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                start,
                len,
            });
        }
        let mut by_start: Vec<&TensorInfo> = tensors.iter().collect();
        by_start.sort_by_key(|t| t.start);
        for pair in by_start.windows(2) {
            if pair[0].start + pair[0].len > pair[1].start {
                return Err(malformed(
                    pair[1].start as usize,
                    format!("tensors `{}` and `{}` overlap", pair[0].name, pair[1].name),
                ));
            }
        }
        Ok(Self {
            version,
            metadata,
            tensors,
            data_start,
            alignment,
        })
    }

    /// The tensor called `name`.
    pub fn info(&self, name: &str) -> Result<&TensorInfo, GeneratorError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GeneratorError::MissingTensor {
                name: name.to_owned(),
            })
    }

    /// The tensor called `name`, dequantised from `bytes` (the file
    /// [`Gguf::parse`] read): its elements in ggml order (`dims[0]`
    /// fastest).
    pub fn tensor(&self, bytes: &[u8], name: &str) -> Result<Vec<f32>, GeneratorError> {
        let info = self.info(name)?;
        let data = usize::try_from(info.start)
            .ok()
            .zip(usize::try_from(info.start + info.len).ok())
            .and_then(|(s, e)| bytes.get(s..e))
            .ok_or_else(|| {
                malformed(
                    bytes.len(),
                    format!("tensor `{name}` lies past the end of the bytes given"),
                )
            })?;
        let elements = usize::try_from(info.elements())
            .map_err(|_| malformed(0, format!("tensor `{name}` is too large")))?;
        let mut out = vec![0.0f32; elements];
        dequantize(info.ty, data, &mut out);
        Ok(out)
    }
}

/// IEEE binary16 to f32, exactly.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x3FF);
    match exp {
        0 => {
            // Zero or subnormal: man · 2^-24, exact in f32.
            let v = man as f32 * f32::from_bits(0x3380_0000);
            if sign != 0 { -v } else { v }
        }
        31 => f32::from_bits(sign | 0x7F80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Dequantise `data` (whole blocks of `ty`) into `out` (as many elements
/// as the blocks hold). The caller sizes both from the tensor table.
fn dequantize(ty: TensorType, data: &[u8], out: &mut [f32]) {
    let (n, size) = (ty.block_elements() as usize, ty.block_bytes() as usize);
    for (b, y) in data.chunks_exact(size).zip(out.chunks_exact_mut(n)) {
        match ty {
            TensorType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            TensorType::F16 => y[0] = half(b, 0),
            TensorType::Bf16 => {
                y[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
            }
            TensorType::Q4_0 => {
                let d = half(b, 0);
                for j in 0..16 {
                    let q = b[2 + j];
                    y[j] = d * (f32::from(q & 0xF) - 8.0);
                    y[j + 16] = d * (f32::from(q >> 4) - 8.0);
                }
            }
            TensorType::Q4_1 => {
                let (d, m) = (half(b, 0), half(b, 2));
                for j in 0..16 {
                    let q = b[4 + j];
                    y[j] = d * f32::from(q & 0xF) + m;
                    y[j + 16] = d * f32::from(q >> 4) + m;
                }
            }
            TensorType::Q5_0 | TensorType::Q5_1 => {
                let (d, m, qh, qs) = if ty == TensorType::Q5_0 {
                    (half(b, 0), None, 2, 6)
                } else {
                    (half(b, 0), Some(half(b, 2)), 4, 8)
                };
                let qh = u32::from_le_bytes([b[qh], b[qh + 1], b[qh + 2], b[qh + 3]]);
                for j in 0..16 {
                    let q = b[qs + j];
                    let lo = u32::from(q & 0xF) | (((qh >> j) & 1) << 4);
                    let hi = u32::from(q >> 4) | (((qh >> (j + 16)) & 1) << 4);
                    match m {
                        None => {
                            y[j] = d * (lo as f32 - 16.0);
                            y[j + 16] = d * (hi as f32 - 16.0);
                        }
                        Some(m) => {
                            y[j] = d * lo as f32 + m;
                            y[j + 16] = d * hi as f32 + m;
                        }
                    }
                }
            }
            TensorType::Q8_0 => {
                let d = half(b, 0);
                for j in 0..32 {
                    y[j] = d * f32::from(b[2 + j] as i8);
                }
            }
            TensorType::Q2K => {
                let (sc, qs) = (&b[0..16], &b[16..80]);
                let (d, dmin) = (half(b, 80), half(b, 82));
                for (e, out) in y.iter_mut().enumerate() {
                    let (h, j, l) = (e / 128, (e / 32) % 4, e % 32);
                    let q = (qs[32 * h + l] >> (2 * j)) & 3;
                    let s = sc[e / 16];
                    *out = (d * f32::from(s & 0xF)) * f32::from(q) - (dmin * f32::from(s >> 4));
                }
            }
            TensorType::Q3K => {
                let (hm, qs, s) = (&b[0..32], &b[32..96], &b[96..108]);
                let d = half(b, 108);
                for (e, out) in y.iter_mut().enumerate() {
                    let (h, j, l) = (e / 128, (e / 32) % 4, e % 32);
                    let q2 = i32::from((qs[32 * h + l] >> (2 * j)) & 3);
                    let high = (hm[l] >> (4 * h + j)) & 1;
                    let q = q2 - if high == 1 { 0 } else { 4 };
                    let k = e / 16;
                    let lo = if k < 8 { s[k] & 0xF } else { s[k - 8] >> 4 };
                    let hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
                    let scale = i32::from(lo | (hi << 4)) - 32;
                    *out = (d * scale as f32) * q as f32;
                }
            }
            TensorType::Q4K | TensorType::Q5K => {
                let (d, dmin, s) = (half(b, 0), half(b, 2), &b[4..16]);
                let (qh, qs) = if ty == TensorType::Q4K {
                    (None, &b[16..144])
                } else {
                    (Some(&b[16..48]), &b[48..176])
                };
                for (e, out) in y.iter_mut().enumerate() {
                    let (c, t, l) = (e / 64, (e / 32) % 2, e % 32);
                    let k = 2 * c + t;
                    let (sc, m) = scale_min_k4(k, s);
                    let byte = qs[32 * c + l];
                    let mut q = if t == 0 { byte & 0xF } else { byte >> 4 };
                    if let Some(qh) = qh {
                        q |= ((qh[l] >> k) & 1) << 4;
                    }
                    *out = (d * f32::from(sc)) * f32::from(q) - (dmin * f32::from(m));
                }
            }
            TensorType::Q6K => {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = half(b, 208);
                for (e, out) in y.iter_mut().enumerate() {
                    let (h, j, l) = (e / 128, (e / 32) % 4, e % 32);
                    let lo = ql[64 * h + l + if j % 2 == 1 { 32 } else { 0 }];
                    let lo = if j >= 2 { lo >> 4 } else { lo & 0xF };
                    let hi = (qh[32 * h + l] >> (2 * j)) & 3;
                    let q = i32::from(lo | (hi << 4)) - 32;
                    *out = (d * f32::from(sc[e / 16] as i8)) * q as f32;
                }
            }
        }
    }
}

/// The 6-bit scale and minimum of sub-block `k` (0..8) of a Q4_K / Q5_K
/// super-block, from its 12 packed bytes.
fn scale_min_k4(k: usize, s: &[u8]) -> (u8, u8) {
    if k < 4 {
        (s[k] & 63, s[k + 4] & 63)
    } else {
        (
            (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4),
            (s[k + 4] >> 4) | ((s[k] >> 6) << 4),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn golden_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/gguf")
    }

    /// The small GGUF file gguf-py wrote (`scripts/reference/gguf_golden.py`).
    pub(crate) fn tiny_file() -> Vec<u8> {
        std::fs::read(golden_dir().join("tiny.gguf")).unwrap()
    }

    fn golden() -> (Vec<u8>, serde_json::Value) {
        let json = std::fs::read(golden_dir().join("tiny.json")).unwrap();
        (tiny_file(), serde_json::from_slice(&json).unwrap())
    }

    fn same(value: &Value, want: &serde_json::Value) -> bool {
        match (value, want) {
            (Value::Bool(b), serde_json::Value::Bool(w)) => b == w,
            (Value::String(s), serde_json::Value::String(w)) => s == w,
            (Value::Array(items), serde_json::Value::Array(w)) => {
                items.len() == w.len() && items.iter().zip(w).all(|(v, w)| same(v, w))
            }
            (Value::F32(_) | Value::F64(_), serde_json::Value::Number(n)) => {
                value.as_f64() == n.as_f64()
            }
            (_, serde_json::Value::Number(n)) => {
                let int = match *value {
                    Value::I8(v) => Some(i128::from(v)),
                    Value::I16(v) => Some(i128::from(v)),
                    Value::I32(v) => Some(i128::from(v)),
                    Value::I64(v) => Some(i128::from(v)),
                    _ => value.as_u64().map(i128::from),
                };
                let want = n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from));
                int.is_some() && int == want
            }
            _ => false,
        }
    }

    /// Every metadata value and every element of every tensor (one per
    /// block format) equals what the `gguf` package reads from a file its
    /// own writer made (`scripts/reference/gguf_golden.py`), bit for bit.
    #[test]
    fn reads_what_gguf_py_wrote_bit_for_bit() {
        let (bytes, want) = golden();
        let file = Gguf::parse(&bytes).unwrap();
        assert_eq!(file.version, 3);
        assert_eq!(file.alignment, DEFAULT_ALIGNMENT);
        assert_eq!(
            file.metadata
                .get("general.architecture")
                .and_then(Value::as_str),
            Some("llama")
        );
        let meta = want["metadata"].as_object().unwrap();
        assert_eq!(meta.len(), 15);
        for (key, w) in meta {
            let v = file.metadata.get(key).unwrap_or_else(|| panic!("no {key}"));
            assert!(same(v, w), "{key}: {v:?} against {w}");
        }
        let tensors = want["tensors"].as_array().unwrap();
        assert_eq!(file.tensors.len(), tensors.len());
        for w in tensors {
            let name = w["name"].as_str().unwrap();
            let info = file.info(name).unwrap();
            let dims: Vec<u64> = w["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(info.dims, dims, "{name}");
            assert_eq!(
                u64::from(info.ty.id()),
                w["type"].as_u64().unwrap(),
                "{name}"
            );
            let got = file.tensor(&bytes, name).unwrap();
            let bits: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
            let want_bits: Vec<u32> = w["bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| u32::try_from(b.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(bits, want_bits, "{name}");
        }
        assert!(matches!(
            file.tensor(&bytes, "t.none"),
            Err(GeneratorError::MissingTensor { .. })
        ));
    }

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_to_f32(0x7C00), f32::INFINITY);
        assert!(f16_to_f32(0x7E00).is_nan());
    }

    /// Every prefix of a valid file, and every single-byte change of its
    /// header and tables, is refused with an error or read consistently:
    /// never a panic, never a tensor outside the bytes.
    #[test]
    fn cut_or_damaged_files_are_refused_cleanly() {
        let (bytes, _) = golden();
        let whole = Gguf::parse(&bytes).unwrap();
        let data_start = whole.data_start as usize;
        for n in 0..bytes.len() {
            if let Ok(file) = Gguf::parse(&bytes[..n]) {
                // Only cuts inside the last tensor's padding can still read.
                assert!(n >= data_start, "a cut at {n} read");
                for t in &file.tensors {
                    file.tensor(&bytes[..n], &t.name).unwrap();
                }
            }
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut damaged = bytes.clone();
            let at = (rng % data_start as u64) as usize;
            damaged[at] = (rng >> 32) as u8;
            if let Ok(file) = Gguf::parse(&damaged) {
                for t in &file.tensors {
                    assert!(t.start + t.len <= damaged.len() as u64);
                    file.tensor(&damaged, &t.name).unwrap();
                }
            }
        }
    }

    /// A small file built by hand: header, one key, one tensor.
    fn file(kv: &[u8], kv_count: u64, tensors: &[u8], tensor_count: u64, data: &[u8]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(tensor_count.to_le_bytes());
        out.extend(kv_count.to_le_bytes());
        out.extend(kv);
        out.extend(tensors);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(data);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u64).to_le_bytes().to_vec();
        out.extend(s.as_bytes());
        out
    }

    fn tensor(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
        let mut out = string(name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
        out
    }

    fn refused(bytes: &[u8], says: &str) {
        match Gguf::parse(bytes) {
            Err(e) => assert!(e.to_string().contains(says), "{e} (wanted `{says}`)"),
            Ok(_) => panic!("accepted; wanted `{says}`"),
        }
    }

    #[test]
    fn each_rule_has_its_error() {
        let f32s = [0u8; 16];
        let ok = file(&[], 0, &tensor("w", &[4], 0, 0), 1, &f32s);
        Gguf::parse(&ok).unwrap();
        refused(b"GGUX", "magic");
        refused(&ok[..3], "ends inside the magic");
        let mut v1 = ok.clone();
        v1[4] = 1;
        refused(&v1, "version 1");
        let mut big_endian = ok.clone();
        big_endian[4..8].copy_from_slice(&3u32.to_be_bytes());
        refused(&big_endian, "big-endian");
        let mut huge = ok.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        refused(&huge, "tensor count");
        let key = |k: &str, ty: u32, v: &[u8]| {
            let mut out = string(k);
            out.extend(ty.to_le_bytes());
            out.extend(v);
            out
        };
        let nested = key("a", 9, &[9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        refused(&file(&nested, 1, &[], 0, &[]), "array of arrays");
        let long_array = key("a", 9, &[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        refused(&file(&long_array, 1, &[], 0, &[]), "array's length");
        let twice = [key("a", 0, &[1]), key("a", 0, &[2])].concat();
        refused(&file(&twice, 2, &[], 0, &[]), "appears twice");
        refused(&file(&key("a", 7, &[2]), 1, &[], 0, &[]), "BOOL");
        refused(
            &file(&key("a", 13, &[]), 1, &[], 0, &[]),
            "unknown value type 13",
        );
        refused(
            &file(
                &key("a", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]),
                1,
                &[],
                0,
                &[],
            ),
            "UTF-8",
        );
        let align = key("general.alignment", 4, &24u32.to_le_bytes());
        refused(&file(&align, 1, &[], 0, &[]), "power of two");
        refused(
            &file(&[], 0, &tensor("w", &[1, 1, 1, 1, 1], 0, 0), 1, &f32s),
            "5 dimensions",
        );
        refused(
            &file(&[], 0, &tensor(&"x".repeat(64), &[4], 0, 0), 1, &f32s),
            "1 to 63 bytes",
        );
        refused(
            &file(&[], 0, &tensor("w", &[8], 0, 0), 1, &f32s),
            "past the file",
        );
        refused(
            &file(&[], 0, &tensor("w", &[4], 0, 8), 1, &f32s),
            "not a multiple of 32",
        );
        refused(
            &file(&[], 0, &tensor("w", &[16], 2, 0), 1, &f32s),
            "blocks of 32",
        );
        refused(
            &file(&[], 0, &tensor("w", &[u64::MAX, 2], 0, 0), 1, &f32s),
            "overflows",
        );
        let two = [tensor("a", &[4], 0, 0), tensor("b", &[4], 0, 0)].concat();
        refused(&file(&[], 0, &two, 2, &[0u8; 32]), "overlap");
        let same = [tensor("a", &[4], 0, 0), tensor("a", &[4], 0, 32)].concat();
        refused(&file(&[], 0, &same, 2, &[0u8; 64]), "appears twice");
        match Gguf::parse(&file(&[], 0, &tensor("w", &[32], 16, 0), 1, &f32s)) {
            Err(GeneratorError::UnsupportedType { type_id: 16, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
