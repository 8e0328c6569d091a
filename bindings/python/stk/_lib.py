"""Finding and loading libstk.so (the C binding of the Go STK) and declaring
its functions for ctypes, after bindings/c/stk.h.

The library is looked for, in order:

1. the file named by the environment variable ``STK_LIBRARY`` (an error if
   it is set and the file does not exist: no silent fallback);
2. next to the package: ``stk/libstk.so``, then ``bindings/python/libstk.so``;
3. the C binding's build directory of this source tree,
   ``bindings/c/build/libstk.so``, then ``bindings/c/libstk.so``;
4. the system's library path (``ctypes.util.find_library("stk")``).

Loading happens on first use (creating an :class:`stk.Environment`), so
``import stk`` and the pure-Python parts work without the library.

Two views of the one library are used: :data:`CDLL` functions release the
GIL while they run (everything that may wait or call into Go's networking,
so that callbacks on Go threads can take the GIL meanwhile), and
:data:`PyDLL` functions keep it (only the getters of stk_sequence, which
read C memory and never block: they are called inside callbacks, where
releasing and retaking the GIL per field would cost more than the read).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_size_t, c_uint16, c_uint64,
                    c_void_p)
from pathlib import Path
from typing import Any, List, Optional, Tuple

from . import errors
from .errors import LibraryNotFoundError

__all__ = ["ENV_VAR", "candidates", "find_library", "load", "library_path", "Lib"]

#: The environment variable that names the library file.
ENV_VAR = "STK_LIBRARY"
#: The API major version this binding is written against (stk.h's
#: STK_API_VERSION_MAJOR).
API_MAJOR = 1

_LIBNAME = {"darwin": "libstk.dylib", "win32": "stk.dll"}.get(sys.platform, "libstk.so")
_PKG = Path(__file__).resolve().parent

BUILD_HINT = (
    "build it with `make -C bindings/c` (or `go build -tags stk_cshared -buildmode=c-shared "
    "-o bindings/c/build/{name} ./bindings/c` at the repository root; it needs Go and a C compiler), "
    "or set {var} to the path of an existing {name}"
).format(name=_LIBNAME, var=ENV_VAR)

# ---------------------------------------------------------------------------
# Constants of stk.h
# ---------------------------------------------------------------------------

STK_OK = 0
STK_EINVAL = -1
STK_EHANDLE = -2
STK_ENOMEM = -3
STK_EADDR = -4
STK_ENET = -5
STK_ETIMEDOUT = -6
STK_ENOTFOUND = -7
STK_ECLOSED = -8
STK_EQUEUEFULL = -9
STK_ESEQUENCE = -10
STK_ERANGE = -11
STK_EBUSY = -12
STK_EINTERNAL = -99

STK_LOG_DEFAULT = 0
STK_LOG_DEBUG = 1
STK_LOG_INFO = 2
STK_LOG_WARN = 3
STK_LOG_ERROR = 4
STK_LOG_OFF = 5

STK_SEQ_MAX_ELEMENTS = 255
STK_SEQ_MAX_NAME = 65534

errors._CLASSES.update({
    STK_EINVAL: errors.InvalidArgumentError,
    STK_EHANDLE: errors.ClosedError,
    STK_ENOMEM: errors.OutOfMemoryError,
    STK_EADDR: errors.AddressError,
    STK_ENET: errors.ConnectError,
    STK_ETIMEDOUT: errors.StkTimeoutError,
    STK_ENOTFOUND: errors.NotFoundError,
    STK_ECLOSED: errors.ClosedError,
    STK_EQUEUEFULL: errors.QueueFullError,
    STK_ESEQUENCE: errors.SequenceError,
    STK_ERANGE: errors.RangeError,
    STK_EBUSY: errors.BusyError,
    STK_EINTERNAL: errors.InternalError,
})

# ---------------------------------------------------------------------------
# Structures and callback types of stk.h
# ---------------------------------------------------------------------------


class Options(Structure):
    """stk_options."""
    _fields_ = [
        ("name_server", c_char_p),
        ("monitor", c_char_p),
        ("group", c_char_p),
        ("log_level", c_int),
        ("smartbeat_period_ms", c_int),
        ("lookup_expiration_ms", c_int),
        ("token_file", c_char_p),  # API 1.2
        ("tls_ca_file", c_char_p),  # API 1.3
        ("tls_cert_file", c_char_p),  # API 1.3
        ("tls_key_file", c_char_p),  # API 1.3
    ]


class CElement(Structure):
    """stk_element."""
    _fields_ = [("user_type", c_uint64), ("data", c_void_p), ("len", c_size_t)]


class FlowStats(Structure):
    """stk_flow_stats."""
    _fields_ = [
        ("sequences_in", c_uint64), ("sequences_out", c_uint64),
        ("bytes_in", c_uint64), ("bytes_out", c_uint64),
        ("dropped", c_uint64), ("reconnects", c_uint64),
        ("connections", c_int),
    ]


class CEndpoint(Structure):
    """stk_endpoint."""
    _fields_ = [("protocol", c_char_p), ("ip", c_char_p), ("port", c_uint16)]


class CNameInfo(Structure):
    """stk_name_info."""
    _fields_ = [
        ("name", c_char_p),
        ("group", c_char_p),
        ("addresses", POINTER(CEndpoint)),
        ("naddresses", c_size_t),
        ("linger_s", c_int),
        ("ft_state", c_int),
        ("meta", POINTER(CElement)),
        ("nmeta", c_size_t),
    ]


class ServiceOptions(Structure):
    """stk_service_options."""
    _fields_ = [
        ("id", c_uint64),
        ("type", c_uint16),
        ("activity_timeout_ms", c_int),
        ("monitor", c_char_p),
    ]


#: Every structure, by its C name (the layout test compares them with gcc's).
STRUCTS = {
    "stk_options": Options,
    "stk_element": CElement,
    "stk_flow_stats": FlowStats,
    "stk_endpoint": CEndpoint,
    "stk_name_info": CNameInfo,
    "stk_service_options": ServiceOptions,
}

# void (*)(void *user, const stk_sequence *seq)
SEQUENCE_CB = CFUNCTYPE(None, c_void_p, c_void_p)
# void (*)(void *user, const stk_name_info *info)
NAME_CB = CFUNCTYPE(None, c_void_p, POINTER(CNameInfo))
# void (*)(void *user, int answers, int status)
LOOKUP_DONE_CB = CFUNCTYPE(None, c_void_p, c_int, c_int)

_H = c_void_p  # every handle type (stk_env, stk_publisher, ...)
_P = c_void_p  # stk_sequence *

# name: (restype, argtypes, keeps the GIL)
_SIGNATURES = {
    "stk_version": (c_char_p, [], True),
    "stk_api_version": (c_int, [], True),
    "stk_strerror": (c_char_p, [c_int], True),
    "stk_last_error": (c_char_p, [], True),

    "stk_env_create": (c_int, [POINTER(Options), POINTER(_H)], False),
    "stk_env_create_sized": (c_int, [POINTER(Options), c_size_t, POINTER(_H)], False),
    "stk_env_destroy": (c_int, [_H], False),
    "stk_env_wait_name_server": (c_int, [_H, c_int], False),

    "stk_sequence_create": (c_int, [c_uint64, c_char_p, c_uint16, POINTER(_P)], False),
    "stk_sequence_destroy": (c_int, [_P], False),
    "stk_sequence_clone": (c_int, [_P, POINTER(_P)], False),
    "stk_sequence_add": (c_int, [_P, c_uint64, c_char_p, c_size_t], False),
    "stk_sequence_clear": (c_int, [_P], False),
    "stk_sequence_set_id": (c_int, [_P, c_uint64], False),
    "stk_sequence_id": (c_uint64, [_P], True),
    "stk_sequence_type": (c_uint16, [_P], True),
    "stk_sequence_name": (c_char_p, [_P], True),
    "stk_sequence_count": (c_int, [_P], True),
    "stk_sequence_element": (c_int, [_P, c_size_t, POINTER(c_uint64), POINTER(c_void_p), POINTER(c_size_t)], True),
    "stk_sequence_elements": (POINTER(CElement), [_P, POINTER(c_size_t)], True),

    "stk_publisher_create": (c_int, [_H, c_char_p, c_char_p, c_int, POINTER(_H)], False),
    "stk_publisher_address": (c_int, [_H, c_char_p, c_size_t], False),
    "stk_publisher_subscribers": (c_int, [_H], False),
    "stk_publisher_send": (c_int, [_H, _P], False),
    "stk_publisher_send_data": (c_int, [_H, c_uint64, c_char_p, c_uint16, c_uint64, c_char_p, c_size_t], False),
    "stk_publisher_send_data_batch": (c_int, [_H, c_uint64, c_char_p, c_uint16, c_uint64, c_void_p,
                                              POINTER(c_size_t), c_size_t], False),
    "stk_publisher_stats": (c_int, [_H, POINTER(FlowStats)], False),
    "stk_publisher_destroy": (c_int, [_H], False),

    "stk_subscriber_create": (c_int, [_H, c_char_p, SEQUENCE_CB, c_void_p, POINTER(_H)], False),
    "stk_subscriber_connect": (c_int, [_H, c_char_p, SEQUENCE_CB, c_void_p, POINTER(_H)], False),
    "stk_subscriber_stats": (c_int, [_H, POINTER(FlowStats)], False),
    "stk_subscriber_destroy": (c_int, [_H], False),

    "stk_name_register": (c_int, [_H, POINTER(CNameInfo), c_int], False),
    "stk_name_unregister": (c_int, [_H, c_char_p, c_char_p], False),
    "stk_name_lookup": (c_int, [_H, c_char_p, c_char_p, c_int, NAME_CB, LOOKUP_DONE_CB, c_void_p, POINTER(_H)],
                        False),
    "stk_lookup_destroy": (c_int, [_H], False),
    "stk_name_subscribe": (c_int, [_H, c_char_p, c_char_p, NAME_CB, c_void_p, POINTER(_H)], False),
    "stk_name_subscription_destroy": (c_int, [_H], False),

    "stk_service_create": (c_int, [_H, c_char_p, POINTER(ServiceOptions), POINTER(_H)], False),
    "stk_service_set_state": (c_int, [_H, c_int], False),
    "stk_service_set_state_name": (c_int, [_H, c_int, c_char_p], False),
    "stk_service_state": (c_int, [_H], False),
    "stk_service_set_checkpoint": (c_int, [_H, c_uint64], False),
    "stk_service_id": (c_int, [_H, POINTER(c_uint64)], False),
    "stk_service_destroy": (c_int, [_H], False),
}


# Functions added after API 1.0: a library without them still loads, and
# the binding falls back (see Lib.has).
_OPTIONAL = {
    "stk_publisher_send_data_batch",  # API 1.1
    "stk_env_create_sized",  # API 1.2: stk_options.token_file, $STK_TOKEN
}


class Lib:
    """The loaded library: one attribute per C function (without the
    ``stk_`` prefix), with argtypes and restype set."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            released = ctypes.CDLL(path)
            held = ctypes.PyDLL(path)
        except OSError as e:
            raise LibraryNotFoundError(f"cannot load {path}: {e}; {BUILD_HINT}") from e
        self._released = released
        missing = []
        for name, (restype, argtypes, keep_gil) in _SIGNATURES.items():
            try:
                fn = getattr(held if keep_gil else released, name)
            except AttributeError:
                if name not in _OPTIONAL:
                    missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("stk_"):], fn)
        if missing:
            raise LibraryNotFoundError(
                f"{path} lacks {', '.join(missing)}: it is not the C binding of the Go STK, or an older one; "
                + BUILD_HINT)
        got = self.api_version()
        if got // 1000 != API_MAJOR:
            raise LibraryNotFoundError(
                f"{path} implements STK C API {got // 1000}.{got % 1000}; this binding needs {API_MAJOR}.x; "
                + BUILD_HINT)

    def has(self, name: str) -> bool:
        """Whether the library has the C function ``name`` (for the
        functions of later API versions)."""
        return hasattr(self, name[len("stk_"):] if name.startswith("stk_") else name)

    def unchecked(self, name: str) -> Any:
        """The C function ``name`` returning int, WITHOUT argtypes: ctypes
        then skips the per-argument from_param conversions, which cost more
        than the call itself on the hot paths. Callers must pass exactly
        what C expects: ctypes instances for 64-bit and pointer-sized
        arguments, bytes or None for pointers, ints only for int-sized
        ones. The GIL is released during the call."""
        fn = self._released._FuncPtr((name, self._released))
        fn.restype = c_int
        return fn

    def error(self, code: int) -> errors.StkError:
        """The exception for a code a function of this thread just
        returned: the detailed message of stk_last_error, else
        stk_strerror."""
        detail = self.last_error()
        text = self.strerror(code)
        msg = detail.decode("utf-8", "replace") if detail else ""
        if not msg:
            msg = text.decode("utf-8", "replace") if text else f"STK error {code}"
        return errors.error_for_code(code, msg)

    def check(self, code: int) -> int:
        """Return ``code`` if it is >= 0; raise its exception otherwise."""
        if code < 0:
            raise self.error(code)
        return code


