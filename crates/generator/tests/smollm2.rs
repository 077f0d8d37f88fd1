//! The real model file: SmolLM2-135M-Instruct's GGUF (Q4_1 and Q8_0
//! blocks, F32 norms), fetched by `scripts/fetch-models.sh`. Every one of
//! its 272 tensors dequantises to exactly what the `gguf` package gives
//! (sha256 of the values, `tests/golden/gguf/smollm2.json`, written by
//! `scripts/reference/gguf_golden.py --model smollm2=…`), and the decoder's
//! logits match a float64 reference (`scripts/reference/golden_llama.py`).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use rlrag_generator::generate::{Finish, GenerateOptions, Generator, Sampling};
use rlrag_generator::gguf::{Gguf, Value};
use sha2::{Digest, Sha256};

mod common;
use common::{check_logits, golden, token_ids};

/// The model file's bytes.
fn model_bytes() -> Vec<u8> {
    let path = rlrag_encoder::models::pretrained("smollm2").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models.sh", path.display()))
}

#[test]
fn every_tensor_of_smollm2_matches_gguf_py() {
    let bytes = model_bytes();
    let golden = golden("smollm2.json");
    let file_sha = format!("{:x}", Sha256::digest(&bytes));
    assert_eq!(
        file_sha,
        golden["file_sha256"].as_str().expect("sha"),
        "another file"
    );

    let file = Gguf::parse(&bytes).expect("parses");
    let meta = |k: &str| file.metadata.get(k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(meta("general.architecture").as_str(), Some("llama"));
    assert_eq!(meta("llama.block_count").as_u64(), Some(30));
    assert_eq!(meta("llama.embedding_length").as_u64(), Some(576));
    assert_eq!(meta("llama.attention.head_count_kv").as_u64(), Some(3));
    assert_eq!(meta("llama.rope.freq_base").as_f64(), Some(100_000.0));
    let tokens = meta("tokenizer.ggml.tokens").as_array().expect("tokens");
    assert_eq!(tokens.len(), 49_152);
    assert_eq!(tokens[1], Value::String("<|im_start|>".into()));
    assert_eq!(
        meta("tokenizer.ggml.merges").as_array().map(<[Value]>::len),
        Some(48_900)
    );

    let want = golden["tensors"].as_object().expect("tensors");
    assert_eq!(file.tensors.len(), want.len());
    for t in &file.tensors {
        let w = &want[&t.name];
        let dims: Vec<u64> = w["dims"]
            .as_array()
            .expect("dims")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(
            u64::from(t.ty.id()),
            w["type"].as_u64().expect("type"),
            "{}",
            t.name
        );
        let values = file.tensor(&bytes, &t.name).expect("dequantises");
        let mut h = Sha256::new();
        for v in &values {
            h.update(v.to_le_bytes());
        }
        assert_eq!(
            format!("{:x}", h.finalize()),
            w["sha256"].as_str().expect("sha"),
            "{}",
            t.name
        );
    }
}

/// The decoder's logits on SmolLM2 equal an independent float64 numpy
/// forward pass on the same dequantised weights, written the Hugging Face
/// way (`scripts/reference/golden_llama.py`): at every position of three
/// prompts, the same top token and every compared logit within 0.02.
#[test]
fn smollm2_logits_match_the_numpy_reference() {
    let bytes = model_bytes();
    let model = rlrag_generator::llama::Llama::from_gguf(&bytes, &burn::tensor::Device::flex())
        .expect("loads");
    assert_eq!(model.config.layers, 30);
    assert_eq!(model.config.head_dim(), 64);
    assert_eq!(model.config.kv_heads, 3);
    for bad in [&[][..], &[49_152][..]] {
        let e = model.logits(bad).expect_err("refused");
        assert!(e.to_string().contains("token"), "{e}");
    }
    let worst = check_logits(&model, &golden("smollm2-logits.json"));
    println!("largest logit error against the float64 reference: {worst:.5}");
}

/// Running a sequence in pieces through the key/value cache gives the
/// whole sequence's logits row for row, and greedy decoding with the cache
/// picks the same tokens as recomputing the whole sequence at each step;
/// a stop token ends it (kept).
#[test]
fn the_cache_reproduces_the_full_forward_and_greedy_decoding() {
    let bytes = model_bytes();
    let model = rlrag_generator::llama::Llama::from_gguf(&bytes, &burn::tensor::Device::flex())
        .expect("loads");
    let prompt: Vec<u32> = vec![1, 9690, 198, 2683, 359, 253, 5356, 5646, 30, 2, 198];
    let rows =
        |t: burn::tensor::Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().expect("f32") };
    let full = rows(model.logits(&prompt).expect("runs"));
    let vocab = full.len() / prompt.len();
    let mut cache = rlrag_generator::llama::KvCache::default();
    let mut pieces = rows(model.extend(&prompt[..5], &mut cache).expect("runs"));
    for t in &prompt[5..] {
        pieces.extend(rows(
            model
                .extend(std::slice::from_ref(t), &mut cache)
                .expect("runs"),
        ));
    }
    assert_eq!(cache.len(), prompt.len());
    let worst = full
        .iter()
        .zip(&pieces)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "cached logits differ by {worst}");
    assert_eq!(pieces.len(), prompt.len() * vocab);

    let generator = Generator::from_gguf(&bytes, &burn::tensor::Device::flex()).expect("loads");
    let greedy = GenerateOptions {
        max_tokens: 8,
        ..GenerateOptions::default()
    };
    let started = std::time::Instant::now();
    let fast = generator
        .generate_ids(&prompt, &greedy, &mut |_| true)
        .expect("generates");
    let seconds = started.elapsed().as_secs_f64();
    let mut seq = prompt.clone();
    let mut slow = Vec::new();
    for _ in 0..8 {
        let logits = rows(model.logits(&seq).expect("runs"));
        let last = &logits[(seq.len() - 1) * vocab..];
        let top = (0..vocab)
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .expect("a top") as u32;
        slow.push(top);
        seq.push(top);
        if generator.is_end(top) {
            break;
        }
    }
    assert_eq!(fast.tokens, slow);
    println!(
        "greedy with the cache: {:.1} tokens/s (debug test build)",
        fast.tokens.len() as f64 / seconds
    );
}

