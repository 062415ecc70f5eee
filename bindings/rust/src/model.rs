//! `Model`: a loaded checkpoint, its metadata and its tokenizer.

use crate::callbacks::{progress_trampoline, CallbackState, Progress};
use crate::error::{check, Error, Result};
use crate::sys;
use crate::util::{path_to_cstring, Backend};
use std::ffi::CStr;
use std::ops::ControlFlow;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options of [`Model::load_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadParams {
    pub backend: Backend,
    /// CUDA device ordinal.
    pub device: i32,
    /// CPU threads; 0 = all cores.
    pub n_threads: i32,
}

impl Default for LoadParams {
    fn default() -> Self {
        // SAFETY: plain function returning a struct by value.
        let d = unsafe { sys::gptq_load_params_default() };
        LoadParams { backend: Backend::from_raw(d.backend), device: d.device, n_threads: d.n_threads }
    }
}

/// What [`Model::info`] reports about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub architecture: String,
    pub vocab_size: i32,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub n_layers: i32,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub max_position_embeddings: i32,
    pub bos_token: Option<i32>,
    pub eos_token: Option<i32>,
    pub add_bos: bool,
    pub tied_embeddings: bool,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub n_params: i64,
    pub weight_bytes: i64,
    /// 0 for a float model.
    pub quant_bits: i32,
    pub quant_group_size: i32,
    pub quant_sym: bool,
    pub quant_desc_act: bool,
    /// The backend chosen at load (never `Auto`).
    pub backend: Backend,
}

/// A loaded model. Immutable, so it is `Send + Sync` and can be shared (e.g. in an `Arc`) by
/// threads that each make their own [`Context`](crate::Context). Contexts keep the model alive
/// on the C side, so dropping a `Model` before its contexts is fine.
pub struct Model {
    raw: NonNull<sys::gptq_model>,
    /// 0 until computed (see `max_piece_bytes`).
    max_piece_bytes: AtomicUsize,
}

// SAFETY: gptq.h: "gptq_model is immutable after load and may be shared by threads".
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    /// Loads a model directory (config.json, *.safetensors, tokenizer.model or tokenizer.json) with
    /// default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(dir, &LoadParams::default())
    }

    pub fn load_with(dir: impl AsRef<Path>, params: &LoadParams) -> Result<Model> {
        Model::load_with_progress(dir, params, |_: &Progress<'_>| ControlFlow::Continue(()))
    }

    /// Loads while reporting progress; returning `ControlFlow::Break` cancels the load
    /// (the result is then an `ErrorKind::Aborted` error).
    pub fn load_with_progress<F>(dir: impl AsRef<Path>, params: &LoadParams, progress: F) -> Result<Model>
    where
        F: FnMut(&Progress<'_>) -> ControlFlow<()>,
    {
        let cdir = path_to_cstring(dir.as_ref())?;
        let mut state = CallbackState::new(progress);
        let mut raw = unsafe { sys::gptq_load_params_default() };
        raw.backend = params.backend.to_raw();
        raw.device = params.device;
        raw.n_threads = params.n_threads;
        raw.progress = Some(progress_trampoline::<F>);
        raw.progress_user_data = state.as_user_data();
        let mut out = ptr::null_mut();
        // SAFETY: all pointers are valid for the duration of the call.
        let status = unsafe { sys::gptq_load(cdir.as_ptr(), &raw, &mut out) };
        state.finish(status)?;
        let raw = NonNull::new(out).ok_or_else(|| Error::invalid_arg("gptq_load returned no model"))?;
        Ok(Model { raw, max_piece_bytes: AtomicUsize::new(0) })
    }

    pub fn as_ptr(&self) -> *mut sys::gptq_model {
        self.raw.as_ptr()
    }

    pub fn info(&self) -> Result<ModelInfo> {
        // SAFETY: zeroed is a valid bit pattern for this plain C struct.
        let mut i: sys::gptq_model_info = unsafe { std::mem::zeroed() };
        i.struct_size = std::mem::size_of::<sys::gptq_model_info>();
        check(unsafe { sys::gptq_model_get_info(self.raw.as_ptr(), &mut i) })?;
        let arch = unsafe { CStr::from_ptr(i.architecture.as_ptr()) }.to_string_lossy().into_owned();
        let opt = |t: i32| if t < 0 { None } else { Some(t) };
        Ok(ModelInfo {
            architecture: arch,
            vocab_size: i.vocab_size,
            hidden_size: i.hidden_size,
            intermediate_size: i.intermediate_size,
            n_layers: i.n_layers,
            n_heads: i.n_heads,
            n_kv_heads: i.n_kv_heads,
            head_dim: i.head_dim,
            max_position_embeddings: i.max_position_embeddings,
            bos_token: opt(i.bos_token),
            eos_token: opt(i.eos_token),
            add_bos: i.add_bos != 0,
            tied_embeddings: i.tied_embeddings != 0,
            rope_theta: i.rope_theta,
            rms_norm_eps: i.rms_norm_eps,
            n_params: i.n_params,
            weight_bytes: i.weight_bytes,
            quant_bits: i.quant_bits,
            quant_group_size: i.quant_group_size,
            quant_sym: i.quant_sym != 0,
            quant_desc_act: i.quant_desc_act != 0,
            backend: Backend::from_raw(i.backend),
        })
    }

    /// Encodes text. `add_bos`: `Some(true/false)`, or `None` for what the model's configs say.
    pub fn tokenize(&self, text: &str, add_bos: Option<bool>) -> Result<Vec<i32>> {
        let flag = match add_bos {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        // Byte fallback gives at most one token per byte, plus BOS and a dummy-prefix piece.
        let mut tokens = vec![0i32; text.len() + 4];
        loop {
            let mut n = 0usize;
            let status = unsafe {
                sys::gptq_tokenize(
                    self.raw.as_ptr(),
                    text.as_ptr() as *const _,
                    text.len(),
                    flag,
                    tokens.as_mut_ptr(),
                    tokens.len(),
                    &mut n,
                )
            };
            if status == sys::GPTQ_ERR_BUFFER_SMALL && n > tokens.len() {
                tokens.resize(n, 0);
                continue;
            }
            check(status)?;
            tokens.truncate(n);
            return Ok(tokens);
        }
    }

    /// Decodes ids to text as SentencePiece does.
    pub fn detokenize(&self, tokens: &[i32]) -> Result<String> {
        let model = self.raw.as_ptr();
        read_string(tokens.len() * 8 + 16, |buf, size, n| unsafe {
            sys::gptq_detokenize(model, tokens.as_ptr(), tokens.len(), buf, size, n)
        })
    }

    /// The raw piece of one id, e.g. "▁the" or "<0x0A>".
    pub fn token_piece(&self, token: i32) -> Result<String> {
        let model = self.raw.as_ptr();
        read_string(32, |buf, size, n| unsafe { sys::gptq_token_piece(model, token, buf, size, n) })
    }

    /// The longest piece of the vocabulary in bytes: a bound on the text one token can produce,
    /// used to size generation buffers. Computed once per model.
    pub(crate) fn max_piece_bytes(&self) -> Result<usize> {
        let known = self.max_piece_bytes.load(Ordering::Relaxed);
        if known > 0 {
            return Ok(known);
        }
        let vocab = self.info()?.vocab_size;
        let mut longest = 8usize;
        let mut buf = vec![0u8; 256];
        for t in 0..vocab {
            let mut n = 0usize;
            let status = unsafe {
                sys::gptq_token_piece(self.raw.as_ptr(), t, buf.as_mut_ptr() as *mut _, buf.len(), &mut n)
            };
            if status == sys::GPTQ_ERR_BUFFER_SMALL {
                longest = longest.max(n);
            } else {
                check(status)?;
                longest = longest.max(n + 1);
            }
        }
        // Threads racing here compute the same value; either store is fine.
        self.max_piece_bytes.store(longest, Ordering::Relaxed);
        Ok(longest)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: we own this reference; contexts hold their own.
        unsafe { sys::gptq_model_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("raw", &self.raw).finish()
    }
}

/// Calls a C function that writes a NUL-terminated string into a sized buffer, growing the
/// buffer once when it reports BUFFER_SMALL with the size needed.
pub(crate) fn read_string(
    initial: usize,
    mut f: impl FnMut(*mut std::os::raw::c_char, usize, *mut usize) -> i32,
) -> Result<String> {
    let mut buf = vec![0u8; initial.max(1)];
    loop {
        let mut n = 0usize;
        let status = f(buf.as_mut_ptr() as *mut _, buf.len(), &mut n);
        if status == sys::GPTQ_ERR_BUFFER_SMALL && n > buf.len() {
            buf.resize(n, 0);
            continue;
        }
        check(status)?;
        buf.truncate(n.min(buf.len()));
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
}
