//! Generation against stories260k's golden greedy text: whole, streamed, stopped, threaded.

mod common;

use gptq::{Context, ContextParams, GenerateParams, Model};
use std::fs;
use std::ops::ControlFlow;
use std::sync::Arc;

fn golden_text() -> String {
    fs::read_to_string(common::stories260k().join("golden/expected_greedy_n200.txt")).unwrap()
}

/// BOS, then 200 greedy tokens from an empty prompt: the run the golden text was made with
/// (llama2.c `-n 200`; the golden id file lists those 200 tokens).
fn golden_params() -> GenerateParams {
    GenerateParams { add_bos: Some(true), ..GenerateParams::greedy(200) }
}

#[test]
fn greedy_200_equals_the_golden_text() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams::default()).unwrap();
    let text = ctx.generate("", &golden_params()).unwrap();
    assert_eq!(text, golden_text());
}

#[test]
fn streamed_tokens_add_up_to_the_text() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams::default()).unwrap();
    let mut pieces = String::new();
    let mut ids = Vec::new();
    let text = ctx
        .generate_with("", &golden_params(), |t| {
            assert_eq!(t.seq, 0);
            pieces.push_str(t.text);
            ids.push(t.id);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(text, golden_text());
    assert_eq!(pieces, text);
    assert_eq!(model.detokenize(&ids).unwrap(), text);
}

#[test]
fn breaking_out_of_the_stream_stops_early_without_error() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams::default()).unwrap();
    let mut n = 0;
    let text = ctx
        .generate_with("", &golden_params(), |_| {
            n += 1;
            if n == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 5);
    assert!(!text.is_empty() && golden_text().starts_with(&text), "{:?}", text);
    assert!(text.len() < 40);
}

#[test]
#[should_panic(expected = "boom from the token callback")]
fn a_panicking_callback_panics_in_the_caller_not_in_c() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams::default()).unwrap();
    let _ = ctx.generate_with("", &golden_params(), |_| panic!("boom from the token callback"));
}

#[test]
fn stop_string_ends_the_text_before_it() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams::default()).unwrap();
    let params = GenerateParams { stop_strings: vec!["Lily".into()], ..golden_params() };
    let text = ctx.generate("", &params).unwrap();
    let golden = golden_text();
    let cut = golden.find("Lily").unwrap();
    assert_eq!(text, &golden[..cut]);
}

#[test]
fn a_shared_model_serves_contexts_on_several_threads() {
    let model = Arc::new(common::load_stories260k().unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || {
                let mut ctx = Context::new(&model, &ContextParams { n_ctx: 256, ..Default::default() }).unwrap();
                ctx.generate("", &golden_params()).unwrap()
            })
        })
        .collect();
    // A context is Send: move one into a thread after making it here.
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 256, ..Default::default() }).unwrap();
    drop(model);
    let moved = std::thread::spawn(move || ctx.generate("", &golden_params()).unwrap());
    for h in handles {
        assert_eq!(h.join().unwrap(), golden_text());
    }
    assert_eq!(moved.join().unwrap(), golden_text());
}

#[test]
fn batched_generation_gives_each_prompt_its_greedy_text() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 256, n_seq_max: 2, ..Default::default() }).unwrap();
    let params = golden_params();
    let outs = ctx.generate_batch(&["", ""], &params).unwrap();
    assert_eq!(outs, vec![golden_text(), golden_text()]);
    let too_many = ctx.generate_batch(&["", "", ""], &params).unwrap_err();
    assert!(too_many.message().contains("n_seq_max"), "{}", too_many);
}
