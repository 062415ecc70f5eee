"""Finding and loading libgptq, and the ctypes declarations of gptq.h (one to one).

The library is looked up, in order, at $GPTQ_LIB (a file), in $GPTQ_LIB_DIR, in the build
directories of the source tree this package sits in (build*/ at the repository root), and by
the system's loader (ctypes.util.find_library). It is loaded on first use, so importing the
package never fails for want of it.
"""

import ctypes
import ctypes.util
import glob
import os
import threading

from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int8, c_int32,
                    c_int64, c_size_t, c_uint64, c_void_p, CFUNCTYPE)

# ---------------------------------------------------------------- constants of gptq.h

OK = 0
ERR_INVALID_ARG = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_UNSUPPORTED = 4
ERR_OOM = 5
ERR_BACKEND = 6
ERR_BUFFER_SMALL = 7
ERR_CONTEXT_FULL = 8
ERR_ABORTED = 9
ERR_NUMERIC = 10
ERR_INTERNAL = 11

BACKEND_AUTO = 0
BACKEND_CPU = 1
BACKEND_CUDA = 2

FORMAT_AUTO = 0
FORMAT_V1 = 1
FORMAT_V2 = 2

BINDING_VERSION = "0.1.0"

# ---------------------------------------------------------------- callback and struct types

LOG_CALLBACK = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)
# Text arguments are declared as void pointers: ctypes would otherwise turn them into bytes
# before we can honour text_len or a NULL detail.
PROGRESS_CALLBACK = CFUNCTYPE(c_int32, c_void_p, c_int64, c_int64, c_void_p, c_void_p)
TOKEN_CALLBACK = CFUNCTYPE(c_int32, c_int32, c_int32, c_void_p, c_size_t, c_void_p)


class LoadParams(Structure):
    _fields_ = [("struct_size", c_size_t), ("backend", c_int32), ("device", c_int32),
                ("n_threads", c_int32), ("progress", PROGRESS_CALLBACK),
                ("progress_user_data", c_void_p)]


class ModelInfoStruct(Structure):
    _fields_ = [("struct_size", c_size_t), ("architecture", c_char * 64), ("vocab_size", c_int32),
                ("hidden_size", c_int32), ("intermediate_size", c_int32), ("n_layers", c_int32),
                ("n_heads", c_int32), ("n_kv_heads", c_int32), ("head_dim", c_int32),
                ("max_position_embeddings", c_int32), ("bos_token", c_int32),
                ("eos_token", c_int32), ("add_bos", c_int32), ("tied_embeddings", c_int32),
                ("rope_theta", c_float), ("rms_norm_eps", c_float), ("n_params", c_int64),
                ("weight_bytes", c_int64), ("quant_bits", c_int32), ("quant_group_size", c_int32),
                ("quant_sym", c_int32), ("quant_desc_act", c_int32), ("backend", c_int32)]


class ContextParams(Structure):
    _fields_ = [("struct_size", c_size_t), ("n_ctx", c_int32), ("n_seq_max", c_int32),
                ("n_batch", c_int32), ("n_threads", c_int32)]


class BatchStruct(Structure):
    _fields_ = [("n_tokens", c_int32), ("tokens", POINTER(c_int32)), ("pos", POINTER(c_int32)),
                ("seq_id", POINTER(c_int32)), ("logits", POINTER(c_int8))]


class GenerateParams(Structure):
    _fields_ = [("struct_size", c_size_t), ("max_tokens", c_int32), ("temperature", c_float),
                ("top_k", c_int32), ("top_p", c_float), ("min_p", c_float),
                ("repeat_penalty", c_float), ("repeat_last_n", c_int32), ("seed", c_uint64),
                ("add_bos", c_int32), ("stop_at_eos", c_int32),
                ("stop_strings", POINTER(c_char_p)), ("n_stop_strings", c_int32),
                ("on_token", TOKEN_CALLBACK), ("user_data", c_void_p)]


class QuantizeParams(Structure):
    _fields_ = [("struct_size", c_size_t), ("bits", c_int32), ("group_size", c_int32),
                ("sym", c_int32), ("desc_act", c_int32), ("static_groups", c_int32),
                ("true_sequential", c_int32), ("damp_percent", c_float),
                ("damp_auto_increment", c_float), ("block_size", c_int32),
                ("fp16_scales_in_solve", c_int32), ("checkpoint_format", c_int32),
                ("calib_tokens_path", c_char_p), ("calib_text_path", c_char_p),
                ("calib_n_samples", c_int32), ("calib_seq_len", c_int32), ("seed", c_uint64),
                ("backend", c_int32), ("n_threads", c_int32), ("max_shard_bytes", c_int64),
                ("progress", PROGRESS_CALLBACK), ("progress_user_data", c_void_p),
                ("clip_search", c_int32)]


