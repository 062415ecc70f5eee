//! Raw declarations of the C API in `gptq.h`, written by hand (no bindgen).
//!
//! Everything here is `unsafe` to use and mirrors the header one to one; the safe wrapper lives
//! in the other modules. Struct layouts must match the C ones exactly: each `*_params_default()`
//! fills `struct_size` with the C `sizeof`, which the tests compare with `size_of` here.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::os::raw::{c_char, c_void};

pub type gptq_status = i32;

pub const GPTQ_OK: gptq_status = 0;
pub const GPTQ_ERR_INVALID_ARG: gptq_status = 1;
pub const GPTQ_ERR_IO: gptq_status = 2;
pub const GPTQ_ERR_FORMAT: gptq_status = 3;
pub const GPTQ_ERR_UNSUPPORTED: gptq_status = 4;
pub const GPTQ_ERR_OOM: gptq_status = 5;
pub const GPTQ_ERR_BACKEND: gptq_status = 6;
pub const GPTQ_ERR_BUFFER_SMALL: gptq_status = 7;
pub const GPTQ_ERR_CONTEXT_FULL: gptq_status = 8;
pub const GPTQ_ERR_ABORTED: gptq_status = 9;
pub const GPTQ_ERR_NUMERIC: gptq_status = 10;
pub const GPTQ_ERR_INTERNAL: gptq_status = 11;

pub const GPTQ_LOG_ERROR: i32 = 0;
pub const GPTQ_LOG_WARN: i32 = 1;
pub const GPTQ_LOG_INFO: i32 = 2;
pub const GPTQ_LOG_DEBUG: i32 = 3;

pub const GPTQ_BACKEND_AUTO: i32 = 0;
pub const GPTQ_BACKEND_CPU: i32 = 1;
pub const GPTQ_BACKEND_CUDA: i32 = 2;

pub const GPTQ_FORMAT_AUTO: i32 = 0;
pub const GPTQ_FORMAT_V1: i32 = 1;
pub const GPTQ_FORMAT_V2: i32 = 2;

