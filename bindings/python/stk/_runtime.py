"""Glue between the library's callbacks and Python objects.

The library calls back on threads the Go runtime created. ctypes takes the
GIL for such a call (and makes a thread state for the thread), so Python
code runs normally there. What needs care is lifetime: a callback thunk must
stay alive for as long as the library may call it, and the object it serves
may be closed or garbage-collected meanwhile. So this module creates ONE
thunk per callback type for the whole process (they live as long as the
module) and passes as the C ``user`` pointer a small integer key into
:data:`_objects`. A callback for a key that is no longer registered (its
object closed) does nothing.

User callbacks are run through :func:`call_user`: an exception there is
logged on the ``stk`` logger with its traceback and never propagates into
the library (it would only be printed by ctypes and could leave the C side
in an unknown state).

At interpreter exit, :func:`close_all` (an ``atexit`` handler) closes every
object still open, children before environments, so that no Go thread calls
into a finalizing interpreter.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import threading
from ctypes import c_size_t
from typing import Any, Callable, Dict, List, Optional

from . import _lib
from .names import Endpoint, FTState, NameInfo
from .sequence import Element, Sequence

log = logging.getLogger("stk")

_lock = threading.Lock()
_keys = itertools.count(1)
# key -> object with the callback methods (_on_sequence, _on_name, _on_done)
_objects: Dict[int, Any] = {}
# every open object with a close() method, in creation order (key -> object)
_open: Dict[int, Any] = {}


def register(obj: Any) -> int:
    """Register obj for callbacks and for the exit clean-up; return its key
    (the C ``user`` pointer)."""
    with _lock:
        key = next(_keys)
        _objects[key] = obj
        _open[key] = obj
    return key


def unregister(key: int) -> None:
    """Forget key: later callbacks for it do nothing."""
    with _lock:
        _objects.pop(key, None)
        _open.pop(key, None)


def _get(user: Optional[int]) -> Any:
    return _objects.get(user or 0)


def call_user(fn: Callable[..., Any], *args: Any, what: str = "callback") -> Any:
    """Call a user callback; log and swallow any exception it raises."""
    try:
        return fn(*args)
    except BaseException:  # noqa: B902 - a callback must never raise into the library
        log.exception("stk: exception in %s %r (ignored)", what, fn)
        return None


# ---------------------------------------------------------------------------
# Conversions from C
# ---------------------------------------------------------------------------

_string_at = ctypes.string_at


def decode(b: Optional[bytes]) -> str:
    """A C string from the library as str (invalid UTF-8 kept as surrogate
    escapes, so it round-trips)."""
    return b.decode("utf-8", "surrogateescape") if b else ""


def encode(s: Optional[str]) -> Optional[bytes]:
    """A str for the library (None stays None)."""
    return None if s is None else s.encode("utf-8", "surrogateescape")


def sequence_from_c(lib: "_lib.Lib", p: int) -> Sequence:
    """Copy the stk_sequence at p into a Python Sequence."""
    n = c_size_t()
    arr = lib.sequence_elements(p, ctypes.byref(n))
    els: List[Element] = []
    if n.value:
        for e in arr[:n.value]:
            els.append(Element(e.user_type, _string_at(e.data, e.len) if e.len else b""))
    return Sequence._trusted(lib.sequence_id(p), decode(lib.sequence_name(p)), lib.sequence_type(p), els)


def info_from_c(ci: "_lib.CNameInfo") -> NameInfo:
    """Copy an stk_name_info into a NameInfo."""
    addrs = [Endpoint(decode(a.protocol), decode(a.ip), a.port) for a in ci.addresses[:ci.naddresses]]
    meta = [Element(m.user_type, _string_at(m.data, m.len) if m.len else b"") for m in ci.meta[:ci.nmeta]]
    try:
        ft = FTState(ci.ft_state)
    except ValueError:
        ft = FTState.UNSET
    return NameInfo(name=decode(ci.name), group=decode(ci.group), addresses=addrs, linger=ci.linger_s, ft=ft,
                    meta=meta)


class CInfo:
    """A NameInfo laid out as stk_name_info, with the buffers it points to
    kept alive as long as this object."""

    def __init__(self, info: NameInfo, group: Optional[str]) -> None:
        self._keep: List[Any] = []
        n = len(info.addresses)
        addrs = (_lib.CEndpoint * max(n, 1))()
        for i, a in enumerate(info.addresses):
            addrs[i].protocol = self._b(a.protocol)
            addrs[i].ip = self._b(a.host)
            addrs[i].port = a.port
        m = len(info.meta)
        meta = (_lib.CElement * max(m, 1))()
        for i, (ut, data) in enumerate(info.meta):
            buf = ctypes.create_string_buffer(bytes(data), len(data)) if data else None
            self._keep.append(buf)
            meta[i].user_type = ut
            meta[i].data = ctypes.cast(buf, ctypes.c_void_p) if buf is not None else None
            meta[i].len = len(data)
        self._keep += [addrs, meta]
        self.struct = _lib.CNameInfo(
            name=self._b(info.name), group=self._b(group) if group is not None else None,
            addresses=ctypes.cast(addrs, ctypes.POINTER(_lib.CEndpoint)), naddresses=n,
            linger_s=info.linger, ft_state=int(info.ft),
            meta=ctypes.cast(meta, ctypes.POINTER(_lib.CElement)), nmeta=m)

    def _b(self, s: str) -> bytes:
        b = encode(s) or b""
        self._keep.append(b)
        return b


# ---------------------------------------------------------------------------
# The process-wide thunks
# ---------------------------------------------------------------------------


_local = threading.local()


def in_callback() -> bool:
    """Whether the calling thread is running one of the library's
    callbacks."""
    return getattr(_local, "depth", 0) > 0


def _dispatch(user: Optional[int], method: str, *args: Any) -> None:
    obj = _objects.get(user or 0)
    if obj is None:
        return  # closed meanwhile
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        getattr(obj, method)(*args)
    except BaseException:  # noqa: B902 - never raise into the library
        log.exception("stk: internal error in %s of %r (ignored)", method, obj)
    finally:
        _local.depth -= 1


def _sequence_cb(user: Optional[int], p: int) -> None:
    _dispatch(user, "_on_sequence", p)


def _name_cb(user: Optional[int], info: Any) -> None:
    _dispatch(user, "_on_name", info.contents)


def _done_cb(user: Optional[int], answers: int, status: int) -> None:
    _dispatch(user, "_on_done", answers, status)


SEQUENCE_THUNK = _lib.SEQUENCE_CB(_sequence_cb)
NAME_THUNK = _lib.NAME_CB(_name_cb)
DONE_THUNK = _lib.LOOKUP_DONE_CB(_done_cb)


# ---------------------------------------------------------------------------
# Exit clean-up
# ---------------------------------------------------------------------------


def close_all() -> None:
    """Close every object still open: children (most recent first), then
    environments. Errors are logged."""
    with _lock:
        objs = list(_open.values())
    objs.reverse()
    objs.sort(key=lambda o: getattr(o, "_close_rank", 0))
    for o in objs:
        try:
            o.close()
        except Exception:  # noqa: BLE001
            log.exception("stk: closing %r at exit", o)


atexit.register(close_all)
