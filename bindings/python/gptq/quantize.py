"""quantize(): GPTQ-quantize a model directory into a checkpoint directory."""

import ctypes
import os

from . import _lib
from ._callbacks import CallbackBridge
from .errors import InvalidArgumentError
from .model import backend_code

_FORMATS = {"auto": _lib.FORMAT_AUTO, "v1": _lib.FORMAT_V1, "gptq": _lib.FORMAT_V1, "v2": _lib.FORMAT_V2,
            "gptq_v2": _lib.FORMAT_V2}
_FLAGS = ("sym", "desc_act", "static_groups", "true_sequential", "fp16_scales_in_solve")
_CLIPS = {"none": 0, "mse": 1, "hessian": 2}
_NUMBERS = ("bits", "group_size", "damp_percent", "damp_auto_increment", "block_size", "calib_n_samples",
            "calib_seq_len", "seed", "n_threads", "max_shard_bytes")


def quantize(model_dir, out_dir, progress=None, **options):
    """Quantizes the model in model_dir layer by layer and writes a GPTQ checkpoint to out_dir
    (written to a temporary directory and renamed into place only when complete).

    options (unset ones take the library's defaults, see gptq.h): bits, group_size, sym,
    desc_act, static_groups, true_sequential, damp_percent, damp_auto_increment, block_size,
    fp16_scales_in_solve, checkpoint_format ("auto", "v1", "v2"), calib_tokens_path,
    calib_text_path, calib_n_samples, calib_seq_len, seed, backend ("auto", "cpu", "cuda"),
    n_threads, max_shard_bytes, clip_search ("none", "mse", "hessian"). progress(Progress) is called as work advances; returning True
    cancels (AbortedError).
    """
    lib = _lib.lib()
    p = lib.gptq_quantize_params_default()
    for name in _NUMBERS:
        v = options.pop(name, None)
        if v is not None:
            setattr(p, name, v)
    for name in _FLAGS:
        v = options.pop(name, None)
        if v is not None:
            setattr(p, name, int(bool(v)))
    fmt = options.pop("checkpoint_format", None)
    if fmt is not None:
        if isinstance(fmt, str):
            if fmt.lower() not in _FORMATS:
                raise InvalidArgumentError("checkpoint_format must be one of %s, not %r" % (sorted(_FORMATS), fmt))
            fmt = _FORMATS[fmt.lower()]
        p.checkpoint_format = fmt
    clip = options.pop("clip_search", None)
    if clip is not None:
        if isinstance(clip, str):
            if clip.lower() not in _CLIPS:
                raise InvalidArgumentError("clip_search must be one of %s, not %r" % (sorted(_CLIPS), clip))
            clip = _CLIPS[clip.lower()]
        p.clip_search = clip
    backend = options.pop("backend", None)
    if backend is not None:
        p.backend, _ = backend_code(backend)
    for name in ("calib_tokens_path", "calib_text_path"):
        v = options.pop(name, None)
        if v is not None:
            setattr(p, name, os.fsencode(os.fspath(v)))
    if options:
        raise TypeError("unknown quantize option(s): " + ", ".join(sorted(options)))
    bridge = CallbackBridge(progress=progress)
    p.progress = bridge.progress_fn
    status = lib.gptq_quantize(os.fsencode(os.fspath(model_dir)), os.fsencode(os.fspath(out_dir)),
                               ctypes.byref(p))
    bridge.finish(status)
