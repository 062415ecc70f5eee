"""Context: a KV cache of a model, for evaluation and generation."""

import array
import ctypes
import queue
import threading
from contextlib import contextmanager

from . import _lib
from ._callbacks import CallbackBridge
from ._handle import OwnedHandle
from .errors import InvalidArgumentError, check, last_error

_GENERATE_FIELDS = ("max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                    "repeat_last_n", "seed")


class Context(OwnedHandle):
    """``Context(model, n_ctx=0, n_seq_max=1, n_batch=512, n_threads=0)`` — see gptq.h for the
    meaning of each (n_ctx 0 = min(max_position_embeddings, 4096)).

    A context is used by one thread at a time: a call made while another is running on it (from
    another thread, or while a ``stream()`` is unfinished) raises InvalidArgumentError instead of
    corrupting it. It keeps its model alive, so the Model may be closed first.
    """

    def __init__(self, model, n_ctx=None, n_seq_max=None, n_batch=None, n_threads=None):
        lib = _lib.lib()
        self._lib = lib
        self._handle = None
        self._busy = threading.Lock()
        params = lib.gptq_context_params_default()
        for name, value in (("n_ctx", n_ctx), ("n_seq_max", n_seq_max), ("n_batch", n_batch),
                            ("n_threads", n_threads)):
            if value is not None:
                setattr(params, name, value)
        info = model.info
        self._max_piece = model.max_piece_bytes()
        out = ctypes.c_void_p()
        check(lib.gptq_context_init(model.handle, ctypes.byref(params), ctypes.byref(out)))
        self._handle = out
        self.model = model
        self.n_ctx = params.n_ctx if params.n_ctx > 0 else max(1, min(info.max_position_embeddings, 4096))
        self.n_seq_max = max(1, params.n_seq_max)
        self._vocab = info.vocab_size

    # ---------------------------------------------------------------- lifetime

    def _free(self, handle):
        # close() frees the context.
        self._lib.gptq_context_free(handle)

    @contextmanager
    def _use(self):
        if not self._handle:
            raise InvalidArgumentError("the context is closed")
        if not self._busy.acquire(blocking=False):
            raise InvalidArgumentError(
                "the context is in use (by another thread, or by an unfinished stream())")
        try:
            yield self._handle
        finally:
            self._busy.release()

    # ---------------------------------------------------------------- evaluation

    def reset(self, seq_id=None):
        """Forgets sequence seq_id's KV cache, or every sequence's when seq_id is None."""
        with self._use() as h:
            check(self._lib.gptq_context_reset(h, -1 if seq_id is None else seq_id))

    def seq_len(self, seq_id=0):
        """Positions sequence seq_id holds (where it continues)."""
        with self._use() as h:
            return self._lib.gptq_context_seq_len(h, seq_id)

    def eval(self, tokens, pos=None, seq_id=None, logits=None):
        """Evaluates a batch. pos / seq_id / logits, when given, have one entry per token; without
        pos each sequence continues where it stopped, without seq_id all tokens are sequence 0,
        without logits only the last token of each sequence keeps its logits."""
        tokens = list(tokens)
        n = len(tokens)
        for name, v in (("pos", pos), ("seq_id", seq_id), ("logits", logits)):
            if v is not None and len(v) != n:
                raise InvalidArgumentError("%s has %d entries for %d tokens" % (name, len(v), n))
        ints = lambda v: None if v is None else (ctypes.c_int32 * max(n, 1))(*v)
        b = _lib.BatchStruct()
        b.n_tokens = n
        keep = [ints(tokens), ints(pos), ints(seq_id),
                None if logits is None else (ctypes.c_int8 * max(n, 1))(*[1 if x else 0 for x in logits])]
        b.tokens, b.pos, b.seq_id, b.logits = keep
        with self._use() as h:
            check(self._lib.gptq_eval(h, ctypes.byref(b)))

    def get_logits(self, i):
        """A copy of the logits of the i-th token of the last batch, as array('f')."""
        with self._use() as h:
            p = self._lib.gptq_get_logits(h, i)
            if not p:
                raise last_error(_lib.ERR_INVALID_ARG)
            out = array.array("f", bytes(ctypes.sizeof(ctypes.c_float) * self._vocab))
            ctypes.memmove(out.buffer_info()[0], p, ctypes.sizeof(ctypes.c_float) * self._vocab)
            return out

    # ---------------------------------------------------------------- generation

    def _params(self, kw):
        p = self._lib.gptq_generate_params_default()
        for name in _GENERATE_FIELDS:
            if kw.get(name) is not None:
                setattr(p, name, kw.pop(name))
            else:
                kw.pop(name, None)
        add_bos = kw.pop("add_bos", None)
        p.add_bos = -1 if add_bos is None else int(bool(add_bos))
        stop_at_eos = kw.pop("stop_at_eos", None)
        if stop_at_eos is not None:
            p.stop_at_eos = int(bool(stop_at_eos))
        stop = kw.pop("stop", None) or []
        if isinstance(stop, str):
            stop = [stop]
        stops = (ctypes.c_char_p * max(len(stop), 1))(*[s.encode("utf-8") for s in stop])
        if stop:
            p.stop_strings = stops
            p.n_stop_strings = len(stop)
        if kw:
            raise TypeError("unknown generation option(s): " + ", ".join(sorted(kw)))
        return p, stops

    def generate(self, prompt="", on_token=None, **options):
        """Generates a continuation of prompt (sequence 0, reset first) and returns its text.

        options: max_tokens, temperature (0 = greedy), top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, seed, add_bos (None = the model's default), stop_at_eos, stop (a string or
        list of strings: the text ends before it). Unset options take the library's defaults.
        on_token(Token) is called with each new token; returning True stops generation (the text
        so far is returned).
        """
        return self.generate_batch([prompt], on_token=on_token, **options)[0]

    def generate_batch(self, prompts, on_token=None, **options):
        """Generates for several prompts at once (needs n_seq_max >= len(prompts)); sequence i
        samples with seed + i. Token.seq says which prompt a streamed token continues."""
        prompts = list(prompts)
        n = len(prompts)
        if n > self.n_seq_max:
            raise InvalidArgumentError("%d prompts but the context holds %d sequences (n_seq_max)"
                                       % (n, self.n_seq_max))
        params, stops = self._params(dict(options))
        bridge = CallbackBridge(on_token=on_token)
        params.on_token = bridge.token_fn
        # Each buffer holds the whole text: no token decodes to more bytes than the longest
        # piece, and no sequence outgrows the context.
        tokens = min(params.max_tokens, self.n_ctx) if params.max_tokens > 0 else self.n_ctx
        cap = tokens * self._max_piece + 64
        bufs = [ctypes.create_string_buffer(cap) for _ in range(n)]
        outs = (ctypes.c_void_p * n)(*[ctypes.addressof(b) for b in bufs])
        sizes = (ctypes.c_size_t * n)(*([cap] * n))
        lens = (ctypes.c_size_t * n)()
        cprompts = (ctypes.c_char_p * n)(*[p.encode("utf-8") for p in prompts])
        with self._use() as h:
            status = self._lib.gptq_generate_batch(h, cprompts, n, ctypes.byref(params), outs, sizes, lens)
            bridge.finish(status, allow_stop=True)
        del stops
        return [bufs[i].raw[:min(lens[i], cap - 1)].decode("utf-8", "replace") for i in range(n)]

    def stream(self, prompt="", **options):
        """Yields the Tokens of a generation as they are made (same options as generate).

        Generation runs on a worker thread in lockstep with the loop (one token ahead at most);
        leaving the loop early stops it. The context is busy until the generator finishes or is
        closed.
        """
        handoff = queue.Queue(maxsize=1)
        resume = threading.Semaphore(0)
        cancel = threading.Event()
        done = object()
        outcome = {}

        def on_token(tok):
            handoff.put(tok)
            resume.acquire()
            return cancel.is_set()

        def work():
            try:
                outcome["text"] = self.generate(prompt, on_token=on_token, **options)
            except BaseException as e:  # noqa: B902 - re-raised in the consumer
                outcome["error"] = e
            finally:
                handoff.put(done)

        worker = threading.Thread(target=work, name="gptq-stream", daemon=True)
        worker.start()
        finished = False
        try:
            while True:
                item = handoff.get()
                if item is done:
                    finished = True
                    break
                yield item
                resume.release()
        finally:
            if not finished:
                # Left early: ask the callback to stop, then wait for the worker to end.
                cancel.set()
                resume.release()
                while handoff.get() is not done:
                    resume.release()
            worker.join()
        if "error" in outcome:
            raise outcome["error"]

    # ---------------------------------------------------------------- perplexity

    def perplexity(self, text, seq_len, max_chunks=0, progress=None):
        """Perplexity of text by the protocol of gptq.h; returns (ppl, n_tokens_scored)."""
        data = text.encode("utf-8")
        bridge = CallbackBridge(progress=progress)
        ppl = ctypes.c_double(0)
        n = ctypes.c_int64(0)
        with self._use() as h:
            status = self._lib.gptq_perplexity(h, data, len(data), seq_len, max_chunks, bridge.progress_fn,
                                               None, ctypes.byref(ppl), ctypes.byref(n))
            bridge.finish(status)
        return ppl.value, n.value
