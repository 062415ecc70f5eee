//! GPTQ quantization of the bundled docs-llama-8m with a few calibration windows.

mod common;

use gptq::{Context, ContextParams, ErrorKind, GenerateParams, Model, QuantizeParams};
use std::ops::ControlFlow;

fn small_params() -> QuantizeParams {
    QuantizeParams {
        calib_n_samples: 4,
        calib_seq_len: 64,
        calib_text_path: Some(common::shared_dir().join("data/docs-heldout.txt")),
        ..Default::default()
    }
}

#[test]
fn quantizes_docs_llama_8m_and_the_result_loads_and_generates() {
    let out = common::TempDir(common::temp_path("quantized"));
    let mut reports = 0;
    let mut stages = Vec::new();
    gptq::quantize_with_progress(common::docs_llama_8m(), &out.0, &small_params(), |p| {
        reports += 1;
        assert!(p.done <= p.total || p.total <= 0, "{:?}", p);
        if !stages.iter().any(|s: &String| s == p.stage) {
            stages.push(p.stage.to_string());
        }
        ControlFlow::Continue(())
    })
    .expect("quantize docs-llama-8m");
    assert!(reports > 0, "the progress callback was never called");
    assert!(out.0.join("config.json").is_file());

    let model = Model::load(&out.0).expect("load the quantized checkpoint");
    let info = model.info().unwrap();
    assert_eq!(info.quant_bits, 4);
    assert_eq!(info.quant_group_size, 128);
    assert!(info.quant_sym);
    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 64, ..Default::default() }).unwrap();
    let text = ctx.generate("The", &GenerateParams::greedy(8)).unwrap();
    assert!(!text.is_empty());
}

#[test]
fn cancelling_from_progress_is_an_aborted_error() {
    let out = common::TempDir(common::temp_path("cancelled"));
    let err = gptq::quantize_with_progress(common::docs_llama_8m(), &out.0, &small_params(), |_| {
        ControlFlow::Break(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Aborted, "{}", err);
    assert!(!out.0.exists(), "a cancelled run left {:?} behind", out.0);
}

#[test]
fn a_bad_bit_width_is_refused_with_a_message() {
    let out = common::TempDir(common::temp_path("bad-bits"));
    let params = QuantizeParams { bits: 5, ..small_params() };
    let err = gptq::quantize(common::docs_llama_8m(), &out.0, &params).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidArg | ErrorKind::Unsupported), "{}", err);
    assert!(err.message().contains('5') || err.message().contains("bits"), "{}", err);
}
