"""An AutoGPTQ-style surface: BaseQuantizeConfig and GPTQModel.

Names and argument meanings follow AutoGPTQ where they make sense. Differences (see README.md):
generate() takes and returns text, not token tensors; quantize() takes texts or token-id lists
(or AutoGPTQ-style dicts with "input_ids"), and how many windows of how many tokens it uses is
set with n_samples / seq_len; device is "cpu", "cuda" or "cuda:N" (no torch devices); the saved
weights file is named by the library (model.safetensors), not gptq_model-4bit-128g.safetensors.
"""

import array
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .context import Context
from .errors import GPTQFileError, InvalidArgumentError
from .model import Model
from .quantize import quantize as _quantize

_FORMAT_NAMES = {"gptq": "v1", "gptq_v2": "v2", "auto": "auto"}


@dataclass
class BaseQuantizeConfig:
    """How to quantize. Fields and defaults are AutoGPTQ's (group_size=-1, desc_act=True,
    static_groups=False); note that the C library's own defaults, used by gptq.quantize(), are
    group_size=128 and static_groups=True. checkpoint_format is "gptq" (v1), "gptq_v2", or
    "auto" (v1 unless an asymmetric zero would overflow, then v2)."""

    bits: int = field(default=4, metadata={"choices": [2, 3, 4, 8]})
    group_size: int = -1
    damp_percent: float = 0.01
    desc_act: bool = True
    static_groups: bool = False
    sym: bool = True
    true_sequential: bool = True
    checkpoint_format: str = "auto"
    model_name_or_path: Optional[str] = None
    model_file_base_name: Optional[str] = None

    def __post_init__(self):
        if self.bits not in fields(self)[0].metadata["choices"]:
            raise ValueError("bits must be one of 2, 3, 4, 8, not %r" % (self.bits,))
        if self.group_size != -1 and self.group_size <= 0:
            raise ValueError("group_size must be -1 or positive, not %r" % (self.group_size,))
        if not 0 < self.damp_percent < 1:
            raise ValueError("damp_percent must be between 0 and 1, not %r" % (self.damp_percent,))
        if self.checkpoint_format not in _FORMAT_NAMES:
            raise ValueError("checkpoint_format must be one of %s" % sorted(_FORMAT_NAMES))

    def to_dict(self):
        return asdict(self)

    def save_pretrained(self, save_dir):
        """Writes quantize_config.json (with quant_method "gptq") into save_dir."""
        d = {k: v for k, v in self.to_dict().items() if v is not None}
        d["quant_method"] = "gptq"
        if d.get("checkpoint_format") == "auto":
            d.pop("checkpoint_format")
        with open(os.path.join(save_dir, "quantize_config.json"), "w", encoding="utf-8") as f:
            json.dump(d, f, indent=2)

    @classmethod
    def from_pretrained(cls, save_dir):
        """Reads quantize_config.json (or config.json's quantization_config) from save_dir."""
        path = os.path.join(save_dir, "quantize_config.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        else:
            with open(os.path.join(save_dir, "config.json"), encoding="utf-8") as f:
                d = json.load(f).get("quantization_config", {})
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("checkpoint_format") not in _FORMAT_NAMES:
            d.pop("checkpoint_format", None)
        return cls(**d)

    def _library_options(self):
        return dict(bits=self.bits, group_size=self.group_size, damp_percent=self.damp_percent,
                    desc_act=self.desc_act, static_groups=self.static_groups, sym=self.sym,
                    true_sequential=self.true_sequential,
                    checkpoint_format=_FORMAT_NAMES[self.checkpoint_format])


def _device_backend(device):
    if device is None:
        return "auto"
    d = str(device).lower()
    if d == "cpu" or d == "cuda" or d.startswith("cuda:"):
        return d
    raise InvalidArgumentError("device must be 'cpu', 'cuda' or 'cuda:N', not %r" % (device,))


def _token_rows(examples):
    """Examples as lists of ints (token-id lists or AutoGPTQ-style dicts), or None if texts."""
    rows = []
    for i, e in enumerate(examples):
        if isinstance(e, dict):
            e = e.get("input_ids")
            if e is None:
                raise InvalidArgumentError("example %d is a dict without input_ids" % i)
        if hasattr(e, "tolist"):
            e = e.tolist()
        if isinstance(e, (list, tuple)) and len(e) == 1 and isinstance(e[0], (list, tuple)):
            e = e[0]  # a batch of one, as tokenizers return
        if isinstance(e, str):
            return None if not rows else _mixed()
        if not isinstance(e, (list, tuple)) or not all(isinstance(t, int) for t in e):
            raise InvalidArgumentError("example %d is neither a text nor a list of token ids" % i)
        rows.append(list(e))
    return rows


def _mixed():
    raise InvalidArgumentError("examples mix texts and token-id lists")


class GPTQModel:
    """A model to quantize (from_pretrained) or a quantized one to run (from_quantized)."""

    def __init__(self, model_dir, quantize_config, quantized, device=None, n_threads=0, n_ctx=0):
        self.model_dir = os.fspath(model_dir)
        self.quantize_config = quantize_config
        self.quantized = quantized
        self.device = device or "auto"
        self._n_threads = n_threads
        self._n_ctx = n_ctx
        self._model = None
        self._ctx = None
        self._workdir = None  # holds the output of quantize() until save_quantized()

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, quantize_config, device=None, n_threads=0, n_ctx=0):
        """A float model directory to quantize with quantize_config. Nothing is loaded yet: the
        model is read by quantize(), or on first generate()."""
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise GPTQFileError("%s: not a model directory (no config.json)" % path)
        if not isinstance(quantize_config, BaseQuantizeConfig):
            raise InvalidArgumentError("quantize_config must be a BaseQuantizeConfig")
        return cls(path, quantize_config, quantized=False, device=_device_backend(device),
                   n_threads=n_threads, n_ctx=n_ctx)

    @classmethod
    def from_quantized(cls, model_name_or_path, device=None, use_safetensors=True, n_threads=0, n_ctx=0,
                       quantize_config=None):
        """Loads a GPTQ checkpoint directory onto device "cpu", "cuda", "cuda:N" (None = CUDA
        when available, else CPU)."""
        if not use_safetensors:
            raise InvalidArgumentError("only safetensors checkpoints are supported")
        path = os.fspath(model_name_or_path)
        self = cls(path, quantize_config, quantized=True, device=_device_backend(device),
                   n_threads=n_threads, n_ctx=n_ctx)
        self._load()
        if self.quantize_config is None:
            try:
                self.quantize_config = BaseQuantizeConfig.from_pretrained(path)
            except (OSError, ValueError, TypeError):
                info = self._model.info
                self.quantize_config = BaseQuantizeConfig(
                    bits=info.quant_bits or 4, group_size=info.quant_group_size or -1,
                    desc_act=info.quant_desc_act, sym=info.quant_sym)
        return self

    def _load(self):
        if self._model is None:
            src = self._workdir_model() or self.model_dir
            self._model = Model(src, backend=self.device, n_threads=self._n_threads)
        return self._model

    def _workdir_model(self):
        return os.path.join(self._workdir, "model") if self._workdir else None

    @property
    def model(self):
        """The underlying gptq.Model (loaded on first use)."""
        return self._load()

    # ---------------------------------------------------------------- quantization

    def quantize(self, examples, n_samples=None, seq_len=None, seed=None, progress=None, batch_size=1):
        """GPTQ-quantizes the model with calibration examples: texts, token-id lists, or dicts
        with "input_ids" (as AutoGPTQ takes). Texts are written to a file that n_samples random
        windows of seq_len tokens are drawn from (defaults: one window per example, the
        library's window length); token-id lists are used as rows, all cut to seq_len tokens
        (default: the shortest example's length). progress(Progress) may return True to cancel.
        batch_size is accepted for AutoGPTQ compatibility and ignored."""
        if self.quantized:
            raise InvalidArgumentError("the model is already quantized")
        examples = list(examples)
        if not examples:
            raise InvalidArgumentError("quantize() needs at least one calibration example")
        work = tempfile.mkdtemp(prefix="gptq-quantize-")
        try:
            options = self.quantize_config._library_options()
            rows = _token_rows(examples)
            if rows is None:
                if not all(isinstance(e, str) for e in examples):
                    _mixed()
                calib = os.path.join(work, "calib.txt")
                with open(calib, "w", encoding="utf-8") as f:
                    f.write("\n\n".join(examples))
                options.update(calib_text_path=calib, calib_n_samples=n_samples or len(examples),
                               calib_seq_len=seq_len)
            else:
                length = seq_len or min(len(r) for r in rows)
                short = [i for i, r in enumerate(rows) if len(r) < length]
                if length <= 0 or short:
                    raise InvalidArgumentError("token examples %s are shorter than seq_len %d" % (short, length))
                data = array.array("i", [t for r in rows for t in r[:length]])
                if sys.byteorder != "little":
                    data.byteswap()
                calib = os.path.join(work, "calib.bin")
                with open(calib, "wb") as f:
                    data.tofile(f)
                options.update(calib_tokens_path=calib, calib_n_samples=n_samples or len(rows),
                               calib_seq_len=length)
            options.update(seed=seed, n_threads=self._n_threads)
            if self.device != "auto":
                options["backend"] = "cuda" if self.device.startswith("cuda") else "cpu"
            _quantize(self.model_dir, os.path.join(work, "model"), progress=progress, **options)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self._close_model()
        self._drop_workdir()
        self._workdir = work
        self.quantized = True

    def save_quantized(self, save_dir, use_safetensors=True):
        """Writes the quantized checkpoint (weights, configs, tokenizer) into save_dir."""
        if not use_safetensors:
            raise InvalidArgumentError("only safetensors checkpoints are written")
        if not self.quantized:
            raise InvalidArgumentError("call quantize() before save_quantized()")
        src = self._workdir_model() or self.model_dir
        save_dir = os.fspath(save_dir)
        if os.path.abspath(src) == os.path.abspath(save_dir):
            return
        os.makedirs(save_dir, exist_ok=True)
        for name in os.listdir(src):
            s = os.path.join(src, name)
            if os.path.isdir(s):
                shutil.copytree(s, os.path.join(save_dir, name), dirs_exist_ok=True)
            else:
                shutil.copy2(s, os.path.join(save_dir, name))

    # ---------------------------------------------------------------- generation

    def _context(self):
        if self._ctx is None:
            self._ctx = Context(self._load(), n_ctx=self._n_ctx or None)
        return self._ctx

    @staticmethod
    def _sampling(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty, min_p, seed,
                  stop, add_bos):
        opts = dict(max_tokens=max_new_tokens, seed=seed, stop=stop, add_bos=add_bos)
        if do_sample:
            opts.update(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                        repeat_penalty=repetition_penalty)
        else:
            opts.update(temperature=0.0, repeat_penalty=repetition_penalty)
        return opts

    def generate(self, prompt="", max_new_tokens=None, do_sample=False, temperature=1.0, top_k=50, top_p=1.0,
                 repetition_penalty=1.0, min_p=0.0, seed=None, stop=None, add_bos=None, on_token=None):
        """Returns the text generated after prompt. Argument names and defaults follow Hugging
        Face generate(): greedy unless do_sample; max_new_tokens None = the library's 256."""
        return self._context().generate(prompt, on_token=on_token, **self._sampling(
            max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty, min_p, seed, stop, add_bos))

    def stream(self, prompt="", max_new_tokens=None, do_sample=False, temperature=1.0, top_k=50, top_p=1.0,
               repetition_penalty=1.0, min_p=0.0, seed=None, stop=None, add_bos=None):
        """Like generate(), yielding Tokens (with .text) as they are made."""
        return self._context().stream(prompt, **self._sampling(
            max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty, min_p, seed, stop, add_bos))

    # ---------------------------------------------------------------- lifetime

    def _close_model(self):
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        if self._model is not None:
            self._model.close()
            self._model = None

    def _drop_workdir(self):
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def close(self):
        """Frees the model and any unsaved quantization output."""
        self._close_model()
        self._drop_workdir()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
