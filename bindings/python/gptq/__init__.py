"""Python bindings for libgptq: load Llama-family models, run them, and quantize them with GPTQ.

Pure ctypes: the package has no compiled part; it finds libgptq.so through $GPTQ_LIB,
$GPTQ_LIB_DIR, the source tree's build*/ directories, or the system loader.

Low level (mirrors gptq.h)::

    import gptq
    with gptq.Model("models/docs-llama-8m") as model, model.context() as ctx:
        print(ctx.generate("Once upon a time", max_tokens=32, temperature=0))
        for tok in ctx.stream("The", max_tokens=16):
            print(tok.text, end="", flush=True)

AutoGPTQ-style::

    from gptq import GPTQModel, BaseQuantizeConfig
    model = GPTQModel.from_pretrained("models/docs-llama-8m", BaseQuantizeConfig(bits=4, group_size=128))
    model.quantize(["some calibration text ...", "more text ..."])
    model.save_quantized("out/docs-llama-8m-w4g128")
    model = GPTQModel.from_quantized("out/docs-llama-8m-w4g128", device="cpu")
    print(model.generate("Once upon a time", max_new_tokens=32))
"""

from . import _lib
from ._callbacks import Progress, Token
from ._lib import BINDING_VERSION, LibraryNotFoundError
from .auto import BaseQuantizeConfig, GPTQModel
from .context import Context
from .errors import (AbortedError, BackendError, BufferTooSmallError, ContextFullError, FormatError,
                     GPTQError, GPTQFileError, InternalError, InvalidArgumentError, NumericError,
                     OutOfMemoryError, Status, UnsupportedError)
from .model import Model, ModelInfo
from .quantize import quantize

__version__ = BINDING_VERSION


def version():
    """The library's version at run time, e.g. "0.1.0"."""
    return _lib.lib().gptq_version().decode()


def build_info():
    """Which optional parts the library has, e.g. "cpu cuda openblas mimalloc"."""
    return _lib.lib().gptq_build_info().decode()


def cuda_available():
    """Whether the library has the CUDA backend and a usable device."""
    return bool(_lib.lib().gptq_cuda_available())


# Every ctypes callback ever installed stays referenced: another thread may still be inside
# one that was just replaced.
_log_fns = []


def set_log_callback(callback):
    """Routes the library's log messages to callback(level, message) (level 0 error .. 3 debug),
    from any thread; None silences the library again. Exceptions in the callback are ignored."""
    lib = _lib.lib()
    if callback is None:
        lib.gptq_set_log_callback(_lib.LOG_CALLBACK(), None)
        return

    def trampoline(level, message, user_data):
        try:
            callback(level, (message or b"").decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - must not unwind into C
            pass

    fn = _lib.LOG_CALLBACK(trampoline)
    _log_fns.append(fn)
    lib.gptq_set_log_callback(fn, None)


__all__ = [
    "AbortedError", "BackendError", "BaseQuantizeConfig", "BufferTooSmallError", "Context",
    "ContextFullError", "FormatError", "GPTQError", "GPTQFileError", "GPTQModel", "InternalError",
    "InvalidArgumentError", "LibraryNotFoundError", "Model", "ModelInfo", "NumericError",
    "OutOfMemoryError", "Progress", "Status", "Token", "UnsupportedError", "build_info",
    "cuda_available", "quantize", "set_log_callback", "version",
]
