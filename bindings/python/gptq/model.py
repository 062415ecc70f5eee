"""Model: a loaded checkpoint, its metadata and its tokenizer."""

import ctypes
import os
import threading
from dataclasses import dataclass

from . import _lib
from ._callbacks import CallbackBridge
from ._handle import OwnedHandle
from .errors import InvalidArgumentError, check, last_error

_BACKENDS = {"auto": _lib.BACKEND_AUTO, "cpu": _lib.BACKEND_CPU, "cuda": _lib.BACKEND_CUDA}
_BACKEND_NAMES = {v: k for k, v in _BACKENDS.items()}


def backend_code(backend):
    """'auto' | 'cpu' | 'cuda' (or 'cuda:N') -> (GPTQ_BACKEND_*, device ordinal or None)."""
    if isinstance(backend, int):
        return backend, None
    name = str(backend).lower()
    device = None
    if name.startswith("cuda:"):
        name, device = "cuda", int(name.split(":", 1)[1])
    if name not in _BACKENDS:
        raise InvalidArgumentError("backend must be 'auto', 'cpu', 'cuda' or 'cuda:N', not %r" % (backend,))
    return _BACKENDS[name], device


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    bos_token: int          # -1 if none
    eos_token: int          # -1 if none
    add_bos: bool
    tied_embeddings: bool
    rope_theta: float
    rms_norm_eps: float
    n_params: int
    weight_bytes: int
    quant_bits: int         # 0 for a float model
    quant_group_size: int
    quant_sym: bool
    quant_desc_act: bool
    backend: str            # "cpu" or "cuda", as chosen at load


def _fs_path(path):
    return os.fsencode(os.fspath(path))


def _read_string(initial, call):
    """Calls a C function writing a NUL-terminated string into a sized buffer, growing the
    buffer when it answers BUFFER_SMALL with the size needed."""
    size = max(initial, 1)
    while True:
        buf = ctypes.create_string_buffer(size)
        n = ctypes.c_size_t(0)
        status = call(buf, size, ctypes.byref(n))
        if status == _lib.ERR_BUFFER_SMALL and n.value > size:
            size = n.value
            continue
        check(status)
        return buf.raw[:min(n.value, size)].decode("utf-8", "replace")


class Model(OwnedHandle):
    """A loaded model: ``Model(path, backend="auto"|"cpu"|"cuda"|"cuda:N", n_threads=0,
    progress=None)``. Immutable, so it may be shared by threads. Use it as a context manager or
    call ``close()``; contexts made from it keep it alive, so closing it first is fine.

    ``progress(p)`` is called with Progress(stage, done, total, detail) while loading; returning
    True cancels (AbortedError).
    """

    def __init__(self, path, backend="auto", device=0, n_threads=0, progress=None):
        lib = _lib.lib()
        self._lib = lib
        self._handle = None
        self._max_piece = None
        self._piece_lock = threading.Lock()
        code, dev = backend_code(backend)
        params = lib.gptq_load_params_default()
        params.backend = code
        params.device = device if dev is None else dev
        params.n_threads = n_threads
        bridge = CallbackBridge(progress=progress)
        params.progress = bridge.progress_fn
        out = ctypes.c_void_p()
        status = lib.gptq_load(_fs_path(path), ctypes.byref(params), ctypes.byref(out))
        bridge.finish(status)
        self._handle = out
        self.path = os.fspath(path)
        self.info = self._get_info()

    # ---------------------------------------------------------------- lifetime

    def _free(self, handle):
        # close() releases this reference to the model; contexts keep their own.
        self._lib.gptq_model_free(handle)

    @property
    def handle(self):
        if not self._handle:
            raise InvalidArgumentError("the model is closed")
        return self._handle

    def __repr__(self):
        return "<gptq.Model %r %s>" % (getattr(self, "path", "?"), "open" if self._handle else "closed")

    # ---------------------------------------------------------------- metadata

    def _get_info(self):
        s = _lib.ModelInfoStruct()
        s.struct_size = ctypes.sizeof(s)
        check(self._lib.gptq_model_get_info(self.handle, ctypes.byref(s)))
        return ModelInfo(
            architecture=s.architecture.decode("utf-8", "replace"), vocab_size=s.vocab_size,
            hidden_size=s.hidden_size, intermediate_size=s.intermediate_size, n_layers=s.n_layers,
            n_heads=s.n_heads, n_kv_heads=s.n_kv_heads, head_dim=s.head_dim,
            max_position_embeddings=s.max_position_embeddings, bos_token=s.bos_token,
            eos_token=s.eos_token, add_bos=bool(s.add_bos), tied_embeddings=bool(s.tied_embeddings),
            rope_theta=s.rope_theta, rms_norm_eps=s.rms_norm_eps, n_params=s.n_params,
            weight_bytes=s.weight_bytes, quant_bits=s.quant_bits, quant_group_size=s.quant_group_size,
            quant_sym=bool(s.quant_sym), quant_desc_act=bool(s.quant_desc_act),
            backend=_BACKEND_NAMES.get(s.backend, str(s.backend)))

    # ---------------------------------------------------------------- tokenizer

    def tokenize(self, text, add_bos=None):
        """UTF-8 text -> list of ids. add_bos: True/False, or None for the model's configs."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flag = -1 if add_bos is None else int(bool(add_bos))
        cap = len(data) + 4  # byte fallback: at most one token per byte, plus BOS
        while True:
            ids = (ctypes.c_int32 * cap)()
            n = ctypes.c_size_t(0)
            status = self._lib.gptq_tokenize(self.handle, data, len(data), flag, ids, cap, ctypes.byref(n))
            if status == _lib.ERR_BUFFER_SMALL and n.value > cap:
                cap = n.value
                continue
            check(status)
            return list(ids[:n.value])

    def detokenize(self, ids):
        """Ids -> text, as SentencePiece decodes them."""
        ids = list(ids)
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        return _read_string(len(ids) * 8 + 16, lambda buf, size, n: self._lib.gptq_detokenize(
            self.handle, arr, len(ids), buf, size, n))

    def token_piece(self, token):
        """The raw piece of one id, e.g. '▁the' or '<0x0A>'."""
        return _read_string(32, lambda buf, size, n: self._lib.gptq_token_piece(
            self.handle, token, buf, size, n))

    def max_piece_bytes(self):
        """Bytes of the longest piece: no token decodes to more (sizes generation buffers)."""
        with self._piece_lock:
            if self._max_piece is None:
                longest = 8
                buf = ctypes.create_string_buffer(256)
                n = ctypes.c_size_t(0)
                for t in range(self.info.vocab_size):
                    status = self._lib.gptq_token_piece(self.handle, t, buf, 256, ctypes.byref(n))
                    if status not in (_lib.OK, _lib.ERR_BUFFER_SMALL):
                        raise last_error(status)
                    longest = max(longest, n.value + 1)
                self._max_piece = longest
            return self._max_piece

    def context(self, **kwargs):
        """A new Context of this model (see Context for the options)."""
        from .context import Context
        return Context(self, **kwargs)
