//! Safe Rust bindings for libgptq (`gptq.h`): load Llama-family models, run them, and quantize
//! them with GPTQ.
//!
//! ```no_run
//! use gptq::{Context, ContextParams, GenerateParams, Model};
//! let model = Model::load("models/docs-llama-8m")?;
//! let mut ctx = Context::new(&model, &ContextParams::default())?;
//! let text = ctx.generate("Once upon a time", &GenerateParams::greedy(32))?;
//! println!("{}", text);
//! # Ok::<(), gptq::Error>(())
//! ```
//!
//! Handles own their C objects and free them on drop, in any order (a context keeps its model
//! alive). Failures are [`Error`]s carrying the library's message.

pub mod sys;

mod callbacks;
mod context;
mod error;
mod log;
mod model;
mod params;
mod quantize;
mod util;

pub use callbacks::{Progress, Token};
pub use context::{Batch, Context, Perplexity};
pub use error::{status_str, Error, ErrorKind, Result};
pub use log::{set_log_callback, LogLevel};
pub use model::{LoadParams, Model, ModelInfo};
pub use params::{CheckpointFormat, ContextParams, GenerateParams, QuantizeParams};
pub use quantize::{quantize, quantize_with_progress};
pub use util::Backend;

use std::ffi::CStr;

/// The library's version at run time, e.g. "0.1.0".
pub fn version() -> String {
    unsafe { CStr::from_ptr(sys::gptq_version()) }.to_string_lossy().into_owned()
}

/// The version this binding was written for (`GPTQ_VERSION_STRING`).
pub const BINDING_VERSION: &str = "0.1.0";

/// Which optional parts the library was built with, e.g. "cpu cuda openblas mimalloc".
pub fn build_info() -> String {
    unsafe { CStr::from_ptr(sys::gptq_build_info()) }.to_string_lossy().into_owned()
}

/// Whether the library has the CUDA backend and a usable device.
pub fn cuda_available() -> bool {
    unsafe { sys::gptq_cuda_available() != 0 }
}

// The README's example is compiled as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
