//! Paths shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The repository root (bindings/rust/../..).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// $GPTQ_SHARED_DIR, else ../shared beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("GPTQ_SHARED_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => repo_root().join("../shared"),
    }
}

pub fn stories260k() -> PathBuf {
    shared_dir().join("models/stories260k")
}

pub fn docs_llama_8m() -> PathBuf {
    repo_root().join("models/docs-llama-8m")
}

/// A fresh path under the temp dir (not created), unique to this process and call.
pub fn temp_path(tag: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("gptq-rust-{}-{}-{}", tag, std::process::id(), nanos))
}

/// Removes a directory when dropped, so a failing test does not leave it behind.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// stories260k on the CPU: the goldens are CPU results, and AUTO would pick CUDA when present.
pub fn load_stories260k() -> gptq::Result<gptq::Model> {
    let params = gptq::LoadParams { backend: gptq::Backend::Cpu, ..Default::default() };
    gptq::Model::load_with(stories260k(), &params)
}
