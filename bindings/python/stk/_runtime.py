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
from .sequence import Element, Sequence, SequenceType

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


_bytes_from = ctypes.pythonapi.PyBytes_FromStringAndSize  # keeps the GIL: a copy, no more
_bytes_from.restype = ctypes.py_object
_bytes_from.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
_tuple_new = tuple.__new__
_byref = ctypes.byref


def sequence_from_c(lib: "_lib.Lib", p: int) -> Sequence:
    """Copy the stk_sequence at p into a Python Sequence. This runs for
    every received sequence, so it avoids what costs in ctypes (it is
    several times faster than the obvious code)."""
    n = c_size_t()
    arr = lib.sequence_elements(p, _byref(n))
    els: List[Element] = []
    for i in range(n.value):
        e = arr[i]
        size = e.len
        els.append(_tuple_new(Element, (e.user_type, _bytes_from(e.data, size) if size else b"")))
    name = lib.sequence_name(p)
    s = _new_sequence(Sequence)
    s._id = lib.sequence_id(p)
    s._name = name.decode("utf-8", "surrogateescape") if name else ""
    s._bname = name or None
    t = lib.sequence_type(p)
    s._type = _SEQ_TYPES.get(t, t)
    s.elements = els
    s._prep = None
    return s


_new_sequence = Sequence.__new__
_SEQ_TYPES = {int(t): t for t in SequenceType}


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


# thread ident -> how many library callbacks it is running (nested)
_depth: Dict[int, int] = {}

# Callback threads are created by the Go runtime, unknown to Python. For
# each call into Python, ctypes makes a thread state for such a thread and
# deletes it after (PyGILState_Ensure/Release); making one costs tens of
# microseconds (in 3.11 it maps a new frame stack), more than everything
# else a callback does. So the first callback on each thread takes one more
# PyGILState_Ensure that is never released: the thread keeps its thread
# state, and later callbacks reuse it. The Go runtime keeps its threads for
# the process's life, so these are a few states per process, not one per
# call. (The GIL itself is still released after every callback.)
_pinned: set = set()
_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype = ctypes.c_int
_gil_ensure.argtypes = []


def _pin_thread_state() -> None:
    ident = threading.get_ident()
    if ident not in _pinned:
        _gil_ensure()
        _pinned.add(ident)


def in_callback() -> bool:
    """Whether the calling thread is running one of the library's
    callbacks."""
    return threading.get_ident() in _depth


def _enter() -> int:
    ident = threading.get_ident()
    if ident not in _pinned:
        _pin_thread_state()
    _depth[ident] = _depth.get(ident, 0) + 1
    return ident


def _leave(ident: int) -> None:
    d = _depth[ident] - 1
    if d:
        _depth[ident] = d
    else:
        del _depth[ident]


def _sequence_cb(user: Optional[int], p: int) -> None:
    obj = _objects.get(user)
    if obj is None:
        return  # closed meanwhile
    ident = _enter()
    try:
        obj._on_sequence(p)
    except BaseException:  # noqa: B902 - never raise into the library
        log.exception("stk: internal error in a sequence callback of %r (ignored)", obj)
    finally:
        _leave(ident)


def _name_cb(user: Optional[int], info: Any) -> None:
    obj = _objects.get(user)
    if obj is None:
        return
    ident = _enter()
    try:
        obj._on_name(info.contents)
    except BaseException:  # noqa: B902
        log.exception("stk: internal error in a name callback of %r (ignored)", obj)
    finally:
        _leave(ident)


def _done_cb(user: Optional[int], answers: int, status: int) -> None:
    obj = _objects.get(user)
    if obj is None:
        return
    ident = _enter()
    try:
        obj._on_done(answers, status)
    except BaseException:  # noqa: B902
        log.exception("stk: internal error in a lookup callback of %r (ignored)", obj)
    finally:
        _leave(ident)


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
