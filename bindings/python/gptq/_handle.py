"""Ownership of one native handle, shared by Model and Context."""


class OwnedHandle:
    """Frees self._handle exactly once: on close(), at the end of a with-block, or when collected.

    Subclasses set self._handle and implement _free(handle)."""

    _handle = None

    def _free(self, handle):
        raise NotImplementedError

    def close(self):
        """Frees the native handle. Idempotent."""
        h, self._handle = self._handle, None
        if h:
            self._free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()
