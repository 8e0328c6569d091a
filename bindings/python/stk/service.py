"""Monitored services: state, checkpoint and smartbeats reported to stkd."""

from __future__ import annotations

import ctypes
import enum
import threading
from typing import TYPE_CHECKING, Optional, Union

from . import _lib, _runtime
from ._handle import Handle, ms
from .sequence import check_name, check_u64

if TYPE_CHECKING:  # pragma: no cover
    from .env import Environment

__all__ = ["State", "ServiceType", "Service"]


class State(enum.IntEnum):
    """Service states STK defines. 6..255 belong to the application, which
    may name them (:meth:`Service.set_state_name`). Transitions are not
    checked: any state may follow any other."""

    STARTING = 1  #: the state of a new service
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4  #: sent when the service is closed
    TIMED_OUT = 5  #: given by a service group to a member it timed out


class ServiceType(enum.IntEnum):
    """Service types STK names; other values (up to 65535) are the
    application's."""

    IO = 1
    DATA = 2  #: the default
    MGMT = 3
    NET = 4


def _state(v: int) -> Union[State, int]:
    try:
        return State(v)
    except ValueError:
        return v


def _check_state(state: int) -> int:
    if isinstance(state, bool) or not isinstance(state, int):
        raise TypeError(f"state must be an int, not {type(state).__name__}")
    if not 1 <= state <= 255:
        raise ValueError(f"state {state} out of range: want 1..255")
    return int(state)


class Service(Handle):
    """A service that reports to the monitor (stkd), where the status UI and
    ``GET /api/v1/services`` show it::

        with env.service("billing") as svc:
            svc.state = stk.State.RUNNING
            for n, job in enumerate(jobs, 1):
                work(job)
                svc.checkpoint = n       # travels in every smartbeat
            svc.state = stk.State.STOPPING
        # leaving the block sends DESTROY with state STOPPED

    The service starts in :attr:`State.STARTING` and announces itself at
    once; the environment's sender then sends a smartbeat for it every
    period (0.5 s by default) on its own thread, so a busy Python program
    does not look dead to the monitor as long as the process runs.

    Args:
        env: the environment (its monitor address and smartbeat period).
        name: the service name.
        id: the service id, a u64; 0 picks a random 31-bit one.
        type: a :class:`ServiceType` or application value; 0: ``DATA``.
        activity_timeout: seconds the monitor waits for a smartbeat before
            declaring the service failed; None: 1.2; at least the smartbeat
            period.
        monitor: the monitor address (as :class:`Environment`'s); None: the
            environment's.

    Raises:
        AddressError: the monitor address cannot be parsed.
        StkTimeoutError: a ``lookup:`` monitor address could not be looked
            up. A monitor that is down is not an error: the service keeps
            trying and announces itself when it comes.
    """

    _kind = "service"

    def __init__(self, env: "Environment", name: str, *, id: int = 0, type: int = 0,
                 activity_timeout: Optional[float] = None, monitor: Optional[str] = None) -> None:
        super().__init__()
        check_name(name)
        if not name:
            raise ValueError("a service needs a name")
        check_u64("id", id)
        if isinstance(type, bool) or not isinstance(type, int) or not 0 <= type <= 0xFFFF:
            raise ValueError(f"type {type!r}: want an int in 0..65535")
        at = ms(activity_timeout, "activity_timeout", 0)
        if activity_timeout is not None and at <= 0:
            raise ValueError("activity_timeout must be > 0")
        self.env = env
        #: The service name.
        self.name = name
        opts = _lib.ServiceOptions(id=id, type=type, activity_timeout_ms=at, monitor=_runtime.encode(monitor))
        h = ctypes.c_void_p()
        self._lib.check(self._lib.service_create(env._handle(), _runtime.encode(name), ctypes.byref(opts),
                                                 ctypes.byref(h)))
        self._adopt(h.value)
        self._key = _runtime.register(self)
        env._add_child(self)
        sid = ctypes.c_uint64()
        self._lib.check(self._lib.service_id(self._h, ctypes.byref(sid)))
        #: The service id.
        self.id: int = sid.value
        self._checkpoint = 0
        self._cp_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<stk.Service {self.name!r} id={self.id:#x} {'closed' if self._closed else 'open'}>"

    @property
    def state(self) -> Union[State, int]:
        """The current state; setting it notifies the monitor (every time,
        even when it does not change)."""
        return _state(self._lib.check(self._lib.service_state(self._handle())))

    @state.setter
    def state(self, state: int) -> None:
        self.set_state(state)

    def set_state(self, state: int) -> None:
        """Set the state (1..255) and notify the monitor."""
        state = _check_state(state)
        self._lib.check(self._lib.service_set_state(self._handle(), state))

    def set_state_name(self, state: int, name: Optional[str]) -> None:
        """Name an application state (6..255) for this service, or rename a
        default one; the name travels with the state. None or "" removes it.
        Call it before setting the state."""
        if name is not None:
            check_name(name)
        state = _check_state(state)
        self._lib.check(self._lib.service_set_state_name(self._handle(), state,
                                                         _runtime.encode(name) if name else None))

    @property
    def checkpoint(self) -> int:
        """The checkpoint: a u64 progress counter (say, items processed) that
        travels in every smartbeat. Nothing interprets it."""
        return self._checkpoint

    @checkpoint.setter
    def checkpoint(self, n: int) -> None:
        n = check_u64("checkpoint", n)
        with self._cp_lock:
            self._lib.check(self._lib.service_set_checkpoint(self._handle(), n))
            self._checkpoint = n

    def add_checkpoint(self, delta: int = 1) -> int:
        """Add ``delta`` to the checkpoint and return the new value."""
        with self._cp_lock:
            n = check_u64("checkpoint", self._checkpoint + delta)
            self._lib.check(self._lib.service_set_checkpoint(self._handle(), n))
            self._checkpoint = n
            return n

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.service_destroy(h))

    def _after_close(self) -> None:
        self.env._remove_child(self)
