//! `Context`: the KV cache and scratch of one model, for evaluation and generation.

use crate::callbacks::{progress_trampoline, token_trampoline, CallbackState, Progress, Token};
use crate::error::{check, Error, Result};
use crate::model::Model;
use crate::params::{ContextParams, GenerateParams};
use crate::sys;
use crate::util::str_to_cstring;
use std::ops::ControlFlow;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};

/// One evaluation's tokens. `pos`, `seq_id` and `logits`, when given, must have one entry per
/// token. Without `pos` each sequence continues where it stopped; without `seq_id` all tokens
/// belong to sequence 0; without `logits` only the last token of each sequence keeps logits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub tokens: Vec<i32>,
    pub pos: Option<Vec<i32>>,
    pub seq_id: Option<Vec<i32>>,
    pub logits: Option<Vec<bool>>,
}

/// Result of [`Context::perplexity`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    pub ppl: f64,
    /// Tokens scored.
    pub n_tokens: i64,
}

/// A context of a model: used by one thread at a time, so it is `Send` but not `Sync`.
/// It keeps its model alive, so it may outlive the [`Model`] it was made from.
pub struct Context {
    raw: NonNull<sys::gptq_context>,
    n_ctx: usize,
    n_seq_max: usize,
    vocab_size: usize,
    max_piece_bytes: usize,
}

// SAFETY: gptq.h: "a gptq_context is used by one thread at a time" — moving it between threads
// is fine; sharing it is not, hence no Sync.
unsafe impl Send for Context {}

impl Context {
    pub fn new(model: &Model, params: &ContextParams) -> Result<Context> {
        let info = model.info()?;
        let max_piece_bytes = model.max_piece_bytes()?;
        let raw_params = params.to_raw();
        let mut out = ptr::null_mut();
        check(unsafe { sys::gptq_context_init(model.as_ptr(), &raw_params, &mut out) })?;
        let raw = NonNull::new(out).ok_or_else(|| Error::invalid_arg("gptq_context_init returned no context"))?;
        let n_ctx = if params.n_ctx > 0 {
            params.n_ctx
        } else {
            info.max_position_embeddings.clamp(1, 4096)
        };
        Ok(Context {
            raw,
            n_ctx: n_ctx as usize,
            n_seq_max: params.n_seq_max.max(1) as usize,
            vocab_size: info.vocab_size as usize,
            max_piece_bytes,
        })
    }

    pub fn as_ptr(&self) -> *mut sys::gptq_context {
        self.raw.as_ptr()
    }

    /// Forgets one sequence's KV cache.
    pub fn reset(&mut self, seq_id: i32) -> Result<()> {
        if seq_id < 0 {
            return Err(Error::invalid_arg("seq_id must be >= 0 (use reset_all)"));
        }
        check(unsafe { sys::gptq_context_reset(self.raw.as_ptr(), seq_id) })
    }

    /// Forgets every sequence.
    pub fn reset_all(&mut self) -> Result<()> {
        check(unsafe { sys::gptq_context_reset(self.raw.as_ptr(), -1) })
    }

    /// Number of positions sequence `seq_id` holds (where it continues).
    pub fn seq_len(&self, seq_id: i32) -> i32 {
        unsafe { sys::gptq_context_seq_len(self.raw.as_ptr(), seq_id) }
    }

    /// Evaluates tokens continuing sequence 0; the last token keeps its logits (index n-1).
    pub fn eval(&mut self, tokens: &[i32]) -> Result<()> {
        self.eval_batch(&Batch { tokens: tokens.to_vec(), ..Default::default() })
    }

    pub fn eval_batch(&mut self, batch: &Batch) -> Result<()> {
        let n = batch.tokens.len();
        let n_i32 = i32::try_from(n).map_err(|_| Error::invalid_arg("batch too large"))?;
        let same_len = |name: &str, len: Option<usize>| match len {
            Some(l) if l != n => Err(Error::invalid_arg(format!("batch.{} has {} entries for {} tokens", name, l, n))),
            _ => Ok(()),
        };
        same_len("pos", batch.pos.as_ref().map(Vec::len))?;
        same_len("seq_id", batch.seq_id.as_ref().map(Vec::len))?;
        same_len("logits", batch.logits.as_ref().map(Vec::len))?;
        let flags: Option<Vec<i8>> = batch.logits.as_ref().map(|v| v.iter().map(|&b| b as i8).collect());
        let raw = sys::gptq_batch {
            n_tokens: n_i32,
            tokens: batch.tokens.as_ptr(),
            pos: batch.pos.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
            seq_id: batch.seq_id.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
            logits: flags.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
        };
        check(unsafe { sys::gptq_eval(self.raw.as_ptr(), &raw) })
    }

    /// Logits (vocab_size floats) of the i-th token of the last batch. The borrow ends before
    /// the next eval, which is exactly how long the library keeps them.
    pub fn logits(&self, i: i32) -> Result<&[f32]> {
        let p = unsafe { sys::gptq_get_logits(self.raw.as_ptr(), i) };
        if p.is_null() {
            return Err(Error::from_last_call(sys::GPTQ_ERR_INVALID_ARG));
        }
        Ok(unsafe { std::slice::from_raw_parts(p, self.vocab_size) })
    }

