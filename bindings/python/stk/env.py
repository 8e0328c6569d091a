"""The Environment: name-server client, monitor address and defaults."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _lib, _runtime
from ._handle import Handle, ms
from .errors import BusyError, NotFoundError
from .names import Endpoint, FTState, NameInfo
from .sequence import BytesLike

if TYPE_CHECKING:  # pragma: no cover
    from .flow import OnFull, Publisher, Subscriber
    from .lookup import Lookup, LookupResult, NameSubscription
    from .service import Service

__all__ = ["Environment", "LOG_LEVELS"]

#: Log levels of the library (it logs to stderr), by name.
LOG_LEVELS = {
    "debug": _lib.STK_LOG_DEBUG,
    "info": _lib.STK_LOG_INFO,
    "warn": _lib.STK_LOG_WARN,
    "warning": _lib.STK_LOG_WARN,
    "error": _lib.STK_LOG_ERROR,
    "off": _lib.STK_LOG_OFF,
}


class Environment(Handle):
    """An STK environment: the name-server client (connected on first use,
    then kept and reconnected), the smartbeat sender of its services, and
    defaults. Most programs make one and use it as a context manager::

        with stk.Environment(name_server="tcp:127.0.0.1:20002") as env:
            with env.publisher("prices") as pub:
                pub.send(stk.Sequence(name="tick").add(stk.UT_EXAMPLE_DATA, b"..."))

    Args:
        name_server: ``"[tcp|udp|tls:]ip[:port]"``; None:
            ``"tcp:127.0.0.1:20002"``. ``tls:`` is TCP inside TLS (stkd
            --names-tls), configured by the ``tls_`` arguments.
        monitor: where services report (stkd's monitor),
            ``"[tcp|udp|multicast|tls:]ip[:port]"`` or ``"lookup:monitor"``;
            None: ``"tcp:127.0.0.1:20001"``; ``""``: services are not
            monitored unless they name a monitor themselves.
        group: name group of registrations and lookups that name none;
            None or "": the default group.
        log_level: the library's stderr logging, one of :data:`LOG_LEVELS`
            ("debug", "info", "warn", "error", "off"); None: "warn".
        smartbeat_period: seconds between the smartbeats of this
            environment's services; None: 0.5.
        lookup_expiration: seconds a lookup waits for answers when it gives
            no expiration; None: 1.0 (stkd says when all answers are sent,
            so lookups usually end much sooner).
        token_file: a file of one line ``NAME:SECRET``, the token shown to
            a name server whose access policy asks for one (stkd
            --policy); None: the environment variable ``STK_TOKEN``, read
            when the environment is made, if set. Needs libstk of API 1.2.
        tls_ca_file: for a ``tls:`` name server or monitor, the CAs to trust
            (PEM); None: the environment variable ``STK_TLS_CA``, else the
            system's roots.
        tls_cert_file, tls_key_file: the client certificate (PEM) and its
            key shown to a ``tls:`` server asking for one (mutual TLS, stkd
            --tls-client-ca); both or neither. None: ``STK_TLS_CERT`` and
            ``STK_TLS_KEY``, if set. The files and variables are read when
            the environment is made. Needs libstk of API 1.3.

    Raises:
        AddressError, InvalidArgumentError: bad options (a token file
        that cannot be read or does not hold NAME:SECRET too, and TLS
        files that do not load). Creating an
        environment does not connect, so a name server that is down is not
        an error here.

    Closing the environment closes everything still open that was made from
    it (services send their DESTROY, publishers deliver what is queued, for
    at most 5 s), then the name-server connection: the server keeps this
    environment's registrations for their linger.
    """

    _close_rank = 1
    _kind = "environment"

    def __init__(self, name_server: Optional[str] = None, monitor: Optional[str] = None,
                 group: Optional[str] = None, *, log_level: Union[str, int, None] = None,
                 smartbeat_period: Optional[float] = None, lookup_expiration: Optional[float] = None,
                 token_file: Union[str, "os.PathLike[str]", None] = None,
                 tls_ca_file: Union[str, "os.PathLike[str]", None] = None,
                 tls_cert_file: Union[str, "os.PathLike[str]", None] = None,
                 tls_key_file: Union[str, "os.PathLike[str]", None] = None) -> None:
        super().__init__()
        if isinstance(log_level, str):
            try:
                level = LOG_LEVELS[log_level.lower()]
            except KeyError:
                raise ValueError(f"log_level {log_level!r}: want one of {', '.join(LOG_LEVELS)}") from None
        elif log_level is None:
            level = _lib.STK_LOG_DEFAULT
        else:
            level = int(log_level)
        period = ms(smartbeat_period, "smartbeat_period", 0)
        if smartbeat_period is not None and period <= 0:
            raise ValueError("smartbeat_period must be > 0")
        expiration = ms(lookup_expiration, "lookup_expiration", 0)
        if lookup_expiration is not None and expiration <= 0:
            raise ValueError("lookup_expiration must be > 0")
        self.name_server = name_server or "tcp:127.0.0.1:20002"
        self.monitor = "tcp:127.0.0.1:20001" if monitor is None else monitor
        self.group = group or ""
        opts = _lib.Options(
            name_server=_runtime.encode(name_server), monitor=_runtime.encode(monitor),
            group=_runtime.encode(group), log_level=level, smartbeat_period_ms=period,
            lookup_expiration_ms=expiration,
            token_file=None if token_file is None else os.fsencode(token_file),
            tls_ca_file=None if tls_ca_file is None else os.fsencode(tls_ca_file),
            tls_cert_file=None if tls_cert_file is None else os.fsencode(tls_cert_file),
            tls_key_file=None if tls_key_file is None else os.fsencode(tls_key_file))
        tls_given = [n for n, v in (("tls_ca_file", tls_ca_file), ("tls_cert_file", tls_cert_file),
                                    ("tls_key_file", tls_key_file)) if v is not None]
        if tls_given and self._lib.api_version() < 1003:
            v = self._lib.api_version()
            raise _lib.LibraryNotFoundError(
                f"{', '.join(tls_given)} need libstk of API 1.3 or later; {self._lib.path} implements "
                f"{v // 1000}.{v % 1000}; " + _lib.BUILD_HINT)
        h = ctypes.c_void_p()
        if self._lib.has("stk_env_create_sized"):
            # With the size of this binding's stk_options: what stk.h's
            # stk_env_create macro passes (see there).
            rc = self._lib.env_create_sized(ctypes.byref(opts), ctypes.sizeof(opts), ctypes.byref(h))
        elif token_file is not None:
            raise _lib.LibraryNotFoundError(
                f"token_file needs libstk of API 1.2 or later; {self._lib.path} is older; " + _lib.BUILD_HINT)
        else:
            rc = self._lib.env_create(ctypes.byref(opts), ctypes.byref(h))  # reads the fields of API 1.1
        self._lib.check(rc)
        self._adopt(h.value)
        self._children: Dict[int, Handle] = {}
        self._children_lock = threading.Lock()
        self._key = _runtime.register(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<stk.Environment name_server={self.name_server!r} monitor={self.monitor!r} {state}>"

    # -- children -------------------------------------------------------------

    def _add_child(self, child: Handle) -> None:
        with self._children_lock:
            self._children[id(child)] = child

    def _remove_child(self, child: Handle) -> None:
        with self._children_lock:
            self._children.pop(id(child), None)

    def close(self) -> None:
        """Close everything still open that was made from this environment,
        then the environment. Idempotent.

        Raises:
            BusyError: called from a callback of the library (close it from
                another thread).
        """
        if _runtime.in_callback() and not self._closed:
            raise BusyError(_lib.STK_EBUSY, "an environment cannot be closed from one of the library's callbacks")
        super().close()

    def _before_destroy(self) -> None:
        with self._children_lock:
            children = list(self._children.values())
            self._children.clear()
        for c in reversed(children):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - the env goes anyway
                _runtime.log.exception("stk: closing %r with its environment", c)

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.env_destroy(h))

    # -- name server ------------------------------------------------------------

    def wait_name_server(self, timeout: Optional[float] = 5.0) -> None:
        """Connect to the name server if not yet done and wait until the
        connection is up (at most ``timeout`` seconds; None: 5).

        Raises:
            StkTimeoutError: not connected in time (the environment keeps
                trying).
        """
        self._lib.check(self._lib.env_wait_name_server(self._handle(), ms(timeout, "timeout")))

    def register(self, name: Union[str, NameInfo], addresses: Iterable[Union[str, Endpoint]] = (), *,
                 group: Optional[str] = None, linger: int = 5, ft: FTState = FTState.ACTIVE,
                 meta: Iterable[Tuple[int, BytesLike]] = (), timeout: Optional[float] = 5.0) -> None:
        """Register a name with the name server.

        Either pass a :class:`NameInfo`, or the name and its parts::

            env.register("db", ["tcp:10.0.0.5:5432"], linger=30, meta=[(100, b"primary\\0")])

        Addresses are :class:`Endpoint` values or strings
        ``"[protocol:]ip:port"``. ``group`` None means the environment's.
        The call waits up to ``timeout`` seconds (None: 5; 0: does not wait)
        for the server's confirmation. Either way the environment keeps the
        registration and sends it again after every reconnect, until
        :meth:`unregister` or close. Registering the same name and group
        again replaces it.

        Raises:
            StkTimeoutError: no confirmation in time (is stkd running?).
            ValueError, TypeError: a malformed name, address or meta-data.
        """
        if isinstance(name, NameInfo):
            info = name
            if group is None and info.group:
                group = info.group
        else:
            info = NameInfo(name=name, group=group or "", linger=linger, ft=ft,
                            addresses=[a if isinstance(a, Endpoint) else Endpoint.parse(a) for a in addresses],
                            meta=[])
            for ut, data in meta:
                info.add_meta(ut, data)
        info.check()
        c = _runtime.CInfo(info, group)
        self._lib.check(self._lib.name_register(self._handle(), ctypes.byref(c.struct), ms(timeout, "timeout")))

    def unregister(self, name: str, group: Optional[str] = None) -> None:
        """Stop re-sending the registration of ``name`` in ``group`` (None:
        the environment's). STK has no unregister message: the server keeps
        the name until this environment's connection closes and its linger
        ends."""
        self._lib.check(self._lib.name_unregister(self._handle(), _runtime.encode(name), _runtime.encode(group)))

    def lookup(self, name: str, group: Optional[str] = None, expiration: Optional[float] = None, *,
               on_answer: Optional[Callable[[NameInfo], None]] = None,
               on_done: Optional[Callable[["LookupResult"], None]] = None) -> "Lookup":
        """Start a lookup of ``name`` and return it at once; see
        :class:`stk.Lookup` (iterate it for the answers as they come)."""
        from .lookup import Lookup
        return Lookup(self, name, group, expiration, on_answer=on_answer, on_done=on_done)

    def lookup_all(self, name: str, group: Optional[str] = None, expiration: Optional[float] = None) -> List[NameInfo]:
        """Look ``name`` up and return every answer (one per registration;
        ``[]`` for a name nobody registered). Waits until the server says
        there are no more answers, or ``expiration`` seconds (None: the
        environment's lookup expiration)."""
        with self.lookup(name, group, expiration) as q:
            return list(q)

    def lookup_one(self, name: str, group: Optional[str] = None, expiration: Optional[float] = None) -> NameInfo:
        """Look ``name`` up and return its first answer.

        Raises:
            NotFoundError: no registration answered.
        """
        with self.lookup(name, group, expiration) as q:
            for info in q:
                return info
            r = q.result
        raise NotFoundError(_lib.STK_ENOTFOUND, f"no registration of {name!r}"
                            + ("" if r is None or r.complete else " (the lookup expired: is stkd running?)"))

    def subscribe_name(self, name: str, callback: Callable[[NameInfo], None],
                       group: Optional[str] = None) -> "NameSubscription":
        """Call ``callback(info)`` for every registration of ``name`` that
        exists now and for each later one, until the returned
        :class:`stk.NameSubscription` is closed. The callback runs on a
        library thread; an exception it raises is logged and ignored."""
        from .lookup import NameSubscription
        return NameSubscription(self, name, callback, group)

    # -- data flows and services -------------------------------------------------

    def publisher(self, name: Optional[str] = None, address: Optional[str] = None, linger: int = 5) -> "Publisher":
        """Make a :class:`stk.Publisher` (see there)."""
        from .flow import Publisher
        return Publisher(self, name, address, linger)

    def subscriber(self, name: str, callback: Optional[Callable[..., None]] = None, *, max_queue: int = 1024,
                   max_queue_bytes: int = 16 << 20, on_full: "OnFull" = "block") -> "Subscriber":
        """Make a :class:`stk.Subscriber` of ``name`` (see there)."""
        from .flow import Subscriber
        return Subscriber(self, name, callback=callback, max_queue=max_queue, max_queue_bytes=max_queue_bytes,
                          on_full=on_full)

    def connect(self, address: str, callback: Optional[Callable[..., None]] = None, *, max_queue: int = 1024,
                max_queue_bytes: int = 16 << 20, on_full: "OnFull" = "block") -> "Subscriber":
        """Make a :class:`stk.Subscriber` connected to the publisher at
        ``address`` without the name service (see there)."""
        from .flow import Subscriber
        return Subscriber(self, address=address, callback=callback, max_queue=max_queue,
                          max_queue_bytes=max_queue_bytes, on_full=on_full)

    def service(self, name: str, *, id: int = 0, type: int = 0, activity_timeout: Optional[float] = None,
                monitor: Optional[str] = None) -> "Service":
        """Make a monitored :class:`stk.Service` (see there)."""
        from .service import Service
        return Service(self, name, id=id, type=type, activity_timeout=activity_timeout, monitor=monitor)
