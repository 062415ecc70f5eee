//! Loading, model info, the tokenizer, evaluation and errors, against stories260k's goldens.

mod common;

use gptq::{sys, Batch, Context, ContextParams, ErrorKind, Model};
use std::fs;
use std::mem::size_of;

#[test]
fn struct_layouts_match_the_library() {
    // Each *_params_default() stores the C sizeof in struct_size.
    unsafe {
        assert_eq!(sys::gptq_load_params_default().struct_size, size_of::<sys::gptq_load_params>());
        assert_eq!(sys::gptq_context_params_default().struct_size, size_of::<sys::gptq_context_params>());
        assert_eq!(sys::gptq_generate_params_default().struct_size, size_of::<sys::gptq_generate_params>());
        assert_eq!(sys::gptq_quantize_params_default().struct_size, size_of::<sys::gptq_quantize_params>());
    }
}

#[test]
fn version_matches_the_binding() {
    assert_eq!(gptq::version(), gptq::BINDING_VERSION);
    assert!(gptq::build_info().contains("cpu"), "build info: {}", gptq::build_info());
}

#[test]
fn loads_stories260k_and_reports_its_shape() {
    let model = common::load_stories260k().expect("load stories260k");
    let info = model.info().unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.vocab_size, 512);
    assert_eq!(info.hidden_size, 64);
    assert_eq!(info.n_layers, 5);
    assert_eq!(info.n_heads, 8);
    assert_eq!(info.n_kv_heads, 4);
    assert_eq!(info.bos_token, Some(1));
    assert!(info.tied_embeddings);
    assert_eq!(info.quant_bits, 0);
}

#[test]
fn tokenizer_round_trips_the_golden_text() {
    let model = common::load_stories260k().unwrap();
    let text = fs::read_to_string(common::stories260k().join("golden/expected_greedy_n200.txt")).unwrap();
    // The golden ids: the third column of each line "pos input next".
    let ids_file = fs::read_to_string(common::stories260k().join("golden/greedy_n200_token_ids.txt")).unwrap();
    let golden: Vec<i32> =
        ids_file.lines().map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap()).collect();
    assert_eq!(golden.len(), 200);

    let ids = model.tokenize(&text, Some(false)).unwrap();
    assert_eq!(ids, golden);
    let with_bos = model.tokenize(&text, Some(true)).unwrap();
    assert_eq!(with_bos[0], 1);
    assert_eq!(&with_bos[1..], &golden[..]);
    assert_eq!(model.detokenize(&golden).unwrap(), text);
    assert_eq!(model.token_piece(1).unwrap(), "<s>");
    assert_eq!(model.token_piece(3 + 0x0A).unwrap(), "<0x0A>");
}

#[test]
fn logits_match_the_golden_first_positions() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 64, ..Default::default() }).unwrap();
    let golden = fs::read_to_string(common::stories260k().join("golden/logits_pos0-2.txt")).unwrap();
    let rows: Vec<Vec<f32>> =
        golden.lines().map(|l| l.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 3);

    let batch = Batch { tokens: vec![1, 403, 407], logits: Some(vec![true, true, true]), ..Default::default() };
    ctx.eval_batch(&batch).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let got = ctx.logits(i as i32).unwrap();
        assert_eq!(got.len(), 512);
        let worst = got.iter().zip(row).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "position {}: max |diff| {}", i, worst);
    }
    assert_eq!(ctx.seq_len(0), 3);

    // Continuing one token at a time gives the same logits as the batch did.
    ctx.reset_all().unwrap();
    assert_eq!(ctx.seq_len(0), 0);
    ctx.eval(&[1]).unwrap();
    ctx.eval(&[403]).unwrap();
    let got = ctx.logits(0).unwrap();
    let worst = got.iter().zip(&rows[1]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "incremental position 1: max |diff| {}", worst);
}

#[test]
fn mismatched_batch_is_refused_before_reaching_c() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 16, ..Default::default() }).unwrap();
    let batch = Batch { tokens: vec![1, 2, 3], pos: Some(vec![0, 1]), ..Default::default() };
    let err = ctx.eval_batch(&batch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArg);
    assert!(err.message().contains("pos"), "{}", err);
}

#[test]
fn logits_not_kept_is_an_error_with_a_message() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 16, ..Default::default() }).unwrap();
    ctx.eval(&[1, 403]).unwrap();
    let err = ctx.logits(0).unwrap_err(); // only the last token kept its logits
    assert!(!err.message().is_empty());
}

#[test]
fn loading_a_missing_dir_fails_with_a_message_naming_it() {
    let missing = common::temp_path("missing-model");
    let err = Model::load(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{}", err);
    let name = missing.file_name().unwrap().to_str().unwrap();
    assert!(err.message().contains(name), "message does not name the dir: {}", err);
    assert!(err.to_string().contains(err.message()));
}

#[test]
fn context_outlives_its_model() {
    let model = common::load_stories260k().unwrap();
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 32, ..Default::default() }).unwrap();
    drop(model);
    ctx.eval(&[1, 403]).unwrap();
    assert_eq!(ctx.logits(1).unwrap().len(), 512);
}
