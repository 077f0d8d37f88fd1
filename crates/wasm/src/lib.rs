//! rlrag in the browser: a thin wasm-bindgen layer over
//! [`rlrag_retriever::engine::Engine`].
//!
//! JavaScript does the fetching and hands over bytes: a model is the three
//! files the trainer writes (`model.safetensors`, `config.json`,
//! `tokenizer.json`). Every method returns a Promise that rejects with an
//! `Error` whose message says what went wrong; nothing here panics.
//! The npm package in `web/` wraps this module (URLs, a Web Worker,
//! persistence in the Origin Private File System).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use burn::tensor::Device;
use rlrag_encoder::{Encoder, Prepared};
use rlrag_retriever::engine::{self, EngineModels, EngineOptions, SearchMode};
use rlrag_retriever::hash::fingerprint;
use rlrag_retriever::{Augmentation, Document, Reranker, TermWeight};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

mod route;
pub use route::RouterModel;

/// Runs when the module is instantiated: a panic (a bug: nothing here should
/// panic) is written to the console before the module aborts, so it can be
/// reported.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("rlrag panicked: {info}").into());
    }));
}

/// One model's files, as bytes; `config.json` and `tokenizer.json` may come
/// first ([`ModelBytes::prepare`]) and the weights later
/// ([`ModelBytes::set_weights`]), so that the small files are read while the
/// large one downloads.
#[wasm_bindgen]
pub struct ModelBytes {
    weights: Option<Vec<u8>>,
    config: Vec<u8>,
    tokenizer: Vec<u8>,
    prepared: Option<Prepared>,
}

#[wasm_bindgen]
impl ModelBytes {
    /// `model.safetensors`, `config.json` and `tokenizer.json` of a model directory.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: Vec<u8>, config: Vec<u8>, tokenizer: Vec<u8>) -> ModelBytes {
        ModelBytes {
            weights: Some(weights),
            config,
            tokenizer,
            prepared: None,
        }
    }

    /// `config.json` and `tokenizer.json` alone, read and checked now (an
    /// error names what is wrong with them); the weights follow with
    /// `setWeights`.
    pub fn prepare(config: Vec<u8>, tokenizer: Vec<u8>) -> Result<ModelBytes, JsError> {
        let prepared = Prepared::parse(&config, &tokenizer).map_err(js_error)?;
        Ok(ModelBytes {
            weights: None,
            config,
            tokenizer,
            prepared: Some(prepared),
        })
    }

    /// The `model.safetensors` bytes of a prepared model.
    #[wasm_bindgen(js_name = setWeights)]
    pub fn set_weights(&mut self, weights: Vec<u8>) {
        self.weights = Some(weights);
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    /// `auto` (WebGPU when an adapter is granted, else CPU), `webgpu` or `cpu`.
    device: Option<String>,
    /// Encode documents for the `sparse` mode (default true).
    sparse_vectors: Option<bool>,
    /// BoT re-rank depth (default 0).
    rerank_m: Option<usize>,
}

impl Options {
    fn parse(value: JsValue) -> Result<Self, JsError> {
        if value.is_undefined() || value.is_null() {
            return Ok(Self::default());
        }
        serde_wasm_bindgen::from_value(value).map_err(|e| input_error("options", &e))
    }

    fn engine(&self) -> EngineOptions {
        let d = EngineOptions::default();
        EngineOptions {
            sparse_vectors: self.sparse_vectors.unwrap_or(d.sparse_vectors),
            rerank_m: self.rerank_m.unwrap_or(d.rerank_m),
            ..d
        }
    }
}

/// A search result as the page gets it: the engine's hit with its passage.
#[derive(Serialize)]
struct JsHit<'a> {
    id: &'a str,
    score: f32,
    title: &'a str,
    text: &'a str,
    terms: &'a [TermWeight],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsDocument {
    id: String,
    text: String,
    #[serde(default)]
    title: Option<String>,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A conversion error of JS input, without serde-wasm-bindgen's `Error: ` prefix.
fn input_error(what: &str, e: &serde_wasm_bindgen::Error) -> JsError {
    let text = e.to_string();
    JsError::new(&format!(
        "{what}: {}",
        text.strip_prefix("Error: ").unwrap_or(&text)
    ))
}