/// The tokenizer built from the GGUF's vocabulary gives llama.cpp's token
/// ids on 380 texts (`scripts/reference/golden_tokens.py`).
#[test]
fn tokens_equal_llama_cpp() {
    let bytes = model_bytes();
    let file = Gguf::parse(&bytes).expect("parses");
    let tokenizer = rlrag_generator::tokenizer::GgufTokenizer::from_gguf(&file).expect("builds");
    let golden = golden("smollm2-tokens.json");
    // Written as tokenizer.json and read back, it is the same tokenizer.
    let reread =
        rlrag_generator::tokenizer::GgufTokenizer::from_json(&tokenizer.to_json().expect("writes"))
            .expect("reads");
    let mut wrong = Vec::new();
    for row in golden.as_array().expect("rows") {
        let text = row["text"].as_str().expect("text");
        let want = token_ids(&row["ids"]);
        let got = tokenizer.encode(text).expect("encodes");
        assert_eq!(tokenizer.decode(&got), text, "decoding gives the text back");
        assert_eq!(reread.encode(text).expect("encodes"), got);
        if got != want {
            wrong.push(format!("{text:?}: {got:?} against {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 380 differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The decoder runs the dequantised weights in f32 where llama.cpp
/// multiplies in the quantised formats (activations rounded to 8 bits):
/// on the chat prompts of `scripts/reference/golden_llama_cpp.py` up to
/// 100 tokens (16 of its 24, about 950 positions) the two pick the same
/// next token nearly everywhere, and on every other one of them the
/// first 12 greedy tokens are mostly the same (decoding is the slow part
/// of a debug build; all 24 prompts, 2,494 positions: 0.9695 top-1
/// agreement, 15 of 24 whole greedy answers the same).
#[test]
fn top1_and_greedy_answers_agree_with_llama_cpp() {
    let bytes = model_bytes();
    let generator = Generator::from_gguf(&bytes, &burn::tensor::Device::flex()).expect("loads");
    let golden = golden("smollm2-llama-cpp.json");
    assert_eq!(
        golden["model_sha256"].as_str(),
        Some(format!("{:x}", Sha256::digest(&bytes)).as_str())
    );
    let (mut same, mut positions, mut same_answers) = (0, 0, 0);
    let prompts: Vec<&serde_json::Value> = golden["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .filter(|p| p["ids"].as_array().is_some_and(|ids| ids.len() <= 100))
        .collect();
    assert_eq!(prompts.len(), 16);
    let mut greedy_prompts = 0;
    for (i, p) in prompts.iter().enumerate() {
        let text = p["text"].as_str().expect("text");
        let ids = generator.tokenizer().encode(text).expect("encodes");
        assert_eq!(ids, token_ids(&p["ids"]), "{text:?}");
        let logits = generator.model().logits(&ids).expect("runs");
        let top: Vec<u32> = logits
            .argmax(1)
            .into_data()
            .iter::<i64>()
            .map(|t| t as u32)
            .collect();
        let want = token_ids(&p["top1"]);
        same += top.iter().zip(&want).filter(|(a, b)| a == b).count();
        positions += want.len();
        if i % 2 == 1 {
            continue;
        }
        let options = GenerateOptions {
            max_tokens: 12,
            ..GenerateOptions::default()
        };
        let answer = generator
            .generate_ids(&ids, &options, &mut |_| true)
            .expect("generates");
        let want = token_ids(&p["greedy_ids"]);
        greedy_prompts += 1;
        if answer.tokens[..] == want[..want.len().min(12)] {
            same_answers += 1;
        }
    }
    let agreement = same as f64 / positions as f64;
    println!(
        "top-1 agreement with llama.cpp: {same}/{positions} = {agreement:.4}; \
         the same first 12 greedy tokens on {same_answers}/{greedy_prompts} prompts"
    );
    assert!(agreement >= 0.97, "top-1 agreement {agreement}");
    assert!(
        same_answers * 2 >= greedy_prompts,
        "{same_answers} same answers"
    );
}

/// Streaming passes the answer on in pieces that make up the text; a stop
/// string ends it before the string; the callback can cancel; a seed
/// repeats a sampled answer and another seed gives another; the OpenAI
/// API in process answers with llama.cpp's JSON layout.
#[test]
fn generation_streams_stops_and_samples_by_seed() {
    let bytes = model_bytes();
    let generator = Generator::from_gguf(&bytes, &burn::tensor::Device::flex()).expect("loads");
    let prompt = generator
        .template()
        .prompt(&[("user", "Write one sentence about the sea.")]);
    let greedy = GenerateOptions {
        max_tokens: 12,
        ..GenerateOptions::default()
    };
    let mut pieces = Vec::new();
    let whole = generator
        .generate(&prompt, &greedy, &mut |t| {
            pieces.push(t.to_owned());
            true
        })
        .expect("generates");
    assert_eq!(whole.finish, Finish::Length);
    assert!(pieces.len() > 4, "{pieces:?}");
    assert_eq!(pieces.concat(), whole.text);
    assert!(whole.text.starts_with("The sea is"), "{}", whole.text);

    // Stop at the second word: the text ends right before it.
    let word = whole.text.split(' ').nth(2).expect("a third word");
    let stopped = generator
        .generate(
            &prompt,
            &GenerateOptions {
                stop: vec![format!(" {word}")],
                ..greedy.clone()
            },
            &mut |_| true,
        )
        .expect("generates");
    assert_eq!(stopped.finish, Finish::Stop);
    assert_eq!(
        stopped.text,
        whole.text[..whole.text.find(&format!(" {word}")).expect("there")]
    );

    let mut calls = 0;
    let cancelled = generator
        .generate(&prompt, &greedy, &mut |_| {
            calls += 1;
            calls < 3
        })
        .expect("generates");
    assert_eq!((cancelled.finish, calls), (Finish::Cancelled, 3));

    let sampled = |seed| {
        let options = GenerateOptions {
            max_tokens: 8,
            sampling: Sampling {
                temperature: 0.9,
                top_p: 0.9,
                seed,
            },
            ..GenerateOptions::default()
        };
        generator
            .generate(&prompt, &options, &mut |_| true)
            .expect("generates")
            .text
    };
    let first = sampled(1);
    assert_eq!(first, sampled(1));
    assert!(
        (2..6).any(|seed| sampled(seed) != first),
        "every seed wrote {first:?}"
    );

    // One forward pass gives the text's log-probabilities and the
    // generation after it: the same as the two computed apart.
    let text = "The capital of France is";
    let three = GenerateOptions {
        max_tokens: 3,
        ..GenerateOptions::default()
    };
    let (scored, after) = generator
        .echo_generate(text, &three, &mut |_| true)
        .expect("runs");
    assert_eq!(scored, generator.token_logprobs(text).expect("runs"));
    let apart = generator
        .generate(text, &three, &mut |_| true)
        .expect("runs");
    assert_eq!((after.tokens, after.text), (apart.tokens, apart.text));

    // The OpenAI API: a chat answer, and a completion whose echoed and
    // generated log-probabilities line up with the text.
    let reply = rlrag_generator::openai::respond(
        &generator,
        "/chat/completions",
        &serde_json::json!({"messages": [{"role": "user", "content": "Write one sentence about the sea."}],
                            "temperature": 0.0, "max_tokens": 12}),
    )
    .expect("answers");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        whole.text.as_str()
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    let text = "The capital of France is";
    let reply = rlrag_generator::openai::respond(
        &generator,
        "/completions",
        &serde_json::json!({"prompt": text, "temperature": 0.0, "max_tokens": 1, "echo": true, "logprobs": 5}),
    )
    .expect("answers");
    let lp = &reply["choices"][0]["logprobs"];
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o.as_u64().expect("offset"))
        .collect();
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_str().expect("token"))
        .collect();
    assert_eq!(
        tokens.concat(),
        reply["choices"][0]["text"].as_str().expect("text")
    );
    assert_eq!(offsets[0], 0);
    assert!(lp["token_logprobs"][0].is_null());
    assert_eq!(*offsets.last().expect("one"), text.len() as u64);
    let last = &lp["top_logprobs"][tokens.len() - 1];
    assert_eq!(last.as_object().expect("top").len(), 5);
    let own = lp["token_logprobs"][tokens.len() - 1]
        .as_f64()
        .expect("logprob");
    assert!(
        last.as_object()
            .expect("top")
            .values()
            .any(|v| (v.as_f64().expect("lp") - own).abs() < 1e-6)
    );
    let e = rlrag_generator::openai::respond(
        &generator,
        "/completions",
        &serde_json::json!({"prompt": 3}),
    )
    .expect_err("refused");
    assert!(e.to_string().contains("prompt"), "{e}");
}
