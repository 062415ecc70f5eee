"""Bridges from C callbacks to Python callables.

An exception raised by a Python callback must not be swallowed by ctypes (it would only print
it): the bridge keeps it, asks the C call to stop (nonzero return), and ``finish`` raises it
once the C call has returned.
"""

import ctypes

from . import _lib
from .errors import last_error


class Progress(tuple):
    """One progress report: (stage, done, total, detail)."""
    __slots__ = ()

    def __new__(cls, stage, done, total, detail):
        return tuple.__new__(cls, (stage, done, total, detail))

    stage = property(lambda self: self[0])
    done = property(lambda self: self[1])
    total = property(lambda self: self[2])
    detail = property(lambda self: self[3])

    def __repr__(self):
        return "Progress(stage=%r, done=%r, total=%r, detail=%r)" % tuple(self)


class Token(tuple):
    """One streamed token: (seq, id, text). ``text`` may be "" while a character is split."""
    __slots__ = ()

    def __new__(cls, seq, id, text):
        return tuple.__new__(cls, (seq, id, text))

    seq = property(lambda self: self[0])
    id = property(lambda self: self[1])
    text = property(lambda self: self[2])

    def __repr__(self):
        return "Token(seq=%r, id=%r, text=%r)" % tuple(self)


def _text(p, n=None):
    if not p:
        return ""
    raw = ctypes.string_at(p) if n is None else ctypes.string_at(p, n)
    return raw.decode("utf-8", "replace")


class CallbackBridge:
    """Holds the ctypes function objects (they must outlive the C call) and their outcome.

    A Python callback returns a true value to *stop* — progress(p) -> True cancels, and
    on_token(t) -> True stops generation — so that plain functions returning None never stop.
    """

    def __init__(self, progress=None, on_token=None):
        self.error = None
        self.stopped = False
        self._progress = progress
        self._on_token = on_token
        self.progress_fn = _lib.PROGRESS_CALLBACK(self._progress_trampoline) if progress else _lib.PROGRESS_CALLBACK()
        self.token_fn = _lib.TOKEN_CALLBACK(self._token_trampoline) if on_token else _lib.TOKEN_CALLBACK()

    def _run(self, f, arg):
        if self.stopped or self.error is not None:
            return 1
        try:
            if f(arg):
                self.stopped = True
                return 1
            return 0
        except BaseException as e:  # noqa: B902 - re-raised by finish()
            self.error = e
            return 1

    def _progress_trampoline(self, stage, done, total, detail, user_data):
        return self._run(self._progress, Progress(_text(stage), done, total, _text(detail) if detail else None))

    def _token_trampoline(self, seq, token, text, text_len, user_data):
        return self._run(self._on_token, Token(seq, token, _text(text, text_len)))

    def finish(self, status, allow_stop=False):
        """After the C call: raise the callback's exception, else the status' error. With
        allow_stop, a stop the callback asked for is a normal end (generation)."""
        failure = last_error(status) if status != _lib.OK else None
        if self.error is not None:
            raise self.error
        if failure is None:
            return
        if allow_stop and self.stopped and status == _lib.ERR_ABORTED:
            return
        raise failure
