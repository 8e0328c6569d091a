"""The base of every object that owns a library handle."""

from __future__ import annotations

import threading
from typing import Any, Optional, TypeVar

from . import _lib, _runtime
from .errors import ClosedError

T = TypeVar("T", bound="Handle")


def ms(seconds: Optional[float], what: str, default: int = -1) -> int:
    """Seconds (float) to the library's milliseconds; None gives default."""
    if seconds is None:
        return default
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if seconds < 0:
        raise ValueError(f"{what} must be >= 0 seconds, not {seconds}")
    v = int(round(seconds * 1000))
    if v > 0x7FFFFFFF:
        raise ValueError(f"{what} {seconds} s is too long")
    return v


class Handle:
    """An object that owns one library handle; a context manager.

    ``close()`` destroys the handle once (later calls do nothing); leaving a
    ``with`` block closes it. An object lives until it is closed, whether or
    not the program keeps a reference to it (a subscriber with a callback
    keeps receiving), as a C handle lives until destroyed; objects still
    open at interpreter exit are closed then.
    """

    _close_rank = 0  # environments close after everything else at exit
    _kind = "object"

    def __init__(self) -> None:
        self._lib = _lib.load()
        self._h: Optional[int] = None
        self._key = 0
        self._close_lock = threading.Lock()
        self._closed = False

    def _adopt(self, handle: Optional[int]) -> None:
        """Take ownership of a handle the library just gave."""
        self._h = handle

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def _handle(self) -> int:
        h = self._h
        if h is None or self._closed:
            raise ClosedError(_lib.STK_ECLOSED, f"the {self._kind} is closed")
        return h

    def close(self) -> None:
        """Destroy the handle; idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._before_destroy()
            h, self._h = self._h, None
            if h is not None:
                self._destroy(h)
        finally:
            if self._key:
                _runtime.unregister(self._key)
            self._after_close()

    def _before_destroy(self) -> None:
        """Hook: runs once, before the handle is destroyed."""

    def _destroy(self, h: int) -> None:
        raise NotImplementedError

    def _after_close(self) -> None:
        """Hook: runs once, after the handle is destroyed."""

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