/// The burn device for a `device` option, and the backend's name.
async fn select_device(choice: &str) -> Result<(Device, &'static str), JsError> {
    match choice {
        "cpu" => Ok((Device::flex(), "cpu")),
        "webgpu" => webgpu().await.map(|d| (d, "webgpu")),
        "auto" => Ok(match webgpu().await {
            Ok(d) => (d, "webgpu"),
            Err(_) => (Device::flex(), "cpu"),
        }),
        other => Err(JsError::new(&format!(
            "unknown device `{other}` (auto, webgpu or cpu)"
        ))),
    }
}

/// A WebGPU device, once per page (burn refuses a second initialisation).
#[cfg(all(target_arch = "wasm32", not(rlrag_cpu_only)))]
async fn webgpu() -> Result<Device, JsError> {
    thread_local! {
        static DEVICE: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
    }
    if let Some(known) = DEVICE.with(|d| d.borrow().clone()) {
        return known.map_err(|e| JsError::new(&e));
    }
    // wgpu panics where `navigator.gpu` is missing (Node, old browsers,
    // insecure contexts): look first.
    let gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .ok()
        .filter(|n| n.is_object())
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()).ok())
        .is_some_and(|g| g.is_object());
    if !gpu {
        return Err(JsError::new(
            "no WebGPU here (navigator.gpu is missing: Node, an older browser, or a page not served over https/localhost)",
        ));
    }
    let result = Device::wgpu_options()
        .graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu)
        .init_async()
        .await
        .map_err(|e| format!("no WebGPU adapter: {e}"));
    DEVICE.with(|d| *d.borrow_mut() = Some(result.clone()));
    result.map_err(|e| JsError::new(&e))
}

/// Outside a browser there is no WebGPU.
#[cfg(not(target_arch = "wasm32"))]
async fn webgpu() -> Result<Device, JsError> {
    Err(JsError::new("WebGPU is only available in browsers"))
}

/// The CPU-only package (built with `--cfg rlrag_cpu_only`) has no WebGPU backend.
#[cfg(all(target_arch = "wasm32", rlrag_cpu_only))]
async fn webgpu() -> Result<Device, JsError> {
    Err(JsError::new(
        "this rlrag build has no WebGPU backend (the CPU-only package); use device: 'cpu' or 'auto'",
    ))
}

fn load(bytes: ModelBytes, device: &Device) -> Result<(Arc<Encoder>, u64), JsError> {
    let weights = bytes.weights.ok_or_else(|| {
        JsError::new("the model's weights were never given (ModelBytes.setWeights)")
    })?;
    let print = fingerprint(&[&weights, &bytes.config, &bytes.tokenizer]);
    let prepared = match bytes.prepared {
        Some(p) => p,
        None => Prepared::parse(&bytes.config, &bytes.tokenizer).map_err(js_error)?,
    };
    let encoder = prepared.load(weights, device).map_err(js_error)?;
    Ok((Arc::new(encoder), print))
}

async fn models(
    sparse: ModelBytes,
    dense: Option<ModelBytes>,
    device: &str,
) -> Result<(EngineModels, &'static str), JsError> {
    let (device, backend) = select_device(device).await?;
    let (sparse, sparse_fingerprint) = load(sparse, &device)?;
    let dense = dense.map(|d| load(d, &device)).transpose()?;
    Ok((
        EngineModels {
            sparse,
            sparse_fingerprint,
            dense,
        },
        backend,
    ))
}

/// A corpus, its indexes and the models that search it.
#[wasm_bindgen]
pub struct Engine {
    inner: Rc<RefCell<engine::Engine>>,
    backend: &'static str,
    /// Documents held after the last finished call: `size` answers from it,
    /// also while a call holds the engine across its awaits.
    size: Rc<Cell<usize>>,
}

impl Engine {
    fn wrap(engine: engine::Engine, backend: &'static str) -> Self {
        let size = Rc::new(Cell::new(engine.len()));
        Self {
            inner: Rc::new(RefCell::new(engine)),
            backend,
            size,
        }
    }
}

fn busy() -> JsError {
    JsError::new("the engine is busy with another call; await it first")
}

