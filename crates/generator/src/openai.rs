//! The OpenAI-compatible API over a [`Generator`], in process: the
//! requests llama.cpp's server answers — `/completions` (`prompt`,
//! `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `logprobs`,
//! `echo`) and `/chat/completions` (`messages`) — answered with the same
//! JSON, so one client and one set of reply parsers serve a remote server
//! and the model in this process alike.

use serde_json::{Map, Value, json};

use crate::GeneratorError;
use crate::generate::{Finish, GenerateOptions, Generator, Sampling};

fn refused(reason: impl Into<String>) -> GeneratorError {
    GeneratorError::Request {
        reason: reason.into(),
    }
}

/// The reply to `body` sent to `path` (`/completions` or
/// `/chat/completions`, relative to `/v1`).
pub fn respond(generator: &Generator, path: &str, body: &Value) -> Result<Value, GeneratorError> {
    match path.trim_end_matches('/') {
        "/completions" => complete(generator, body),
        "/chat/completions" => chat(generator, body),
        other => Err(refused(format!(
            "no endpoint `{other}` (/completions, /chat/completions)"
        ))),
    }
}

/// The sampling fields every request shares (OpenAI's defaults where
/// absent: temperature 1, top-p 1, 16 tokens).
fn options(body: &Value, default_max: u64) -> Result<GenerateOptions, GeneratorError> {
    let number = |key: &str, default: f64, range: std::ops::RangeInclusive<f64>| match body.get(key)
    {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| range.contains(x))
            .ok_or_else(|| refused(format!("`{key}` must be a number in {range:?}"))),
    };
    let whole = |key: &str, default: u64, most: u64| match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= most)
            .ok_or_else(|| refused(format!("`{key}` must be an integer from 0 to {most}"))),
    };
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| refused("`stop` must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(refused("`stop` must be a string or up to 4 strings")),
    };
    Ok(GenerateOptions {
        max_tokens: whole("max_tokens", default_max, 1 << 20)? as usize,
        sampling: Sampling {
            temperature: number("temperature", 1.0, 0.0..=2.0)? as f32,
            top_p: number("top_p", 1.0, 0.0..=1.0)? as f32,
            seed: whole("seed", 0, u64::MAX)?,
        },
        stop,
        top_logprobs: 0,
    })
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Length => "length",
        Finish::Stop | Finish::Cancelled => "stop",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// A legacy completion, with OpenAI's `logprobs` layout (`tokens`,
/// `token_logprobs`, `top_logprobs`, `text_offset`) when asked: `echo`
/// puts the prompt's tokens first (the first with a null log-probability).
fn complete(generator: &Generator, body: &Value) -> Result<Value, GeneratorError> {
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or_else(|| refused("`prompt` must be a string"))?;
    let mut options = options(body, 16)?;
    let top = match body.get("logprobs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|&n| n <= 20)
                .ok_or_else(|| refused("`logprobs` must be an integer from 0 to 20"))?
                as usize,
        ),
    };
    let echo = body.get("echo").and_then(Value::as_bool).unwrap_or(false);
    // At least the chosen token's own log-probability is wanted.
    options.top_logprobs = top.map_or(0, |n| n.max(1));
    // Echoed log-probabilities and the generation from one forward pass
    // over the prompt.
    let (echoed, generation) = match (echo, top) {
        (true, Some(_)) => generator.echo_generate(prompt, &options, &mut |_| true)?,
        _ => (
            Vec::new(),
            generator.generate(prompt, &options, &mut |_| true)?,
        ),
    };
    let tokenizer = generator.tokenizer();
    let piece =
        |id: u32| String::from_utf8_lossy(tokenizer.token_bytes(id).unwrap_or(&[])).into_owned();
    let mut text = generation.text.clone();
    let logprobs = match top {
        None => Value::Null,
        Some(n) => {
            let mut tokens = Vec::new();
            let mut token_logprobs = Vec::new();
            let mut top_logprobs = Vec::new();
            let mut offsets = Vec::new();
            let mut at = 0;
            if echo {
                for t in echoed {
                    tokens.push(Value::String(piece(t.id)));
                    token_logprobs.push(t.logprob.map_or(Value::Null, |l| json!(l)));
                    top_logprobs.push(Value::Null);
                    offsets.push(json!(t.span.start));
                }
                at = prompt.len();
                text = format!("{prompt}{text}");
            }
            for step in &generation.steps {
                let mut alternatives = Map::new();
                for &(id, lp) in step.top.iter().take(n) {
                    alternatives.entry(piece(id)).or_insert(json!(lp));
                }
                tokens.push(Value::String(piece(step.token)));
                token_logprobs.push(json!(step.logprob));
                top_logprobs.push(Value::Object(alternatives));
                offsets.push(json!(at));
                at += tokenizer.token_bytes(step.token).map_or(0, <[u8]>::len);
            }
            json!({
                "tokens": tokens,
                "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs,
                "text_offset": offsets,
            })
        }
    };
    if echo && top.is_none() {
        text = format!("{prompt}{text}");
    }
    Ok(json!({
        "object": "text_completion",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish_reason(generation.finish),
        }],
        "usage": usage(generation.prompt_tokens, generation.tokens.len()),
    }))
}

/// A chat completion: `messages` through the model's chat template.
fn chat(generator: &Generator, body: &Value) -> Result<Value, GeneratorError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| refused("`messages` must be a non-empty array"))?;
    let messages = messages
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r @ ("system" | "user" | "assistant")), Some(c)) => Ok((r, c)),
                _ => Err(refused(
                    "each message needs a `role` (system, user, assistant) and a string `content`",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = options(body, 16)?;
    let prompt = generator.template().prompt(&messages);
    let generation = generator.generate(&prompt, &options, &mut |_| true)?;
    Ok(json!({
        "object": "chat.completion",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": finish_reason(generation.finish),
        }],
        "usage": usage(generation.prompt_tokens, generation.tokens.len()),
    }))
}
