//! A client for an OpenAI-compatible generator (llama.cpp's server, vLLM,
//! OpenAI): answer a question from one passage, or score the gold answer's
//! probability in one forward pass where the server returns log-probabilities.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::TrainError;

/// Where and how to call the generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmConfig {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The `model` field of requests.
    pub model: String,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Extra attempts after a failed request.
    pub retries: u32,
    /// Most tokens of a generated answer.
    pub max_answer_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "smollm2-135m-instruct".into(),
            timeout_ms: 30_000,
            retries: 1,
            max_answer_tokens: 24,
        }
    }
}

/// The prompt prefix shared by both modes; the answer follows it.
pub fn prompt(question: &str, passage: &str) -> String {
    format!(
        "Answer the question using the passage. Reply with the answer only, a few words.\n\n\
         Passage: {passage}\n\nQuestion: {question}\n\nAnswer:"
    )
}

/// A blocking client with a timeout and retries.
#[derive(Debug)]
pub struct LlmClient {
    config: LlmConfig,
    agent: ureq::Agent,
}

impl LlmClient {
    /// A client for `config` (no request is made yet).
    pub fn new(config: LlmConfig) -> Result<Self, TrainError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(TrainError::Config {
                name: "llm-url",
                reason: format!("`{}` is not an http(s) URL", config.base_url),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms.max(1))))
            .http_status_as_error(true)
            .build()
            .into();
        Ok(Self { config, agent })
    }

    /// The settings.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, TrainError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let mut last = String::new();
        for _ in 0..=self.config.retries {
            let sent = self.agent.post(&url).send_json(body);
            match sent {
                Ok(mut response) => match response.body_mut().read_json::<Value>() {
                    Ok(v) => return Ok(v),
                    Err(e) => last = format!("unreadable reply: {e}"),
                },
                Err(e) => last = e.to_string(),
            }
        }
        Err(TrainError::Endpoint { url, reason: last })
    }

    /// The generator's answer to `question` given `passage` (greedy).
    pub fn answer(&self, question: &str, passage: &str) -> Result<String, TrainError> {
        let body = json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt(question, passage)}],
            "temperature": 0.0,
            "max_tokens": self.config.max_answer_tokens,
        });
        let reply = self.post("/chat/completions", &body)?;
        parse_chat_answer(&reply).ok_or_else(|| TrainError::Endpoint {
            url: format!("{}/chat/completions", self.config.base_url),
            reason: format!(
                "no choices[0].message.content in {}",
                truncate(&reply.to_string())
            ),
        })
    }

    /// The probability of `gold` following the prompt, from the prompt's
    /// echoed log-probabilities (one forward pass, nothing generated); `None`
    /// when the server does not return them.
    pub fn gold_probability(
        &self,
        question: &str,
        passage: &str,
        gold: &str,
    ) -> Result<Option<f32>, TrainError> {
        let prefix = prompt(question, passage);
        let body = json!({
            "model": self.config.model,
            "prompt": format!("{prefix} {gold}"),
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": true,
            "logprobs": 1,
        });
        let reply = self.post("/completions", &body)?;
        Ok(parse_answer_logprob(&reply, prefix.len()).map(|lp| lp.exp() as f32))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `choices[0].message.content`, trimmed.
pub fn parse_chat_answer(reply: &Value) -> Option<String> {
    reply
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
}

/// Sum of the echoed log-probabilities of the tokens starting at or after
/// byte `answer_start` of the prompt (OpenAI completions `logprobs` layout:
/// `tokens`, `token_logprobs`, `text_offset`), excluding the one generated
/// token; `None` when absent or malformed.
pub fn parse_answer_logprob(reply: &Value, answer_start: usize) -> Option<f64> {
    let lp = reply.pointer("/choices/0/logprobs")?;
    let logprobs = lp.get("token_logprobs")?.as_array()?;
    let offsets = lp.get("text_offset")?.as_array()?;
    if logprobs.len() != offsets.len() || logprobs.len() < 2 {
        return None;
    }
    // The last entry is the generated token, not part of the prompt.
    let mut sum = 0.0;
    let mut any = false;
    for (l, o) in logprobs.iter().zip(offsets).take(logprobs.len() - 1) {
        if o.as_u64()? as usize >= answer_start {
            sum += l.as_f64()?;
            any = true;
        }
    }
    any.then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies_and_refuses_malformed_ones() {
        let chat = json!({"choices": [{"message": {"role": "assistant", "content": " Paris \n"}}]});
        assert_eq!(parse_chat_answer(&chat).as_deref(), Some("Paris"));
        assert_eq!(parse_chat_answer(&json!({"error": "overloaded"})), None);
        let completion = json!({"choices": [{"logprobs": {
            "tokens": ["Answer", ":", " Paris", ".", "\n"],
            "token_logprobs": [null, -0.5, -0.25, -0.5, -3.0],
            "text_offset": [0, 6, 7, 13, 14]
        }}]});
        // Tokens from byte 7 up to (not including) the generated one: -0.25 - 0.5.
        let lp = parse_answer_logprob(&completion, 7).expect("logprobs");
        assert!((lp + 0.75).abs() < 1e-12);
        assert_eq!(parse_answer_logprob(&completion, 100), None);
        assert_eq!(parse_answer_logprob(&json!({"choices": [{}]}), 0), None);
    }

    #[test]
    fn bad_urls_are_refused() {
        let bad = LlmConfig {
            base_url: "localhost:8080".into(),
            ..LlmConfig::default()
        };
        assert!(matches!(
            LlmClient::new(bad),
            Err(TrainError::Config { .. })
        ));
    }
}
