"""Python binding of the Go STK (Sequence Toolkit).

Register and look up names, publish and subscribe sequences, and report
services to the monitor (stkd), through ``libstk.so``, the C binding of the
Go implementation (bindings/c), loaded with ctypes::

    import stk

    with stk.Environment() as env:                       # name server tcp:127.0.0.1:20002
        with env.publisher("demo") as pub:               # listens, registers "demo"
            pub.wait_subscribers(1)
            pub.send(stk.Sequence(name="greeting").add(stk.UT_EXAMPLE_DATA, b"hello"))

    with stk.Environment() as env, env.subscriber("demo") as sub:
        for seq in sub:                                  # bounded queue, see Subscriber
            print(seq.id, seq.name, [data for _, data in seq])

The library is found through the ``STK_LIBRARY`` environment variable, next
to this package, or in bindings/c/build/ of the source tree (see
:mod:`stk._lib`); it is loaded when the first :class:`Environment` is made,
so the pure-Python parts (:class:`Sequence`, :class:`NameInfo`, ...) work
without it.

Library failures raise :class:`StkError` subclasses that carry the C error
code and message. Callbacks run on threads of the Go runtime; an exception a
callback raises is logged on the ``stk`` logger and never propagates into
the library.
"""

from __future__ import annotations

from typing import Optional

from . import _lib
from .env import LOG_LEVELS, Environment
from .errors import (AddressError, BusyError, ClosedError, ConnectError, InternalError, InvalidArgumentError,
                     LibraryNotFoundError, NotFoundError, OutOfMemoryError, QueueFullError, RangeError,
                     SequenceError, StkError, StkTimeoutError)
from .flow import ON_FULL, FlowStats, Publisher, Subscriber
from .lookup import Lookup, LookupResult, NameSubscription
from .names import Endpoint, FTState, NameInfo
from .sequence import UT_EXAMPLE_DATA, Element, Sequence, SequenceType
from .service import Service, ServiceType, State

__version__ = "1.0.0"

__all__ = [
    "Environment", "LOG_LEVELS",
    "Sequence", "SequenceType", "Element", "UT_EXAMPLE_DATA",
    "Publisher", "Subscriber", "FlowStats", "ON_FULL",
    "NameInfo", "Endpoint", "FTState", "Lookup", "LookupResult", "NameSubscription",
    "Service", "State", "ServiceType",
    "StkError", "InvalidArgumentError", "AddressError", "SequenceError", "RangeError", "NotFoundError",
    "StkTimeoutError", "ClosedError", "ConnectError", "QueueFullError", "BusyError", "OutOfMemoryError",
    "InternalError", "LibraryNotFoundError",
    "library_version", "library_path", "load_library",
]


def load_library() -> str:
    """Load ``libstk.so`` now (it is otherwise loaded by the first
    :class:`Environment`) and return its path.

    Raises:
        LibraryNotFoundError: it cannot be found or loaded; the message says
            where it was looked for and how to build it.
    """
    return _lib.load().path


def library_version() -> str:
    """The loaded library's version string, e.g. ``"stk-go 1.0 (go1.26)"``
    (loads the library)."""
    v = _lib.load().version()
    return v.decode() if v else ""


def library_path() -> Optional[str]:
    """The path of the loaded library, or None before it is loaded."""
    return _lib.library_path()