_lock = threading.Lock()
_lib: Optional[Lib] = None


def candidates() -> List[Path]:
    """The places searched after ``STK_LIBRARY``, in order."""
    bindings = _PKG.parent.parent  # bindings/python/stk -> bindings
    return [
        _PKG / _LIBNAME,
        _PKG.parent / _LIBNAME,
        bindings / "c" / "build" / _LIBNAME,
        bindings / "c" / _LIBNAME,
    ]


def find_library() -> Tuple[str, List[str]]:
    """Return the path of the library to load and the list of places
    looked at. Raises :class:`stk.LibraryNotFoundError` when there is
    none."""
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise LibraryNotFoundError(f"{ENV_VAR}={env}: no such file; {BUILD_HINT}")
        return str(p), [str(p)]
    looked = []
    for c in candidates():
        looked.append(str(c))
        if c.is_file():
            return str(c), looked
    found = ctypes.util.find_library("stk")
    looked.append("the system library path (ctypes.util.find_library('stk'))")
    if found:
        return found, looked
    raise LibraryNotFoundError(
        f"cannot find {_LIBNAME}: {ENV_VAR} is not set and it is in none of: "
        + ", ".join(looked) + f"; {BUILD_HINT}")


def load() -> Lib:
    """Load the library once and return it."""
    global _lib
    lib = _lib
    if lib is not None:
        return lib
    with _lock:
        if _lib is None:
            path, _ = find_library()
            _lib = Lib(path)
        return _lib


def library_path() -> Optional[str]:
    """The path of the loaded library, or ``None`` before it is loaded."""
    return _lib.path if _lib is not None else None
