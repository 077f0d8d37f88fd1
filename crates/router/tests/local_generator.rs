//! The generator adapter on the model in this process (`local:<gguf>`,
//! SmolLM2-135M-Instruct from `scripts/fetch-models.sh`): the requests the
//! adapter sends a server are answered in process with the same JSON, so
//! answers, the passage judge's P("yes") and the gold answer's probability
//! come out as the decoder computes them directly.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use rlrag_generator::generate::Generator;
use rlrag_router::llm::{LlmClient, LlmConfig, passage_judge_prompt, prompt};

fn model_path() -> std::path::PathBuf {
    rlrag_encoder::models::pretrained("smollm2").join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

#[test]
fn the_adapter_runs_the_model_in_process() {
    let path = model_path();
    let client = LlmClient::new(LlmConfig {
        base_url: format!("local:{}", path.display()),
        ..LlmConfig::default()
    })
    .expect("loads");
    let bytes = std::fs::read(&path).expect("model");
    let generator = Generator::from_gguf(&bytes, &burn::tensor::Device::flex()).expect("loads");

    let passage = "Paris is the capital and most populous city of France.";
    let question = "What is the capital of France?";
    let answer = client.answer(question, passage).expect("answers");
    assert!(answer.contains("Paris"), "{answer}");

    // P("yes") from the first token's top 20 log-probabilities, as the
    // decoder gives them.
    let p = client
        .passage_verdict(question, passage)
        .expect("judges")
        .expect("yes or no among the top 20");
    let lp = generator
        .next_logprobs(&passage_judge_prompt(question, passage))
        .expect("runs");
    let top = rlrag_generator::generate::top_k(&lp, 20);
    let (mut yes, mut no) = (0.0f64, 0.0f64);
    for (id, l) in top {
        let word = generator
            .tokenizer()
            .decode(&[id])
            .trim()
            .to_ascii_lowercase();
        match word.as_str() {
            "yes" => yes += f64::from(l).exp(),
            "no" => no += f64::from(l).exp(),
            _ => {}
        }
    }
    assert!(
        (p - yes / (yes + no)).abs() < 1e-5,
        "{p} vs {}",
        yes / (yes + no)
    );

    // The gold answer's probability from the echoed prompt: the product of
    // its tokens' probabilities given everything before them.
    let gold = client
        .gold_probability(question, passage, "Paris")
        .expect("scores")
        .expect("echoed log-probabilities");
    let prefix = prompt(question, &[passage]);
    let text = format!("{prefix} Paris");
    let direct: f32 = generator
        .token_logprobs(&text)
        .expect("runs")
        .iter()
        .filter(|t| t.span.start >= prefix.len())
        .map(|t| t.logprob.expect("after the first token"))
        .sum();
    assert!(
        (gold - direct.exp()).abs() < 1e-4,
        "{gold} vs {}",
        direct.exp()
    );
    assert!(gold > 0.0 && gold <= 1.0);
}
