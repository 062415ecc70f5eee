//! The error type: a `gptq_status` turned into a kind, plus the library's message.

use crate::sys;
use std::ffi::CStr;
use std::fmt;

/// What went wrong, one variant per `GPTQ_ERR_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidArg,
    Io,
    Format,
    Unsupported,
    OutOfMemory,
    Backend,
    BufferSmall,
    ContextFull,
    Aborted,
    Numeric,
    Internal,
    /// A status code this binding does not know (the C enum is append-only).
    Other(i32),
}

impl ErrorKind {
    pub fn from_status(status: i32) -> ErrorKind {
        match status {
            sys::GPTQ_ERR_INVALID_ARG => ErrorKind::InvalidArg,
            sys::GPTQ_ERR_IO => ErrorKind::Io,
            sys::GPTQ_ERR_FORMAT => ErrorKind::Format,
            sys::GPTQ_ERR_UNSUPPORTED => ErrorKind::Unsupported,
            sys::GPTQ_ERR_OOM => ErrorKind::OutOfMemory,
            sys::GPTQ_ERR_BACKEND => ErrorKind::Backend,
            sys::GPTQ_ERR_BUFFER_SMALL => ErrorKind::BufferSmall,
            sys::GPTQ_ERR_CONTEXT_FULL => ErrorKind::ContextFull,
            sys::GPTQ_ERR_ABORTED => ErrorKind::Aborted,
            sys::GPTQ_ERR_NUMERIC => ErrorKind::Numeric,
            sys::GPTQ_ERR_INTERNAL => ErrorKind::Internal,
            other => ErrorKind::Other(other),
        }
    }
}

/// A failed libgptq call (or an argument this binding refused before calling it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: i32,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The error of the call that just returned `status` on this thread: the message is read
    /// from `gptq_errmsg()` right away, before any other call can overwrite it.
    pub(crate) fn from_last_call(status: i32) -> Error {
        // SAFETY: gptq_errmsg never returns NULL and the string stays valid until the next call.
        let msg = unsafe { cstr_lossy(sys::gptq_errmsg()) };
        let message = if msg.is_empty() { status_str(status) } else { msg };
        Error { status, message }
    }

    /// An error raised by the binding itself (bad argument caught before reaching C).
    pub(crate) fn invalid_arg(message: impl Into<String>) -> Error {
        Error { status: sys::GPTQ_ERR_INVALID_ARG, message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_status(self.status)
    }

    /// The raw `gptq_status` code.
    pub fn status(&self) -> i32 {
        self.status
    }

    /// The library's message, e.g. the file or tensor that was wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, status_str(self.status))
    }
}

impl std::error::Error for Error {}

/// Turns a status into `Ok(())` or the error carrying this thread's message.
pub(crate) fn check(status: i32) -> Result<()> {
    if status == sys::GPTQ_OK {
        Ok(())
    } else {
        Err(Error::from_last_call(status))
    }
}

/// The static text for a status code, e.g. "I/O error".
pub fn status_str(status: i32) -> String {
    // SAFETY: gptq_status_str returns static, never-NULL text.
    unsafe { cstr_lossy(sys::gptq_status_str(status)) }
}

/// Copies a C string (NULL reads as "").
pub(crate) unsafe fn cstr_lossy(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
