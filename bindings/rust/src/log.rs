//! The process-wide log callback.

use crate::sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

type LogFn = Box<dyn Fn(LogLevel, &str) + Send + Sync + 'static>;

unsafe extern "C" fn log_trampoline(level: i32, message: *const c_char, user_data: *mut c_void) {
    let f = &*(user_data as *const LogFn);
    let level = match level {
        sys::GPTQ_LOG_ERROR => LogLevel::Error,
        sys::GPTQ_LOG_WARN => LogLevel::Warn,
        sys::GPTQ_LOG_INFO => LogLevel::Info,
        _ => LogLevel::Debug,
    };
    let msg = if message.is_null() { Default::default() } else { CStr::from_ptr(message).to_string_lossy() };
    // A panic must not unwind into C; a logger that panics just loses that message.
    let _ = catch_unwind(AssertUnwindSafe(|| f(level, &msg)));
}

/// Routes the library's log messages (no trailing newline) to `callback`, from any thread;
/// `None` silences the library again (the default). A replaced callback is leaked on purpose:
/// another thread may still be inside it.
pub fn set_log_callback(callback: Option<LogFn>) {
    match callback {
        None => unsafe { sys::gptq_set_log_callback(None, std::ptr::null_mut()) },
        Some(f) => {
            let leaked: &'static LogFn = Box::leak(Box::new(f));
            unsafe {
                sys::gptq_set_log_callback(Some(log_trampoline), leaked as *const LogFn as *mut c_void)
            }
        }
    }
}
