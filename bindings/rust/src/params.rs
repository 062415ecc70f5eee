//! Parameter structs of contexts, generation and quantization, with the C defaults.

use crate::error::Result;
use crate::sys;
use crate::util::{flag, path_to_cstring, str_to_cstring, Backend};
use std::ffi::CString;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::ptr;

/// Options of [`Context::new`](crate::Context::new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextParams {
    /// Positions per sequence; 0 = min(max_position_embeddings, 4096).
    pub n_ctx: i32,
    /// Sequences held at once (for batched generation).
    pub n_seq_max: i32,
    /// Most tokens one eval computes at a time (larger batches are split).
    pub n_batch: i32,
    /// 0 = the model's.
    pub n_threads: i32,
}

impl Default for ContextParams {
    fn default() -> Self {
        let d = unsafe { sys::gptq_context_params_default() };
        ContextParams { n_ctx: d.n_ctx, n_seq_max: d.n_seq_max, n_batch: d.n_batch, n_threads: d.n_threads }
    }
}

impl ContextParams {
    pub(crate) fn to_raw(self) -> sys::gptq_context_params {
        let mut r = unsafe { sys::gptq_context_params_default() };
        r.n_ctx = self.n_ctx;
        r.n_seq_max = self.n_seq_max;
        r.n_batch = self.n_batch;
        r.n_threads = self.n_threads;
        r
    }
}

/// Sampling and stopping options of generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// New tokens at most.
    pub max_tokens: i32,
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: i32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u64,
    /// `None`: as the model's configs say.
    pub add_bos: Option<bool>,
    pub stop_at_eos: bool,
    /// Generation stops once the output ends with one of these; the text ends before it.
    pub stop_strings: Vec<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        let d = unsafe { sys::gptq_generate_params_default() };
        GenerateParams {
            max_tokens: d.max_tokens,
            temperature: d.temperature,
            top_k: d.top_k,
            top_p: d.top_p,
            min_p: d.min_p,
            repeat_penalty: d.repeat_penalty,
            repeat_last_n: d.repeat_last_n,
            seed: d.seed,
            add_bos: if d.add_bos < 0 { None } else { Some(d.add_bos != 0) },
            stop_at_eos: d.stop_at_eos != 0,
            stop_strings: Vec::new(),
        }
    }
}

impl GenerateParams {
    /// Greedy decoding (temperature 0, no repetition penalty) of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: i32) -> Self {
        GenerateParams { max_tokens, temperature: 0.0, repeat_penalty: 1.0, ..Default::default() }
    }
}

/// The C struct plus the strings it points into, which must outlive the call.
pub(crate) struct RawGenerateParams {
    pub raw: sys::gptq_generate_params,
    _stops: Vec<CString>,
    _stop_ptrs: Vec<*const c_char>,
}

impl GenerateParams {
    pub(crate) fn to_raw(&self) -> Result<RawGenerateParams> {
        let stops = self
            .stop_strings
            .iter()
            .map(|s| str_to_cstring(s, "stop string"))
            .collect::<Result<Vec<_>>>()?;
        let stop_ptrs: Vec<*const c_char> = stops.iter().map(|s| s.as_ptr()).collect();
        let mut r = unsafe { sys::gptq_generate_params_default() };
        r.max_tokens = self.max_tokens;
        r.temperature = self.temperature;
        r.top_k = self.top_k;
        r.top_p = self.top_p;
        r.min_p = self.min_p;
        r.repeat_penalty = self.repeat_penalty;
        r.repeat_last_n = self.repeat_last_n;
        r.seed = self.seed;
        r.add_bos = match self.add_bos {
            Some(b) => flag(b),
            None => -1,
        };
        r.stop_at_eos = flag(self.stop_at_eos);
        r.stop_strings = if stop_ptrs.is_empty() { ptr::null() } else { stop_ptrs.as_ptr() };
        r.n_stop_strings = stop_ptrs.len() as i32;
        Ok(RawGenerateParams { raw: r, _stops: stops, _stop_ptrs: stop_ptrs })
    }
}

/// Checkpoint format written by [`quantize`](crate::quantize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// v1 ("gptq") unless an asymmetric zero would overflow, then v2.
    Auto,
    V1,
    V2,
}