#[wasm_bindgen]
impl Engine {
    /// An empty engine: the sparse model (required), an optional dense model,
    /// and options `{device, sparseVectors, rerankM}`.
    pub async fn create(
        sparse: ModelBytes,
        dense: Option<ModelBytes>,
        options: JsValue,
    ) -> Result<Engine, JsError> {
        let options = Options::parse(options)?;
        let device = options.device.as_deref().unwrap_or("auto");
        let (models, backend) = models(sparse, dense, device).await?;
        let engine = engine::Engine::new(models, options.engine()).map_err(js_error)?;
        Ok(Engine::wrap(engine, backend))
    }

    /// An engine from [`Engine::export_index`] bytes and the same model files.
    ///
    /// An index the checks refuse (foreign, damaged, another version or
    /// other models) rejects with an `Error` named `RlragIndexError`; any
    /// other failure (the options, the device, the models) with a plain
    /// `Error`, so a caller knows which saves to throw away.
    #[wasm_bindgen(js_name = importIndex)]
    pub async fn import_index(
        sparse: ModelBytes,
        dense: Option<ModelBytes>,
        bytes: Vec<u8>,
        options: JsValue,
    ) -> Result<Engine, JsValue> {
        let options = Options::parse(options)?;
        if options.sparse_vectors.is_some() || options.rerank_m.is_some() {
            return Err(JsError::new(
                "importIndex takes only `device`: the index keeps its own settings",
            )
            .into());
        }
        let device = options.device.as_deref().unwrap_or("auto");
        let (models, backend) = models(sparse, dense, device).await?;
        let engine = engine::Engine::import(models, &bytes).map_err(|e| {
            let refused = js_sys::Error::new(&e.to_string());
            refused.set_name("RlragIndexError");
            JsValue::from(refused)
        })?;
        Ok(Engine::wrap(engine, backend))
    }

