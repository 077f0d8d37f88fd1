//! The router in the browser: the page's engine is the local source, a JS
//! async callback is the network source (`({queries, k}) => Promise<{hits}>`,
//! with a time limit), another optionally writes `decompose` sub-queries (an
//! LLM in the page), and a fixed or learned policy decides.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use js_sys::{Array, Function, Object, Promise, Reflect};
use rlrag_retriever::engine::{self, SearchMode};
use rlrag_router::error::Fault;
use rlrag_router::memory::Confidence;
use rlrag_router::policy::{LearnedDecider, LearnedPolicy, RouterConfig};
use rlrag_router::source::{
    AugmentFuture, Augmenter, SearchRequest, SearchResponse, SourceFuture, check_reply,
};
use rlrag_router::writer::{QueryWriter, WriterFuture, parse_sub_queries};
use rlrag_router::{
    Clock, Decider, FixedPolicy, LocalSource, PipelineConfig, Router, Source, SourceKind,
};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::{busy, input_error, js_error};

/// A trained routing policy (`trainer train-router`'s directory).
#[wasm_bindgen]
pub struct RouterModel {
    inner: Rc<(LearnedPolicy, RouterConfig)>,
}

#[wasm_bindgen]
impl RouterModel {
    /// `model.safetensors` and `config.json` of a router directory (the
    /// policy runs on the CPU: it is a few thousand weights).
    pub fn load(weights: Vec<u8>, config: Vec<u8>) -> Result<RouterModel, JsError> {
        let config = RouterConfig::from_json(&config)
            .map_err(|e| JsError::new(&format!("router config.json: {e}")))?;
        let policy = LearnedPolicy::load(&config, &weights, &Device::flex()).map_err(js_error)?;
        Ok(RouterModel {
            inner: Rc::new((policy, config)),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteOptions {
    /// `local`, `network`, `both`, `multihop`, `decompose` or `learned` (needs a model).
    policy: Option<String>,
    /// How the local engine is searched (default `bm25`).
    local_mode: Option<String>,
    /// Network time limit in milliseconds (default 5000).
    timeout_ms: Option<u32>,
    /// Hits per sub-query (default 10).
    k: Option<usize>,
    /// Hop limit (default 3).
    max_hops: Option<u32>,
    /// The augmenter's document's share of each local query (default 0.2).
    augment_weight: Option<f32>,
}

/// The JS callbacks of a route call.
pub(crate) struct Callbacks {
    /// The network source.
    pub network: Option<Function>,
    /// The sub-query writer.
    pub writer: Option<Function>,
    /// The writer of hypothetical documents for local queries.
    pub augment: Option<Function>,
}

/// The network as a JS async callback.
struct JsSource {
    callback: Function,
    timeout_ms: u32,
}

/// The `decompose` sub-query writer as a JS async callback.
struct JsWriter {
    callback: Function,
    timeout_ms: u32,
}

/// The local queries' hypothetical documents as a JS async callback
/// (`({query}) => string`).
struct JsAugmenter {
    callback: Function,
    timeout_ms: u32,
}

fn message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// A promise that resolves to `sentinel` after `ms` (and the timer id).
fn timer(ms: u32, sentinel: &JsValue) -> Result<(Promise, JsValue), Fault> {
    let global = js_sys::global();
    let set_timeout = Reflect::get(&global, &"setTimeout".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| Fault::Transport {
            detail: "no setTimeout in this JS environment".into(),
        })?;
    let id = Rc::new(RefCell::new(JsValue::UNDEFINED));
    let id_out = Rc::clone(&id);
    let promise = Promise::new(&mut |resolve, _reject| {
        let value = sentinel.clone();
        let fire = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &value);
        });
        if let Ok(t) = set_timeout.call2(&JsValue::NULL, &fire, &JsValue::from(ms)) {
            *id_out.borrow_mut() = t;
        }
    });
    let id = id.borrow().clone();
    Ok((promise, id))
}

fn clear_timer(id: &JsValue) {
    if let Some(f) = Reflect::get(&js_sys::global(), &"clearTimeout".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    {
        let _ = f.call1(&JsValue::NULL, id);
    }
}

impl RouterModel {
    pub(crate) fn shared(&self) -> Rc<(LearnedPolicy, RouterConfig)> {
        Rc::clone(&self.inner)
    }
}

/// Call `callback(arg)` and await its answer for at most `timeout_ms`; a
/// throw, a rejection and the time limit are faults (`what` names the callback).
async fn call_limited(
    callback: &Function,
    arg: &impl serde::Serialize,
    timeout_ms: u32,
    what: &str,
) -> Result<JsValue, Fault> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let arg = arg.serialize(&serializer).map_err(|e| Fault::Transport {
        detail: e.to_string(),
    })?;
    let returned = callback
        .call1(&JsValue::NULL, &arg)
        .map_err(|e| Fault::Transport {
            detail: format!("the {what} callback threw: {}", message(&e)),
        })?;
    let answer = Promise::resolve(&returned);
    let sentinel: JsValue = Object::new().into();
    let (timeout, id) = timer(timeout_ms, &sentinel)?;
    let raced = JsFuture::from(Promise::race(&Array::of2(&answer, &timeout))).await;
    clear_timer(&id);
    let value = raced.map_err(|e| Fault::Transport {
        detail: format!("the {what} callback rejected: {}", message(&e)),
    })?;
    if value == sentinel {
        return Err(Fault::Timeout {
            limit_ms: u64::from(timeout_ms),
        });
    }
    Ok(value)
}

impl JsSource {
    async fn call(
        &self,
        queries: &[String],
        k: usize,
    ) -> Result<Vec<Vec<rlrag_router::Hit>>, Fault> {
        let request = SearchRequest {
            queries: queries.to_vec(),
            k,
        };
        let value = call_limited(&self.callback, &request, self.timeout_ms, "network").await?;
        let reply: SearchResponse =
            serde_wasm_bindgen::from_value(value).map_err(|e| Fault::Malformed {
                detail: format!("not the search protocol's answer: {e}"),
            })?;
        check_reply(reply, queries.len(), k)
    }
}

impl Source for JsSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Network
    }

    fn search<'a>(&'a self, queries: &'a [String], k: usize) -> SourceFuture<'a> {
        Box::pin(self.call(queries, k))
    }
}

