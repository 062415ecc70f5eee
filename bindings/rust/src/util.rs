//! Small conversions shared by the wrapper modules.

use crate::error::{Error, Result};
use crate::sys;
use std::ffi::CString;
use std::path::Path;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CUDA when this build has it and the device is present and supported (Ampere or newer),
    /// else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl Backend {
    pub(crate) fn to_raw(self) -> i32 {
        match self {
            Backend::Auto => sys::GPTQ_BACKEND_AUTO,
            Backend::Cpu => sys::GPTQ_BACKEND_CPU,
            Backend::Cuda => sys::GPTQ_BACKEND_CUDA,
        }
    }

    pub(crate) fn from_raw(v: i32) -> Backend {
        match v {
            sys::GPTQ_BACKEND_CPU => Backend::Cpu,
            sys::GPTQ_BACKEND_CUDA => Backend::Cuda,
            _ => Backend::Auto,
        }
    }
}

pub(crate) fn str_to_cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid_arg(format!("{} contains a NUL byte", what)))
}

pub(crate) fn path_to_cstring(p: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        p.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = p
        .to_str()
        .ok_or_else(|| Error::invalid_arg(format!("path {:?} is not valid UTF-8", p)))?
        .as_bytes()
        .to_vec();
    CString::new(bytes).map_err(|_| Error::invalid_arg(format!("path {:?} contains a NUL byte", p)))
}

pub(crate) fn flag(b: bool) -> i32 {
    b as i32
}
