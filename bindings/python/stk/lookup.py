"""Name lookups and name subscriptions."""

from __future__ import annotations

import ctypes
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, List, NamedTuple, Optional

from . import _lib, _runtime
from ._handle import Handle, ms
from .names import MAX_GROUP_LEN, MAX_NAME_LEN, NameInfo, _check_cstr

if TYPE_CHECKING:  # pragma: no cover
    from .env import Environment

__all__ = ["Lookup", "LookupResult", "NameSubscription"]


class LookupResult(NamedTuple):
    """How a lookup ended.

    Attributes:
        answers: the number of answers.
        complete: True when the name server said there are no more answers
            (a Go stkd does, right after the last one); False when the
            expiration passed (the only end a C name server gives).
        status: the library's code: 0 or ``STK_ETIMEDOUT`` (-6).

    A lookup closed (or whose environment was closed) before its end has no
    result: :attr:`Lookup.result` stays None and ``on_done`` is not called.
    """

    answers: int
    complete: bool
    status: int


class Lookup(Handle):
    """A running lookup of a name; made by :meth:`Environment.lookup`.

    Iterate it to get the answers (:class:`NameInfo`, one per registration)
    as they come; the iteration ends after the last one, when the server
    says there are no more (usually at once) or when the expiration passes::

        for info in env.lookup("db"):
            print(info.addresses)

    Or give callbacks: ``on_answer(info)`` for each answer and
    ``on_done(result)`` once at the end, both on a library thread (an
    exception they raise is logged and ignored). Answers are also collected
    in :attr:`answers` either way: a lookup holds one per registration of
    the name, which the server bounds.

    Args:
        env: the environment.
        name: the name (at most 95 bytes).
        group: the name group; None: the environment's.
        expiration: seconds to wait for answers; None: the environment's
            lookup expiration (1 s by default).
        on_answer, on_done: optional callbacks.

    Closing (or leaving a ``with`` block) cancels a lookup still running:
    ``on_done`` is then not called.
    """

    _kind = "lookup"

    def __init__(self, env: "Environment", name: str, group: Optional[str] = None,
                 expiration: Optional[float] = None, *, on_answer: Optional[Callable[[NameInfo], None]] = None,
                 on_done: Optional[Callable[[LookupResult], None]] = None) -> None:
        super().__init__()
        _check_cstr("name", name, MAX_NAME_LEN, empty_ok=False)
        if group is not None:
            _check_cstr("group", group, MAX_GROUP_LEN, empty_ok=True)
        exp = ms(expiration, "expiration", 0)
        if expiration is not None and exp <= 0:
            raise ValueError("expiration must be > 0 seconds")
        self.env = env
        self.name = name
        self.group = group
        self._on_answer_cb = on_answer
        self._on_done_cb = on_done
        #: The answers received so far, in order.
        self.answers: List[NameInfo] = []
        #: How the lookup ended; None while it runs.
        self.result: Optional[LookupResult] = None
        self._cond = threading.Condition()
        self._key = _runtime.register(self)
        h = ctypes.c_void_p()
        try:
            self._lib.check(self._lib.name_lookup(env._handle(), _runtime.encode(name), _runtime.encode(group), exp,
                                                  _runtime.NAME_THUNK, _runtime.DONE_THUNK, self._key,
                                                  ctypes.byref(h)))
        except BaseException:
            _runtime.unregister(self._key)
            self._closed = True
            raise
        with self._cond:
            self._adopt(h.value)
            finished = self.result is not None
        env._add_child(self)
        if finished:
            self.close()

    def __repr__(self) -> str:
        return f"<stk.Lookup {self.name!r} answers={len(self.answers)} result={self.result}>"

    def _on_name(self, ci: "_lib.CNameInfo") -> None:
        info = _runtime.info_from_c(ci)
        with self._cond:
            self.answers.append(info)
            self._cond.notify_all()
        if self._on_answer_cb is not None:
            _runtime.call_user(self._on_answer_cb, info, what="lookup on_answer")

    def _on_done(self, answers: int, status: int) -> None:
        r = LookupResult(answers, status == _lib.STK_OK, status)
        with self._cond:
            self.result = r
            self._cond.notify_all()
            adopted = self._h is not None
        if self._on_done_cb is not None:
            _runtime.call_user(self._on_done_cb, r, what="lookup on_done")
        # The lookup is over: free its handle now (allowed from its own
        # callback) rather than when the program closes it. If the library
        # has not returned the handle yet, the constructor does it.
        if adopted:
            self.close()

    @property
    def done(self) -> bool:
        """Whether the lookup has ended."""
        return self.result is not None

    def wait(self, timeout: Optional[float] = None) -> Optional[LookupResult]:
        """Wait until the lookup ends (at most ``timeout`` seconds; None: no
        limit) and return how it ended, or None if it has not yet."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.result is None and not self._cancelled():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            return self.result

    def _cancelled(self) -> bool:
        return self._closed and self.result is None

    def __iter__(self) -> Iterator[NameInfo]:
        """Yield every answer as it comes, until the lookup ends (or is
        closed)."""
        i = 0
        while True:
            with self._cond:
                while i >= len(self.answers) and self.result is None and not self._cancelled():
                    self._cond.wait()
                if i >= len(self.answers):
                    return
                info = self.answers[i]
            i += 1
            yield info

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.lookup_destroy(h))

    def _after_close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self.env._remove_child(self)


class NameSubscription(Handle):
    """A subscription to a name, made by :meth:`Environment.subscribe_name`:
    ``callback(info)`` runs (on a library thread) for every registration of
    the name that exists now and for each later one, across reconnects to
    the name server, until :meth:`close`."""

    _kind = "name subscription"

    def __init__(self, env: "Environment", name: str, callback: Callable[[NameInfo], None],
                 group: Optional[str] = None) -> None:
        super().__init__()
        _check_cstr("name", name, MAX_NAME_LEN, empty_ok=False)
        if group is not None:
            _check_cstr("group", group, MAX_GROUP_LEN, empty_ok=True)
        if not callable(callback):
            raise TypeError("callback must be callable")
        self.env = env
        self.name = name
        self.group = group
        self._callback = callback
        self._key = _runtime.register(self)
        h = ctypes.c_void_p()
        try:
            self._lib.check(self._lib.name_subscribe(env._handle(), _runtime.encode(name), _runtime.encode(group),
                                                     _runtime.NAME_THUNK, self._key, ctypes.byref(h)))
        except BaseException:
            _runtime.unregister(self._key)
            self._closed = True
            raise
        self._adopt(h.value)
        env._add_child(self)

    def __repr__(self) -> str:
        return f"<stk.NameSubscription {self.name!r} {'closed' if self._closed else 'open'}>"

    def _on_name(self, ci: "_lib.CNameInfo") -> None:
        _runtime.call_user(self._callback, _runtime.info_from_c(ci), what="name subscription callback")

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.name_subscription_destroy(h))

    def _after_close(self) -> None:
        self.env._remove_child(self)