    /// `webgpu` or `cpu`: where the encoders run.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.into()
    }

    /// Documents held (as of the last finished call: an `addDocuments` in
    /// progress counts once it has finished).
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.size.get()
    }

    /// The search modes this engine can answer.
    #[wasm_bindgen(getter)]
    pub fn modes(&self) -> Result<Vec<String>, JsError> {
        let engine = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(engine
            .modes()
            .iter()
            .map(|m| m.name().to_string())
            .collect())
    }

    /// Index `[{id, text, title?}]` (replacing documents with the same id);
    /// `onProgress(stage, done, total)` is called after each chunk of
    /// tokenizing (`tokens`) and of encoding (`sparse`, `dense`), between
    /// which the call hands the event loop back.
    #[wasm_bindgen(js_name = addDocuments)]
    // The borrow is held across the encoder's awaits on purpose: `try_borrow*`
    // turns an overlapping call into a "busy" rejection, never a panic.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn add_documents(
        &self,
        docs: JsValue,
        on_progress: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let size = self.size.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let docs: Vec<JsDocument> =
                serde_wasm_bindgen::from_value(docs).map_err(|e| input_error("documents", &e))?;
            let docs: Vec<Document> = docs
                .into_iter()
                .map(|d| Document::new(d.id, d.title.unwrap_or_default(), d.text))
                .collect();
            let mut engine = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut report = |p: engine::Progress| {
                if let Some(f) = &on_progress {
                    // A throwing callback must not stop indexing.
                    let _ = f.call3(
                        &JsValue::NULL,
                        &JsValue::from_str(p.stage),
                        &JsValue::from(p.done as u32),
                        &JsValue::from(p.total as u32),
                    );
                }
            };
            let result = engine.add_documents(&docs, &mut report).await;
            size.set(engine.len());
            result.map_err(js_error)?;
            Ok(JsValue::from(engine.len() as u32))
        })
    }

    /// Remove documents by id; returns how many were removed.
    #[wasm_bindgen(js_name = removeDocuments)]
    pub fn remove_documents(&self, ids: Vec<String>) -> Result<usize, JsError> {
        let mut engine = self.inner.try_borrow_mut().map_err(|_| busy())?;
        let removed = engine.remove_documents(&ids);
        self.size.set(engine.len());
        Ok(removed)
    }

    /// Load the cross-encoder (a `trainer train-reranker` directory's
    /// files) that `search` re-scores its top candidates with, on the
    /// engine's device; `undefined` removes it.
    #[wasm_bindgen(js_name = setReranker)]
    pub fn set_reranker(&self, model: Option<ModelBytes>) -> Result<(), JsError> {
        let mut engine = self.inner.try_borrow_mut().map_err(|_| busy())?;
        let reranker = match model {
            Some(bytes) => {
                let (encoder, _) = load(bytes, engine.device())?;
                Some(Reranker::new(encoder).map_err(js_error)?)
            }
            None => None,
        };
        engine.set_reranker(reranker);
        Ok(())
    }

    /// Whether a reranker is loaded.
    #[wasm_bindgen(getter, js_name = hasReranker)]
    pub fn has_reranker(&self) -> Result<bool, JsError> {
        let engine = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(engine.reranker().is_some())
    }

    /// The top `k` documents for `query` in `mode` (`sparse`, `bot`,
    /// `dense`, `bm25` or `hybrid`): `[{id, score, title, text, terms:
    /// [{term, weight}]}]`; `explain` false leaves `terms` empty (and spares
    /// BM25 and dense the query's sparse encoding); `rerank` > 0 re-scores
    /// the top `rerank` with the reranker (`setReranker`), whose logit
    /// becomes their score; `augment`, a hypothetical document written for
    /// the query, is mixed into the first stage's query at `augment_weight`
    /// (Reinforced-IR's query augmentation).
    #[allow(clippy::await_holding_refcell_ref)] // as in `add_documents`
    #[allow(clippy::too_many_arguments)] // the binding's flat signature
    pub fn search(
        &self,
        query: String,
        k: usize,
        mode: String,
        explain: bool,
        rerank: usize,
        augment: Option<String>,
        augment_weight: f32,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mode: SearchMode = mode.parse().map_err(js_error)?;
            let engine = inner.try_borrow().map_err(|_| busy())?;
            let augmentation = augment.as_deref().map(|document| Augmentation {
                document,
                weight: augment_weight,
            });
            let hits = engine
                .search_augmented(&query, augmentation, k, mode, explain, rerank)
                .await
                .map_err(js_error)?;
            let page: Vec<JsHit<'_>> = hits
                .iter()
                .filter_map(|h| {
                    let doc = engine.document(&h.id)?;
                    Some(JsHit {
                        id: &h.id,
                        score: h.score,
                        title: &doc.title,
                        text: &doc.text,
                        terms: &h.terms,
                    })
                })
                .collect();
            serde_wasm_bindgen::to_value(&page).map_err(|e| js_error(e).into())
        })
    }

    /// Route `question` through the router (KunLunBaizeRAG / RAG-R1) with a
    /// fixed policy: this engine is the local source, `network` an optional
    /// async callback `({queries, k}) => ({hits: [[{id, title, text,
    /// score}]]})`; options `{policy: 'local' | 'network' | 'both' |
    /// 'multihop', localMode, timeoutMs, k, maxHops}`; `writer` an optional
    /// async callback `({question, evidence}) => string[] | string` that
    /// writes `decompose` sub-queries (an LLM); `augment` an optional async
    /// callback `({query}) => string` that writes a hypothetical document
    /// mixed into every local query at option `augmentWeight` (default
    /// 0.2). Resolves to `{evidence, trace, cost}`.
    pub fn route(
        &self,
        question: String,
        network: Option<js_sys::Function>,
        writer: Option<js_sys::Function>,
        augment: Option<js_sys::Function>,
        options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let callbacks = route::Callbacks {
            network,
            writer,
            augment,
        };
        wasm_bindgen_futures::future_to_promise(route::route(
            inner, question, callbacks, None, options,
        ))
    }

    /// As [`Engine::route`], decided by a trained [`RouterModel`] (policy `learned`).
    #[wasm_bindgen(js_name = routeLearned)]
    pub fn route_learned(
        &self,
        question: String,
        model: &RouterModel,
        network: Option<js_sys::Function>,
        writer: Option<js_sys::Function>,
        augment: Option<js_sys::Function>,
        options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let model = Some(model.shared());
        let callbacks = route::Callbacks {
            network,
            writer,
            augment,
        };
        wasm_bindgen_futures::future_to_promise(route::route(
            inner, question, callbacks, model, options,
        ))
    }

    /// The corpus and every index as one versioned, checksummed file.
    #[wasm_bindgen(js_name = exportIndex)]
    pub fn export_index(&self) -> Result<Vec<u8>, JsError> {
        let engine = self.inner.try_borrow().map_err(|_| busy())?;
        engine.export().map_err(js_error)
    }
}