/// Opaque model handle.
#[repr(C)]
pub struct gptq_model {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque context handle.
#[repr(C)]
pub struct gptq_context {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

pub type gptq_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

pub type gptq_progress_callback = Option<
    unsafe extern "C" fn(
        stage: *const c_char,
        done: i64,
        total: i64,
        detail: *const c_char,
        user_data: *mut c_void,
    ) -> i32,
>;

pub type gptq_token_callback = Option<
    unsafe extern "C" fn(
        seq: i32,
        token: i32,
        text: *const c_char,
        text_len: usize,
        user_data: *mut c_void,
    ) -> i32,
>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_load_params {
    pub struct_size: usize,
    pub backend: i32,
    pub device: i32,
    pub n_threads: i32,
    pub progress: gptq_progress_callback,
    pub progress_user_data: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_model_info {
    pub struct_size: usize,
    pub architecture: [c_char; 64],
    pub vocab_size: i32,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub n_layers: i32,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub max_position_embeddings: i32,
    pub bos_token: i32,
    pub eos_token: i32,
    pub add_bos: i32,
    pub tied_embeddings: i32,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub n_params: i64,
    pub weight_bytes: i64,
    pub quant_bits: i32,
    pub quant_group_size: i32,
    pub quant_sym: i32,
    pub quant_desc_act: i32,
    pub backend: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_context_params {
    pub struct_size: usize,
    pub n_ctx: i32,
    pub n_seq_max: i32,
    pub n_batch: i32,
    pub n_threads: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_batch {
    pub n_tokens: i32,
    pub tokens: *const i32,
    pub pos: *const i32,
    pub seq_id: *const i32,
    pub logits: *const i8,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_generate_params {
    pub struct_size: usize,
    pub max_tokens: i32,
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u64,
    pub add_bos: i32,
    pub stop_at_eos: i32,
    pub stop_strings: *const *const c_char,
    pub n_stop_strings: i32,
    pub on_token: gptq_token_callback,
    pub user_data: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct gptq_quantize_params {
    pub struct_size: usize,
    pub bits: i32,
    pub group_size: i32,
    pub sym: i32,
    pub desc_act: i32,
    pub static_groups: i32,
    pub true_sequential: i32,
    pub damp_percent: f32,
    pub damp_auto_increment: f32,
    pub block_size: i32,
    pub fp16_scales_in_solve: i32,
    pub checkpoint_format: i32,
    pub calib_tokens_path: *const c_char,
    pub calib_text_path: *const c_char,
    pub calib_n_samples: i32,
    pub calib_seq_len: i32,
    pub seed: u64,
    pub backend: i32,
    pub n_threads: i32,
    pub max_shard_bytes: i64,
    pub progress: gptq_progress_callback,
    pub progress_user_data: *mut c_void,
    pub clip_search: i32,
}

extern "C" {
    pub fn gptq_status_str(status: gptq_status) -> *const c_char;
    pub fn gptq_errmsg() -> *const c_char;
    pub fn gptq_version() -> *const c_char;
    pub fn gptq_build_info() -> *const c_char;

    pub fn gptq_set_log_callback(callback: gptq_log_callback, user_data: *mut c_void);
    pub fn gptq_cuda_available() -> i32;

    pub fn gptq_load_params_default() -> gptq_load_params;
    pub fn gptq_load(
        model_dir: *const c_char,
        params: *const gptq_load_params,
        out_model: *mut *mut gptq_model,
    ) -> gptq_status;
    pub fn gptq_model_free(model: *mut gptq_model);
    pub fn gptq_model_get_info(model: *const gptq_model, info: *mut gptq_model_info) -> gptq_status;

    pub fn gptq_tokenize(
        model: *const gptq_model,
        text: *const c_char,
        text_len: usize,
        add_bos: i32,
        tokens: *mut i32,
        n_max: usize,
        n_out: *mut usize,
    ) -> gptq_status;
    pub fn gptq_detokenize(
        model: *const gptq_model,
        tokens: *const i32,
        n_tokens: usize,
        text: *mut c_char,
        text_size: usize,
        n_out: *mut usize,
    ) -> gptq_status;
    pub fn gptq_token_piece(
        model: *const gptq_model,
        token: i32,
        text: *mut c_char,
        text_size: usize,
        n_out: *mut usize,
    ) -> gptq_status;

    pub fn gptq_context_params_default() -> gptq_context_params;
    pub fn gptq_context_init(
        model: *mut gptq_model,
        params: *const gptq_context_params,
        out_ctx: *mut *mut gptq_context,
    ) -> gptq_status;
    pub fn gptq_context_free(ctx: *mut gptq_context);
    pub fn gptq_context_reset(ctx: *mut gptq_context, seq_id: i32) -> gptq_status;
    pub fn gptq_eval(ctx: *mut gptq_context, batch: *const gptq_batch) -> gptq_status;
    pub fn gptq_get_logits(ctx: *mut gptq_context, i: i32) -> *const f32;
    pub fn gptq_context_seq_len(ctx: *const gptq_context, seq_id: i32) -> i32;

    pub fn gptq_generate_params_default() -> gptq_generate_params;
    pub fn gptq_generate(
        ctx: *mut gptq_context,
        prompt: *const c_char,
        params: *const gptq_generate_params,
        out: *mut c_char,
        out_size: usize,
        out_len: *mut usize,
    ) -> gptq_status;
    pub fn gptq_generate_batch(
        ctx: *mut gptq_context,
        prompts: *const *const c_char,
        n_prompts: i32,
        params: *const gptq_generate_params,
        outs: *const *mut c_char,
        out_sizes: *const usize,
        out_lens: *mut usize,
    ) -> gptq_status;

    pub fn gptq_perplexity(
        ctx: *mut gptq_context,
        text: *const c_char,
        text_len: usize,
        seq_len: i32,
        max_chunks: i32,
        progress: gptq_progress_callback,
        progress_user_data: *mut c_void,
        out_ppl: *mut f64,
        out_n_tokens: *mut i64,
    ) -> gptq_status;

    pub fn gptq_quantize_params_default() -> gptq_quantize_params;
    pub fn gptq_quantize(
        model_dir: *const c_char,
        out_dir: *const c_char,
        params: *const gptq_quantize_params,
    ) -> gptq_status;
}
