//! Streams a greedy continuation of a prompt, then quantizes the model if asked.
//!
//!     GPTQ_LIB_DIR=../../build cargo run --example generate -- ../../models/docs-llama-8m "Once upon a time"
//!     GPTQ_LIB_DIR=../../build cargo run --example generate -- ../../models/docs-llama-8m "Hi" /tmp/q4

use gptq::{Context, ContextParams, GenerateParams, Model, QuantizeParams};
use std::io::Write;
use std::ops::ControlFlow;

fn main() -> Result<(), gptq::Error> {
    let args: Vec<String> = std::env::args().collect();
    let model_dir = args.get(1).map(String::as_str).unwrap_or("models/docs-llama-8m");
    let prompt = args.get(2).map(String::as_str).unwrap_or("Once upon a time");

    let model = Model::load(model_dir)?;
    let info = model.info()?;
    println!("{} layers, vocab {}, {} backend", info.n_layers, info.vocab_size, gptq::build_info());

    let mut ctx = Context::new(&model, &ContextParams { n_ctx: 512, ..Default::default() })?;
    print!("{}", prompt);
    let text = ctx.generate_with(prompt, &GenerateParams::greedy(64), |tok| {
        print!("{}", tok.text);
        std::io::stdout().flush().ok();
        ControlFlow::Continue(())
    })?;
    println!("\n({} bytes generated)", text.len());

    if let Some(out_dir) = args.get(3) {
        let params = QuantizeParams { bits: 4, group_size: 128, calib_n_samples: 16, calib_seq_len: 256, ..Default::default() };
        gptq::quantize_with_progress(model_dir, out_dir, &params, |p| {
            eprintln!("{} {}/{} {}", p.stage, p.done, p.total, p.detail.unwrap_or(""));
            ControlFlow::Continue(())
        })?;
        println!("wrote {}", out_dir);
    }
    Ok(())
}