/// What the writer callback is given.
#[derive(serde::Serialize)]
struct WriteRequest<'a> {
    question: &'a str,
    evidence: &'a [rlrag_router::Hit],
}

impl QueryWriter for JsWriter {
    fn write<'a>(
        &'a self,
        question: &'a str,
        evidence: &'a [rlrag_router::Hit],
    ) -> WriterFuture<'a> {
        Box::pin(async move {
            let request = WriteRequest { question, evidence };
            let value = call_limited(&self.callback, &request, self.timeout_ms, "writer").await?;
            // A list of strings, or one text with a query per line.
            if let Some(text) = value.as_string() {
                return Ok(parse_sub_queries(&text));
            }
            let list: Vec<String> =
                serde_wasm_bindgen::from_value(value).map_err(|e| Fault::Malformed {
                    detail: format!("the writer must answer strings: {e}"),
                })?;
            Ok(parse_sub_queries(&list.join("\n")))
        })
    }
}

/// What the augment callback is given.
#[derive(serde::Serialize)]
struct AugmentRequest<'a> {
    query: &'a str,
}

impl Augmenter for JsAugmenter {
    fn document<'a>(&'a self, query: &'a str) -> AugmentFuture<'a> {
        Box::pin(async move {
            let value = call_limited(
                &self.callback,
                &AugmentRequest { query },
                self.timeout_ms,
                "augment",
            )
            .await?;
            value.as_string().ok_or_else(|| Fault::Malformed {
                detail: "the augment callback must answer a string".into(),
            })
        })
    }
}

/// `Date.now()`: the browser's wall clock.
struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }
}

/// Route one question over the engine (local) and an optional network callback.
#[allow(clippy::await_holding_refcell_ref)] // as in `Engine::search`
pub(crate) async fn route(
    inner: Rc<RefCell<engine::Engine>>,
    question: String,
    callbacks: Callbacks,
    model: Option<Rc<(LearnedPolicy, RouterConfig)>>,
    options: JsValue,
) -> Result<JsValue, JsValue> {
    let options: RouteOptions = if options.is_undefined() || options.is_null() {
        RouteOptions::default()
    } else {
        serde_wasm_bindgen::from_value(options).map_err(|e| input_error("options", &e))?
    };
    let policy =
        options
            .policy
            .as_deref()
            .unwrap_or(if model.is_some() { "learned" } else { "local" });
    let mode: SearchMode = options
        .local_mode
        .as_deref()
        .unwrap_or("bm25")
        .parse()
        .map_err(js_error)?;
    let timeout_ms = options.timeout_ms.unwrap_or(5000).max(1);
    let network = callbacks.network.map(|callback| JsSource {
        callback,
        timeout_ms,
    });
    let writer = callbacks.writer.map(|callback| JsWriter {
        callback,
        timeout_ms,
    });
    let engine = inner.try_borrow().map_err(|_| busy())?;
    let mut local = LocalSource::borrowed(&engine, mode).map_err(js_error)?;
    let weight = options.augment_weight.unwrap_or(engine::AUGMENT_WEIGHT);
    if !(0.0..=1.0).contains(&weight) {
        return Err(JsError::new(&format!("augmentWeight is {weight} (from 0 to 1)")).into());
    }
    if let Some(callback) = callbacks.augment {
        local = local
            .with_augmenter(
                Box::new(JsAugmenter {
                    callback,
                    timeout_ms,
                }),
                weight,
            )
            .map_err(js_error)?;
    }
    let (mut pipeline, confidence) = match (&model, policy) {
        (Some(m), "learned") => (m.1.pipeline.clone(), m.1.confidence.clone()),
        (None, "learned") => {
            return Err(JsError::new(
                "policy `learned` needs a router model (routeLearned), or pick local, network, both or multihop",
            )
            .into());
        }
        // Fixed schedules: the confidence never stops them early.
        _ => (
            PipelineConfig {
                confidence_stop: 2.0,
                ..PipelineConfig::default()
            },
            Confidence::default(),
        ),
    };
    if let Some(k) = options.k {
        pipeline.k = k;
    }
    if let Some(h) = options.max_hops {
        pipeline.max_hops = h;
    }
    let router = Router::new(
        &local,
        network.as_ref().map(|n| n as &dyn Source),
        pipeline,
        confidence,
    )
    .map_err(js_error)?;
    let router = match &writer {
        Some(w) => router.with_writer(w),
        None => router,
    };
    let mut decider: Box<dyn Decider + '_> = match (policy, &model) {
        ("learned", Some(m)) => Box::new(LearnedDecider::greedy(&m.0)),
        (name, _) => Box::new(FixedPolicy::from_name(name).ok_or_else(|| {
            JsError::new(&format!(
                "unknown policy `{name}` (learned, local, network, both, multihop or decompose)"
            ))
        })?),
    };
    let outcome = router
        .run(&question, decider.as_mut(), &JsClock)
        .await
        .map_err(js_error)?;
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    serde::Serialize::serialize(&outcome, &serializer).map_err(|e| js_error(e).into())
}
