//! `quantize`: GPTQ-quantize a model directory into a checkpoint directory.

use crate::callbacks::{progress_trampoline, CallbackState, Progress};
use crate::error::Result;
use crate::params::QuantizeParams;
use crate::sys;
use crate::util::path_to_cstring;
use std::ops::ControlFlow;
use std::path::Path;

/// Quantizes the model in `model_dir` layer by layer and writes a GPTQ checkpoint to `out_dir`
/// (written to a temporary directory and renamed into place only when complete).
pub fn quantize(model_dir: impl AsRef<Path>, out_dir: impl AsRef<Path>, params: &QuantizeParams) -> Result<()> {
    quantize_with_progress(model_dir, out_dir, params, |_: &Progress<'_>| ControlFlow::Continue(()))
}

/// Like [`quantize`], reporting progress; `ControlFlow::Break` cancels (an `Aborted` error).
pub fn quantize_with_progress<F>(
    model_dir: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    params: &QuantizeParams,
    progress: F,
) -> Result<()>
where
    F: FnMut(&Progress<'_>) -> ControlFlow<()>,
{
    let src = path_to_cstring(model_dir.as_ref())?;
    let dst = path_to_cstring(out_dir.as_ref())?;
    let mut rp = params.to_raw()?;
    let mut state = CallbackState::new(progress);
    rp.raw.progress = Some(progress_trampoline::<F>);
    rp.raw.progress_user_data = state.as_user_data();
    let status = unsafe { sys::gptq_quantize(src.as_ptr(), dst.as_ptr(), &rp.raw) };
    state.finish(status)
}
