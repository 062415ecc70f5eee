//! Trampolines that let C call Rust closures (progress and token streaming).
//!
//! The closure travels through the C `user_data` pointer as `&mut CallbackState<F>`. A panic
//! must not unwind into C, so it is caught, the C call is asked to stop (nonzero return), and
//! the panic is resumed once the C call has returned.

use crate::error::{check, Result};
use crate::sys;
use std::any::Any;
use std::ffi::CStr;
use std::ops::ControlFlow;
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// One progress report of long work (loading, quantizing, perplexity).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// "load", "quantize", "perplexity", ...
    pub stage: &'a str,
    pub done: i64,
    pub total: i64,
    /// A short text such as "layer 3/8 mlp.down_proj err 1.2e-3", when the library gives one.
    pub detail: Option<&'a str>,
}

/// One generated token as it is streamed.
#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    /// Index of the prompt this token continues (0 for `generate`).
    pub seq: i32,
    /// The token id.
    pub id: i32,
    /// The UTF-8 text this token completes; empty while a character is split across tokens.
    pub text: &'a str,
}

pub(crate) struct CallbackState<F> {
    f: F,
    panic: Option<Box<dyn Any + Send>>,
    /// The closure returned `Break` (as opposed to the library aborting on its own).
    pub(crate) stopped: bool,
}

impl<F> CallbackState<F> {
    pub(crate) fn new(f: F) -> Self {
        CallbackState { f, panic: None, stopped: false }
    }

    pub(crate) fn as_user_data(&mut self) -> *mut c_void {
        self as *mut Self as *mut c_void
    }

    /// Call after the C function returned: re-raises a panic of the closure, else checks the
    /// status (a stop the closure asked for is then an `Aborted` error).
    pub(crate) fn finish(self, status: i32) -> Result<()> {
        // Read the message before anything else can call into the library.
        let result = check(status);
        if let Some(payload) = self.panic {
            resume_unwind(payload);
        }
        result
    }

    /// Like `finish`, but a stop the closure asked for is a normal end (generation).
    pub(crate) fn finish_allowing_stop(self, status: i32) -> Result<()> {
        if status == sys::GPTQ_ERR_ABORTED && self.stopped && self.panic.is_none() {
            return Ok(());
        }
        self.finish(status)
    }

    fn run(&mut self, call: impl FnOnce(&mut F) -> ControlFlow<()>) -> i32 {
        if self.panic.is_some() || self.stopped {
            return 1;
        }
        match catch_unwind(AssertUnwindSafe(|| call(&mut self.f))) {
            Ok(ControlFlow::Continue(())) => 0,
            Ok(ControlFlow::Break(())) => {
                self.stopped = true;
                1
            }
            Err(payload) => {
                self.panic = Some(payload);
                1
            }
        }
    }
}

unsafe fn str_or_empty<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        ""
    } else {
        CStr::from_ptr(p).to_str().unwrap_or("")
    }
}

pub(crate) unsafe extern "C" fn progress_trampoline<F>(
    stage: *const c_char,
    done: i64,
    total: i64,
    detail: *const c_char,
    user_data: *mut c_void,
) -> i32
where
    F: FnMut(&Progress<'_>) -> ControlFlow<()>,
{
    let state = &mut *(user_data as *mut CallbackState<F>);
    let progress = Progress {
        stage: str_or_empty(stage),
        done,
        total,
        detail: if detail.is_null() { None } else { Some(str_or_empty(detail)) },
    };
    state.run(|f| f(&progress))
}

pub(crate) unsafe extern "C" fn token_trampoline<F>(
    seq: i32,
    token: i32,
    text: *const c_char,
    text_len: usize,
    user_data: *mut c_void,
) -> i32
where
    F: FnMut(&Token<'_>) -> ControlFlow<()>,
{
    let state = &mut *(user_data as *mut CallbackState<F>);
    let bytes: &[u8] = if text.is_null() || text_len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(text as *const u8, text_len)
    };
    let owned;
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => {
            owned = String::from_utf8_lossy(bytes).into_owned();
            owned.as_str()
        }
    };
    let tok = Token { seq, id: token, text };
    state.run(|f| f(&tok))
}