/// Options of [`quantize`](crate::quantize). Defaults are the C ones (4 bits, group 128,
/// sym, act-order, static groups, true-sequential, damp 0.01, 128 windows of 512 tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeParams {
    pub bits: i32,
    /// -1 = per output column, or a divisor of every K.
    pub group_size: i32,
    pub sym: bool,
    pub desc_act: bool,
    pub static_groups: bool,
    pub true_sequential: bool,
    /// Fraction of the mean Hessian diagonal.
    pub damp_percent: f32,
    /// Added on each Cholesky failure (0 = no retry).
    pub damp_auto_increment: f32,
    pub block_size: i32,
    pub fp16_scales_in_solve: bool,
    pub checkpoint_format: CheckpointFormat,
    /// int32 little-endian rows of `calib_seq_len` tokens; wins over `calib_text_path`.
    pub calib_tokens_path: Option<PathBuf>,
    /// UTF-8 text that random windows are sampled from. Neither path = self-generated text.
    pub calib_text_path: Option<PathBuf>,
    pub calib_n_samples: i32,
    pub calib_seq_len: i32,
    pub seed: u64,
    pub backend: Backend,
    pub n_threads: i32,
    /// 0 = one file.
    pub max_shard_bytes: i64,
    /// Per-group clipping search: 0 none, 1 MSE (default), 2 Hessian-weighted (gptq.h GPTQ_CLIP_*).
    pub clip_search: i32,
}

impl Default for QuantizeParams {
    fn default() -> Self {
        let d = unsafe { sys::gptq_quantize_params_default() };
        QuantizeParams {
            bits: d.bits,
            group_size: d.group_size,
            sym: d.sym != 0,
            desc_act: d.desc_act != 0,
            static_groups: d.static_groups != 0,
            true_sequential: d.true_sequential != 0,
            damp_percent: d.damp_percent,
            damp_auto_increment: d.damp_auto_increment,
            block_size: d.block_size,
            fp16_scales_in_solve: d.fp16_scales_in_solve != 0,
            checkpoint_format: match d.checkpoint_format {
                sys::GPTQ_FORMAT_V1 => CheckpointFormat::V1,
                sys::GPTQ_FORMAT_V2 => CheckpointFormat::V2,
                _ => CheckpointFormat::Auto,
            },
            calib_tokens_path: None,
            calib_text_path: None,
            calib_n_samples: d.calib_n_samples,
            calib_seq_len: d.calib_seq_len,
            seed: d.seed,
            backend: Backend::from_raw(d.backend),
            n_threads: d.n_threads,
            max_shard_bytes: d.max_shard_bytes,
            clip_search: d.clip_search,
        }
    }
}

pub(crate) struct RawQuantizeParams {
    pub raw: sys::gptq_quantize_params,
    _tokens: Option<CString>,
    _text: Option<CString>,
}

impl QuantizeParams {
    pub(crate) fn to_raw(&self) -> Result<RawQuantizeParams> {
        let tokens = self.calib_tokens_path.as_deref().map(path_to_cstring).transpose()?;
        let text = self.calib_text_path.as_deref().map(path_to_cstring).transpose()?;
        let mut r = unsafe { sys::gptq_quantize_params_default() };
        r.bits = self.bits;
        r.group_size = self.group_size;
        r.sym = flag(self.sym);
        r.desc_act = flag(self.desc_act);
        r.static_groups = flag(self.static_groups);
        r.true_sequential = flag(self.true_sequential);
        r.damp_percent = self.damp_percent;
        r.damp_auto_increment = self.damp_auto_increment;
        r.block_size = self.block_size;
        r.fp16_scales_in_solve = flag(self.fp16_scales_in_solve);
        r.checkpoint_format = match self.checkpoint_format {
            CheckpointFormat::Auto => sys::GPTQ_FORMAT_AUTO,
            CheckpointFormat::V1 => sys::GPTQ_FORMAT_V1,
            CheckpointFormat::V2 => sys::GPTQ_FORMAT_V2,
        };
        r.calib_tokens_path = tokens.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        r.calib_text_path = text.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        r.calib_n_samples = self.calib_n_samples;
        r.calib_seq_len = self.calib_seq_len;
        r.seed = self.seed;
        r.backend = self.backend.to_raw();
        r.n_threads = self.n_threads;
        r.max_shard_bytes = self.max_shard_bytes;
        r.clip_search = self.clip_search;
        Ok(RawQuantizeParams { raw: r, _tokens: tokens, _text: text })
    }
}