    /// Generates a continuation of `prompt` (sequence 0, reset first) and returns its text.
    pub fn generate(&mut self, prompt: &str, params: &GenerateParams) -> Result<String> {
        self.generate_with(prompt, params, |_: &Token<'_>| ControlFlow::Continue(()))
    }

    /// Like [`generate`](Self::generate), calling `on_token` with each new token as it is made.
    /// Returning `ControlFlow::Break` stops generation; the text so far is then returned as `Ok`.
    pub fn generate_with<F>(&mut self, prompt: &str, params: &GenerateParams, on_token: F) -> Result<String>
    where
        F: FnMut(&Token<'_>) -> ControlFlow<()>,
    {
        let cprompt = str_to_cstring(prompt, "prompt")?;
        let mut rp = params.to_raw()?;
        let mut state = CallbackState::new(on_token);
        rp.raw.on_token = Some(token_trampoline::<F>);
        rp.raw.user_data = state.as_user_data();
        let mut buf = vec![0u8; self.output_capacity(params.max_tokens)];
        let mut len = 0usize;
        let status = unsafe {
            sys::gptq_generate(
                self.raw.as_ptr(),
                cprompt.as_ptr(),
                &rp.raw,
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                &mut len,
            )
        };
        state.finish_allowing_stop(status)?;
        buf.truncate(len.min(buf.len()));
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Generates for several prompts at once (needs `n_seq_max >= prompts.len()`); sequence i
    /// samples with seed + i.
    pub fn generate_batch(&mut self, prompts: &[&str], params: &GenerateParams) -> Result<Vec<String>> {
        self.generate_batch_with(prompts, params, |_: &Token<'_>| ControlFlow::Continue(()))
    }

    /// Like [`generate_batch`](Self::generate_batch) with streaming; `Token::seq` says which prompt.
    pub fn generate_batch_with<F>(
        &mut self,
        prompts: &[&str],
        params: &GenerateParams,
        on_token: F,
    ) -> Result<Vec<String>>
    where
        F: FnMut(&Token<'_>) -> ControlFlow<()>,
    {
        if prompts.len() > self.n_seq_max {
            return Err(Error::invalid_arg(format!(
                "{} prompts but the context holds {} sequences (ContextParams::n_seq_max)",
                prompts.len(),
                self.n_seq_max
            )));
        }
        let cprompts = prompts.iter().map(|p| str_to_cstring(p, "prompt")).collect::<Result<Vec<_>>>()?;
        let prompt_ptrs: Vec<*const c_char> = cprompts.iter().map(|p| p.as_ptr()).collect();
        let cap = self.output_capacity(params.max_tokens);
        let mut bufs: Vec<Vec<u8>> = prompts.iter().map(|_| vec![0u8; cap]).collect();
        let out_ptrs: Vec<*mut c_char> = bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut c_char).collect();
        let sizes: Vec<usize> = vec![cap; prompts.len()];
        let mut lens: Vec<usize> = vec![0; prompts.len()];
        let mut rp = params.to_raw()?;
        let mut state = CallbackState::new(on_token);
        rp.raw.on_token = Some(token_trampoline::<F>);
        rp.raw.user_data = state.as_user_data();
        let status = unsafe {
            sys::gptq_generate_batch(
                self.raw.as_ptr(),
                prompt_ptrs.as_ptr(),
                prompts.len() as i32,
                &rp.raw,
                out_ptrs.as_ptr(),
                sizes.as_ptr(),
                lens.as_mut_ptr(),
            )
        };
        state.finish_allowing_stop(status)?;
        Ok(bufs
            .into_iter()
            .zip(lens)
            .map(|(mut b, l)| {
                b.truncate(l.min(cap));
                String::from_utf8_lossy(&b).into_owned()
            })
            .collect())
    }

    /// Perplexity of `text` by the protocol of gptq.h (chunks of `seq_len`-1 targets);
    /// `max_chunks` <= 0 scores every chunk.
    pub fn perplexity(&mut self, text: &str, seq_len: i32, max_chunks: i32) -> Result<Perplexity> {
        self.perplexity_with_progress(text, seq_len, max_chunks, |_: &Progress<'_>| ControlFlow::Continue(()))
    }

    pub fn perplexity_with_progress<F>(
        &mut self,
        text: &str,
        seq_len: i32,
        max_chunks: i32,
        progress: F,
    ) -> Result<Perplexity>
    where
        F: FnMut(&Progress<'_>) -> ControlFlow<()>,
    {
        let mut state = CallbackState::new(progress);
        let mut ppl = 0f64;
        let mut n_tokens = 0i64;
        let status = unsafe {
            sys::gptq_perplexity(
                self.raw.as_ptr(),
                text.as_ptr() as *const c_char,
                text.len(),
                seq_len,
                max_chunks,
                Some(progress_trampoline::<F>),
                state.as_user_data(),
                &mut ppl,
                &mut n_tokens,
            )
        };
        state.finish(status)?;
        Ok(Perplexity { ppl, n_tokens })
    }

    /// Bytes enough for the text of `max_tokens` tokens: no token decodes to more bytes than
    /// the longest piece of the vocabulary, and no sequence outgrows the context.
    fn output_capacity(&self, max_tokens: i32) -> usize {
        let n = if max_tokens > 0 { (max_tokens as usize).min(self.n_ctx) } else { self.n_ctx };
        n * self.max_piece_bytes + 64
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { sys::gptq_context_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("raw", &self.raw).field("n_ctx", &self.n_ctx).finish()
    }
}
