"""Exceptions: each gptq_status becomes a GPTQError subclass carrying gptq_errmsg()."""

import enum

from . import _lib


class Status(enum.IntEnum):
    OK = _lib.OK
    INVALID_ARG = _lib.ERR_INVALID_ARG
    IO = _lib.ERR_IO
    FORMAT = _lib.ERR_FORMAT
    UNSUPPORTED = _lib.ERR_UNSUPPORTED
    OOM = _lib.ERR_OOM
    BACKEND = _lib.ERR_BACKEND
    BUFFER_SMALL = _lib.ERR_BUFFER_SMALL
    CONTEXT_FULL = _lib.ERR_CONTEXT_FULL
    ABORTED = _lib.ERR_ABORTED
    NUMERIC = _lib.ERR_NUMERIC
    INTERNAL = _lib.ERR_INTERNAL


class GPTQError(Exception):
    """A failed libgptq call. ``status`` is the Status, ``message`` the library's text."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self):
        return "%s (%s)" % (self.message, getattr(self.status, "name", self.status))


class InvalidArgumentError(GPTQError, ValueError):
    status = Status.INVALID_ARG


class GPTQFileError(GPTQError, OSError):
    """A file that cannot be opened, read or written (GPTQ_ERR_IO)."""
    status = Status.IO

    def __str__(self):
        return GPTQError.__str__(self)


class FormatError(GPTQError):
    status = Status.FORMAT


class UnsupportedError(GPTQError):
    status = Status.UNSUPPORTED


class OutOfMemoryError(GPTQError, MemoryError):
    status = Status.OOM


class BackendError(GPTQError):
    status = Status.BACKEND


class BufferTooSmallError(GPTQError):
    status = Status.BUFFER_SMALL


class ContextFullError(GPTQError):
    status = Status.CONTEXT_FULL


class AbortedError(GPTQError):
    """A callback asked to stop (e.g. progress returned True to cancel)."""
    status = Status.ABORTED


class NumericError(GPTQError, ArithmeticError):
    status = Status.NUMERIC


class InternalError(GPTQError):
    status = Status.INTERNAL


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, GPTQFileError, FormatError, UnsupportedError, OutOfMemoryError,
    BackendError, BufferTooSmallError, ContextFullError, AbortedError, NumericError, InternalError)}


def error_for(status, message):
    cls = _BY_STATUS.get(status)
    if cls is None:
        return GPTQError(message, status=status)
    return cls(message)


def last_error(status):
    """The error of the call that just returned ``status`` on this thread (gptq_errmsg is
    thread-local and overwritten by the next call, so read it right away)."""
    lib = _lib.lib()
    raw = lib.gptq_errmsg() or b""
    msg = raw.decode("utf-8", "replace") or status_text(status)
    return error_for(status, msg)


def status_text(status):
    return (_lib.lib().gptq_status_str(status) or b"").decode("utf-8", "replace")


def check(status):
    if status != _lib.OK:
        raise last_error(status)
