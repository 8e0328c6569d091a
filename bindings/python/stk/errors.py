"""Exceptions raised by the STK binding.

Every failure reported by the C library becomes an :class:`StkError` (or one
of its subclasses) that carries the library's error code and message::

    try:
        env.lookup_all("nothing-here")
    except stk.StkError as e:
        print(e.code, e.message)

Arguments that are wrong in Python terms (a negative id, a name that is not
a ``str``) raise the ordinary ``TypeError`` / ``ValueError`` before anything
reaches the library.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "StkError",
    "InvalidArgumentError",
    "NotFoundError",
    "StkTimeoutError",
    "ClosedError",
    "ConnectError",
    "QueueFullError",
    "AddressError",
    "SequenceError",
    "RangeError",
    "BusyError",
    "OutOfMemoryError",
    "InternalError",
    "LibraryNotFoundError",
    "error_for_code",
]


class StkError(Exception):
    """An error reported by the STK library.

    Attributes:
        code: the C library's error code (a negative ``int``; 0 when the
            error was detected in Python, as for :class:`LibraryNotFoundError`).
        message: the library's description of what went wrong.
    """

    #: The code this class stands for; ``None`` for the base class.
    default_code: Optional[int] = None

    def __init__(self, code: int, message: str) -> None:
        self.code = int(code)
        self.message = str(message)
        super().__init__(self.code, self.message)

    def __str__(self) -> str:
        if self.code:
            return f"{self.message} (STK error {self.code})"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidArgumentError(StkError, ValueError):
    """The library refused an argument (out of range, too long...)."""


class AddressError(InvalidArgumentError):
    """An address string is malformed or names an unsupported protocol."""


class SequenceError(InvalidArgumentError):
    """The sequence cannot be sent: type 0, more than 255 elements, too
    large."""


class RangeError(StkError, IndexError):
    """An index or count is out of range (for instance a 256th element)."""


class NotFoundError(StkError, LookupError):
    """A name or object the call needed does not exist."""


class StkTimeoutError(StkError, TimeoutError):
    """The operation did not complete in time (for instance, no name server
    answered a registration)."""


class ClosedError(StkError):
    """The object (environment, publisher, subscriber, service) is closed."""


class ConnectError(StkError, ConnectionError):
    """A network operation failed: a port could not be bound, a peer could
    not be reached."""


class QueueFullError(StkError):
    """A peer's outbound queue stayed full: the sequence was dropped for that
    peer, or the too slow peer disconnected (the others still got it)."""


class BusyError(StkError):
    """The call is not allowed here (closing an environment from one of its
    own callbacks)."""


class OutOfMemoryError(StkError, MemoryError):
    """The library ran out of memory."""


class InternalError(StkError):
    """A bug in the library; the message says more."""


class LibraryNotFoundError(StkError, ImportError):
    """``libstk.so`` could not be found or loaded. The message says where it
    was looked for and how to build it."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


# Filled by _lib from stk.h's codes: C error code -> class.
_CLASSES: Dict[int, Type[StkError]] = {}


def error_for_code(code: int, message: str) -> StkError:
    """Return the exception for a C error code: the subclass registered for
    ``code``, or :class:`StkError` itself for codes this binding does not
    know (a newer library)."""
    cls = _CLASSES.get(int(code), StkError)
    return cls(code, message or f"STK error {code}")