_model_p = c_void_p
_ctx_p = c_void_p

# name: (restype, argtypes)
_SIGNATURES = {
    "gptq_status_str": (c_char_p, [c_int32]),
    "gptq_errmsg": (c_char_p, []),
    "gptq_version": (c_char_p, []),
    "gptq_build_info": (c_char_p, []),
    "gptq_set_log_callback": (None, [LOG_CALLBACK, c_void_p]),
    "gptq_cuda_available": (c_int32, []),
    "gptq_load_params_default": (LoadParams, []),
    "gptq_load": (c_int32, [c_char_p, POINTER(LoadParams), POINTER(_model_p)]),
    "gptq_model_free": (None, [_model_p]),
    "gptq_model_get_info": (c_int32, [_model_p, POINTER(ModelInfoStruct)]),
    "gptq_tokenize": (c_int32, [_model_p, c_char_p, c_size_t, c_int32, POINTER(c_int32), c_size_t,
                                POINTER(c_size_t)]),
    "gptq_detokenize": (c_int32, [_model_p, POINTER(c_int32), c_size_t, c_void_p, c_size_t,
                                  POINTER(c_size_t)]),
    "gptq_token_piece": (c_int32, [_model_p, c_int32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "gptq_context_params_default": (ContextParams, []),
    "gptq_context_init": (c_int32, [_model_p, POINTER(ContextParams), POINTER(_ctx_p)]),
    "gptq_context_free": (None, [_ctx_p]),
    "gptq_context_reset": (c_int32, [_ctx_p, c_int32]),
    "gptq_eval": (c_int32, [_ctx_p, POINTER(BatchStruct)]),
    "gptq_get_logits": (POINTER(c_float), [_ctx_p, c_int32]),
    "gptq_context_seq_len": (c_int32, [_ctx_p, c_int32]),
    "gptq_generate_params_default": (GenerateParams, []),
    "gptq_generate": (c_int32, [_ctx_p, c_char_p, POINTER(GenerateParams), c_void_p, c_size_t,
                                POINTER(c_size_t)]),
    "gptq_generate_batch": (c_int32, [_ctx_p, POINTER(c_char_p), c_int32, POINTER(GenerateParams),
                                      POINTER(c_void_p), POINTER(c_size_t), POINTER(c_size_t)]),
    "gptq_perplexity": (c_int32, [_ctx_p, c_char_p, c_size_t, c_int32, c_int32, PROGRESS_CALLBACK,
                                  c_void_p, POINTER(c_double), POINTER(c_int64)]),
    "gptq_quantize_params_default": (QuantizeParams, []),
    "gptq_quantize": (c_int32, [c_char_p, c_char_p, POINTER(QuantizeParams)]),
}


class LibraryNotFoundError(OSError):
    """libgptq could not be found or loaded."""


_lock = threading.Lock()
_lib = None


def _repo_root():
    # bindings/python/gptq/_lib.py -> the repository root
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def candidate_paths():
    """Where the library is looked for, in order."""
    paths = []
    if os.environ.get("GPTQ_LIB"):
        paths.append(os.environ["GPTQ_LIB"])
    if os.environ.get("GPTQ_LIB_DIR"):
        paths.append(os.path.join(os.environ["GPTQ_LIB_DIR"], "libgptq.so"))
    paths.extend(sorted(glob.glob(os.path.join(_repo_root(), "build*", "libgptq.so"))))
    found = ctypes.util.find_library("gptq")
    if found:
        paths.append(found)
    return paths


def lib():
    """The loaded library (loaded on first call)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            tried = []
            for path in candidate_paths():
                # A path with a directory must exist; a bare name is for the system loader.
                if os.path.sep in path and not os.path.exists(path):
                    tried.append(path + " (missing)")
                    continue
                try:
                    handle = ctypes.CDLL(path)
                except OSError as e:
                    tried.append("%s (%s)" % (path, e))
                    continue
                _declare(handle)
                _lib = handle
                break
            else:
                raise LibraryNotFoundError(
                    "libgptq not found; set GPTQ_LIB=/path/to/libgptq.so or GPTQ_LIB_DIR. Tried: "
                    + ("; ".join(tried) if tried else "nothing (no candidates)"))
    return _lib


def _declare(handle):
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(handle, name)
        fn.restype = restype
        fn.argtypes = argtypes
