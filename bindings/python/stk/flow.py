"""Data flows: Publisher (a TCP server that sends to its subscribers) and
Subscriber (receives what the publishers of a name send)."""

from __future__ import annotations

import array
import collections
import ctypes
import functools
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Deque, Iterable, Iterator, List, Optional

from . import _lib, _runtime
from ._handle import Handle
from .errors import ClosedError, QueueFullError, SequenceError
from .names import Endpoint
from .sequence import (MAX_U64, UT_EXAMPLE_DATA, BytesLike, Element, Sequence, SequenceType, check_data, check_name,
                       check_u64)

if TYPE_CHECKING:  # pragma: no cover
    from .env import Environment

try:  # Python 3.8+: Literal
    from typing import Literal
    OnFull = Literal["block", "drop_new", "drop_old"]
except ImportError:  # pragma: no cover
    OnFull = str  # type: ignore[misc,assignment]

__all__ = ["Publisher", "Subscriber", "FlowStats", "ON_FULL"]

#: The queue policies of a Subscriber.
ON_FULL = ("block", "drop_new", "drop_old")


@dataclass(frozen=True)
class FlowStats:
    """A flow's counters (``stk_flow_stats``).

    Attributes:
        sequences_in, sequences_out: sequences received and sent.
        bytes_in, bytes_out: wire bytes, headers included.
        dropped: sequences not delivered by the library (a peer's queue
            full, lost with a connection). A Subscriber's own queue drops
            are in :attr:`Subscriber.dropped`, not here.
        reconnects: connections a subscriber re-established.
        connections: connections open now.
    """

    sequences_in: int
    sequences_out: int
    bytes_in: int
    bytes_out: int
    dropped: int
    reconnects: int
    connections: int

    @classmethod
    def _from_c(cls, s: "_lib.FlowStats") -> "FlowStats":
        return cls(s.sequences_in, s.sequences_out, s.bytes_in, s.bytes_out, s.dropped, s.reconnects,
                   s.connections)


_END = object()

# send_many hands the library at most this many sequences or bytes per call.
_CHUNK_COUNT = 4096
_CHUNK_BYTES = 1 << 20

# The array typecode of size_t (lens of send_many).
_SIZE_T_CODE = next(c for c in "LQI" if array.array(c).itemsize == ctypes.sizeof(ctypes.c_size_t))


def _checked_data(user_type: int, data: BytesLike) -> bytes:
    """Element data as bytes, and its user type checked: what the unchecked
    C calls need (they would not catch a wrong type)."""
    if user_type.__class__ is not int:
        check_u64("user_type", user_type)
    elif not 0 <= user_type <= MAX_U64:
        raise ValueError(f"user_type {user_type} is out of range: want 0 <= user_type < 2**64")
    if data.__class__ is bytes:
        return data
    return check_data(data)


class Publisher(Handle):
    """A TCP server data flow: subscribers connect to it and receive every
    sequence it sends.

    Args:
        env: the environment (its name server registers ``name``).
        name: the name to register with the bound address (protocol tcp,
            fault-tolerance state active); None: no registration.
        address: where to listen, ``"[tcp:]ip:port"``; None:
            ``"127.0.0.1:0"`` (port 0 picks a free port; :attr:`address`
            tells which). Only TCP is supported.
        linger: seconds the name outlives this publisher (default 5).

    Raises:
        StkTimeoutError: the name server did not confirm the registration
            within 5 s (is stkd running?); the publisher is not created.
        ConnectError: the address cannot be listened on.
        AddressError: a malformed address.

    Sending never waits for subscribers: with none connected a sequence goes
    nowhere, as in STK. Use :meth:`wait_subscribers` first when that
    matters. Closing delivers what is queued (at most 5 s) and closes the
    connections; the name server keeps the name for its linger.
    """

    _kind = "publisher"

    def __init__(self, env: "Environment", name: Optional[str] = None, address: Optional[str] = None,
                 linger: int = 5) -> None:
        super().__init__()
        if name is not None:
            check_name(name)
        if isinstance(linger, bool) or not isinstance(linger, int) or linger < 0:
            raise ValueError(f"linger {linger!r}: want whole seconds >= 0")
        self.env = env
        self.name = name
        h = ctypes.c_void_p()
        self._lib.check(self._lib.publisher_create(env._handle(), _runtime.encode(name), _runtime.encode(address),
                                                   linger, ctypes.byref(h)))
        self._adopt(h.value)
        self._key = _runtime.register(self)
        env._add_child(self)
        buf = ctypes.create_string_buffer(64)
        self._lib.check(self._lib.publisher_address(self._h, buf, len(buf)))
        #: The bound address, ``"tcp:ip:port"``.
        self.address: str = _runtime.decode(buf.value)
        # The hot path: the handle as a ctypes value, functions without
        # argtypes (see _lib.Lib.unchecked).
        self._hc = ctypes.c_void_p(self._h)
        self._send_data_fn = self._lib.unchecked("stk_publisher_send_data")
        self._send_fn = self._lib.unchecked("stk_publisher_send")
        self._batch_fn = (self._lib.unchecked("stk_publisher_send_data_batch")
                          if self._lib.has("stk_publisher_send_data_batch") else None)

    def __repr__(self) -> str:
        return f"<stk.Publisher {self.name!r} on {self.address} {'closed' if self._closed else 'open'}>"

    @property
    def endpoint(self) -> Endpoint:
        """The bound address as an :class:`Endpoint`."""
        return Endpoint.parse(self.address)

    @property
    def subscribers(self) -> int:
        """The number of subscribers connected now."""
        return self._lib.check(self._lib.publisher_subscribers(self._handle()))

    def wait_subscribers(self, n: int = 1, timeout: Optional[float] = None) -> bool:
        """Wait until at least ``n`` subscribers are connected; False if
        ``timeout`` seconds passed first (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.subscribers < n:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def send(self, seq: Sequence) -> None:
        """Send ``seq`` to every connected subscriber.

        A one-element sequence takes one library call; others are built in
        C first. ``seq`` is encoded before the call returns, so it may be
        changed at once.

        Raises:
            QueueFullError: a subscriber's queue (4 MiB) stayed full for 1 s
                and it was disconnected; the others got the sequence.
            SequenceError: type 0, more than 255 elements, too large.
            ClosedError: the publisher is closed.
        """
        els = seq.elements
        prep = seq._prep
        if prep is not None and prep[0] is self and len(els) == 1 and els[0] is prep[1]:
            # The same one-element sequence to the same publisher as last
            # time: Element tuples and bytes are immutable, so the same
            # element object means the same data. One prepared C call (a
            # closed publisher's handle gives STK_EHANDLE: ClosedError).
            rc = prep[2]()
            if rc:
                self._raise(rc)
            return
        if self._h is None:
            self._handle()
        if len(els) == 1:
            el = els[0]
            ut, data = el
            data = _checked_data(ut, data)
            call = functools.partial(self._send_data_fn, self._hc, ctypes.c_uint64(seq._id), seq._bname,
                                     int(seq._type), ctypes.c_uint64(ut), data, ctypes.c_size_t(len(data)))
            if el.__class__ is Element and data is el[1]:
                seq._prep = (self, el, call)  # reusable while elements == [el]
            rc = call()
            if rc:
                self._raise(rc)
            return
        if len(els) > _lib.STK_SEQ_MAX_ELEMENTS:
            raise SequenceError(_lib.STK_ESEQUENCE, f"{len(els)} elements: a TCP sequence carries at most "
                                f"{_lib.STK_SEQ_MAX_ELEMENTS}")
        lib = self._lib
        p = ctypes.c_void_p()
        lib.check(lib.sequence_create(seq._id, seq._bname, seq._type, ctypes.byref(p)))
        try:
            for ut, data in els:
                data = _checked_data(ut, data)
                lib.check(lib.sequence_add(p, ut, data, len(data)))
            rc = self._send_fn(self._hc, p)
        finally:
            lib.sequence_destroy(p)
        if rc:
            self._raise(rc)

    def send_data(self, data: BytesLike, user_type: int = UT_EXAMPLE_DATA, id: int = 0, name: Optional[str] = None,
                  type: int = SequenceType.DATA) -> None:
        """Send a one-element sequence without building a :class:`Sequence`:
        ``id``, ``name``, ``type`` and one element of ``user_type`` holding
        ``data``. The fastest way to send; same errors as :meth:`send`."""
        if self._h is None:
            self._handle()
        data = _checked_data(user_type, data)
        if not 0 <= id <= MAX_U64 or not 0 <= type <= 0xFFFF:
            raise ValueError(f"id {id} or type {type} out of range")
        rc = self._send_data_fn(self._hc, ctypes.c_uint64(id),
                                None if name is None else _runtime.encode(check_name(name)), int(type),
                                ctypes.c_uint64(user_type), data, ctypes.c_size_t(len(data)))
        if rc:
            self._raise(rc)

    def send_many(self, payloads: Iterable[BytesLike], user_type: int = UT_EXAMPLE_DATA, id: int = 0,
                  name: Optional[str] = None, type: int = SequenceType.DATA) -> int:
        """Send one one-element sequence per payload, in order, all with the
        same ``id``, ``name``, ``type`` and ``user_type``: the way to
        publish many small sequences fast from Python. They go to the
        library in chunks (at most 4096 sequences or about 1 MiB each,
        copied into one buffer), one call per chunk instead of one per
        sequence; ``payloads`` may be any iterable, a generator included,
        and is consumed as it goes, so memory stays bounded. Returns the
        number sent.

        Raises:
            QueueFullError: a subscriber too slow for 1 s was disconnected
                meanwhile; every sequence went to the others (raised at the
                end).
            other StkError: the first failure; the chunks before it were
                sent, that chunk in part (up to the failing sequence).

        With a library older than API 1.1 it sends them one call each.
        """
        if self._h is None:
            self._handle()
        _checked_data(user_type, b"")
        if isinstance(id, bool) or not isinstance(id, int) or not 0 <= id <= MAX_U64:
            raise ValueError(f"id {id!r}: want an int, 0 <= id < 2**64")
        if isinstance(type, bool) or not isinstance(type, int) or not 0 <= type <= 0xFFFF:
            raise ValueError(f"type {type!r}: want an int, 0 <= type <= 65535")
        bname = None if name is None else _runtime.encode(check_name(name))
        sent = 0
        full: Optional[QueueFullError] = None
        if self._batch_fn is None:
            for p in payloads:
                try:
                    self.send_data(p, user_type, id, name, type)
                except QueueFullError as e:
                    full = e
                sent += 1
        else:
            cid, cut = ctypes.c_uint64(id), ctypes.c_uint64(user_type)
            chunk: List[bytes] = []
            size = 0
            it = iter(payloads)
            while True:
                p = next(it, _END)
                if p is not _END:
                    if p.__class__ is not bytes:
                        p = check_data(p)
                    chunk.append(p)
                    size += len(p)
                    if len(chunk) < _CHUNK_COUNT and size < _CHUNK_BYTES:
                        continue
                if chunk:
                    lens = array.array(_SIZE_T_CODE, map(len, chunk))
                    rc = self._batch_fn(self._hc, cid, bname, int(type), cut, b"".join(chunk),
                                        ctypes.c_void_p(lens.buffer_info()[0]), ctypes.c_size_t(len(chunk)))
                    if rc == _lib.STK_EQUEUEFULL:
                        full = self._lib.error(rc)  # type: ignore[assignment]
                        rc = len(chunk)
                    elif rc < 0:
                        self._raise(rc)
                    sent += rc
                    chunk, size = [], 0
                if p is _END:
                    break
        if full is not None:
            raise full
        return sent

    def _raise(self, rc: int) -> None:
        if self._closed or rc == _lib.STK_EHANDLE:
            raise ClosedError(_lib.STK_ECLOSED, "the publisher is closed")
        raise self._lib.error(rc)

    def stats(self) -> FlowStats:
        """The publisher's counters."""
        s = _lib.FlowStats()
        self._lib.check(self._lib.publisher_stats(self._handle(), ctypes.byref(s)))
        return FlowStats._from_c(s)

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.publisher_destroy(h))

    def _after_close(self) -> None:
        self.env._remove_child(self)


class Subscriber(Handle):
    """Receives the sequences published under a name (or by one publisher).

    ``Subscriber(env, "prices")`` subscribes to the name with the name
    server and connects to every TCP address registered under it, now and
    later; connections reconnect by themselves. ``Subscriber(env,
    address="tcp:10.0.0.5:29312")`` connects to one publisher without the
    name service (``env`` may then be None). Creation returns at once.

    Two ways to receive:

    * **Iterate** (no callback): sequences are queued and ``for seq in
      sub:`` yields them, ending when the subscriber is closed (from another
      thread, or from a signal handler). :meth:`receive` takes one with a
      timeout.
    * **Callback**: ``callback(seq)`` runs on a library thread for every
      sequence, possibly concurrently when several publishers send; nothing
      is queued. It must be quick: it delays the sequences behind it on the
      same connection. An exception it raises is logged (logger ``stk``)
      and ignored.

    **Queue policy** (iteration): the queue holds at most ``max_queue``
    sequences and ``max_queue_bytes`` bytes of element data (one sequence
    larger than that is accepted when the queue is empty), so a slow
    consumer never grows memory without bound. When it is full,
    ``on_full`` says what happens to the next sequence:

    * ``"block"`` (default, lossless while the consumer keeps up on
      average): the library thread delivering it waits for room. That
      connection stops reading, TCP flow control fills the publisher's
      queue for this subscriber, and the publisher slows down to the
      consumer's pace. A consumer that stalls for long makes a Go or C
      publisher give up on it after its slow-consumer wait (1 s by default):
      it disconnects this subscriber, which reconnects by itself and
      resumes at the current data (what was in flight is lost, as
      :attr:`stats` ``reconnects`` shows).
    * ``"drop_new"``: the new sequence is dropped and counted in
      :attr:`dropped`; the connection keeps its pace.
    * ``"drop_old"``: the oldest queued sequence is dropped (counted in
      :attr:`dropped`) to make room: the consumer always sees the latest
      data.

    Args:
        env: the environment (its name server and group).
        name: the name to subscribe to.
        address: instead of ``name``, one publisher's ``"[tcp:]ip:port"``.
        callback: called with each :class:`Sequence`; None: queue them.
        max_queue: the queue's bound in sequences (>= 1).
        max_queue_bytes: the queue's bound in element bytes (>= 1).
        on_full: ``"block"``, ``"drop_new"`` or ``"drop_old"``.
    """

    _kind = "subscriber"

    def __init__(self, env: Optional["Environment"], name: Optional[str] = None, *, address: Optional[str] = None,
                 callback: Optional[Callable[[Sequence], None]] = None, max_queue: int = 1024,
                 max_queue_bytes: int = 16 << 20, on_full: OnFull = "block") -> None:
        super().__init__()
        if (name is None) == (address is None):
            raise ValueError("give a name or an address (not both)")
        if env is None and name is not None:
            raise ValueError("subscribing to a name needs an Environment")
        if on_full not in ON_FULL:
            raise ValueError(f"on_full {on_full!r}: want one of {', '.join(ON_FULL)}")
        for what, v in (("max_queue", max_queue), ("max_queue_bytes", max_queue_bytes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what} must be an int >= 1, not {v!r}")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        self.env = env
        self.name = name
        self.address = address
        self._callback = callback
        self._max_queue = max_queue
        self._max_bytes = max_queue_bytes
        self._on_full = on_full
        self._queue: Deque[Sequence] = collections.deque()
        self._queue_bytes = 0
        self._mu = threading.Lock()
        self._not_empty = threading.Condition(self._mu)
        self._not_full = threading.Condition(self._mu)
        self._received = 0
        self._dropped = 0
        self._waiting = 0  # consumers waiting in receive (under _mu)
        self._key = _runtime.register(self)
        h = ctypes.c_void_p()
        envh = env._handle() if env is not None else None
        try:
            if name is not None:
                rc = self._lib.subscriber_create(envh, _runtime.encode(check_name(name)), _runtime.SEQUENCE_THUNK,
                                                 self._key, ctypes.byref(h))
            else:
                rc = self._lib.subscriber_connect(envh, _runtime.encode(address), _runtime.SEQUENCE_THUNK,
                                                  self._key, ctypes.byref(h))
            self._lib.check(rc)
        except BaseException:
            _runtime.unregister(self._key)
            self._closed = True
            raise
        self._adopt(h.value)
        if env is not None:
            env._add_child(self)

    def __repr__(self) -> str:
        what = repr(self.name) if self.name is not None else self.address
        return f"<stk.Subscriber {what} {'closed' if self._closed else 'open'}>"

    # -- library side -----------------------------------------------------------

    def _on_sequence(self, p: int) -> None:
        seq = _runtime.sequence_from_c(self._lib, p)
        cb = self._callback
        if cb is not None:
            with self._mu:
                self._received += 1
            _runtime.call_user(cb, seq, what="subscriber callback")
            return
        els = seq.elements
        size = len(els[0][1]) if len(els) == 1 else sum(len(e[1]) for e in els)
        with self._mu:
            self._received += 1
            q = self._queue
            while q and (len(q) >= self._max_queue or self._queue_bytes + size > self._max_bytes):
                if self._closed:
                    return
                if self._on_full == "block":
                    self._not_full.wait()
                elif self._on_full == "drop_new":
                    self._dropped += 1
                    return
                else:
                    old = q.popleft()
                    self._queue_bytes -= old.size
                    self._dropped += 1
            if self._closed:
                return
            q.append(seq)
            self._queue_bytes += size
            if self._waiting:
                self._not_empty.notify()

    # -- consumer side ------------------------------------------------------------

    def receive(self, timeout: Optional[float] = None) -> Optional[Sequence]:
        """Return the next queued sequence, waiting at most ``timeout``
        seconds (None: until one comes); None if none came in time.

        Raises:
            ClosedError: the subscriber is closed and its queue is empty.
            RuntimeError: the subscriber has a callback (nothing is queued).
        """
        if self._callback is not None:
            raise RuntimeError("this subscriber delivers to its callback; nothing is queued")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._mu:
            while not self._queue:
                if self._closed:
                    raise ClosedError(_lib.STK_ECLOSED, "the subscriber is closed")
                self._waiting += 1
                try:
                    if deadline is None:
                        self._not_empty.wait()
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return None
                        self._not_empty.wait(left)
                finally:
                    self._waiting -= 1
            seq = self._queue.popleft()
            self._queue_bytes -= seq.size
            self._not_full.notify()
            return seq

    def receive_many(self, max_count: int = 1 << 30, timeout: Optional[float] = None) -> List[Sequence]:
        """Return every queued sequence (at most ``max_count``), waiting at
        most ``timeout`` seconds (None: until one comes) for the first; an
        empty list if none came in time. Taking them together costs less
        than one :meth:`receive` each.

        Raises:
            ClosedError: the subscriber is closed and its queue is empty.
            RuntimeError: the subscriber has a callback (nothing is queued).
        """
        if max_count < 1:
            raise ValueError("max_count must be >= 1")
        first = self.receive(timeout)
        if first is None:
            return []
        out = [first]
        with self._mu:
            q = self._queue
            n = min(len(q), max_count - 1)
            if n:
                for _ in range(n):
                    out.append(q.popleft())
                self._queue_bytes -= sum(s.size for s in out[1:])
                self._not_full.notify_all()
        return out

    def __iter__(self) -> Iterator[Sequence]:
        """Yield received sequences until the subscriber is closed (what is
        already queued then is still yielded)."""
        while True:
            try:
                seq = self.receive()
            except ClosedError:
                return
            if seq is not None:
                yield seq

    @property
    def received(self) -> int:
        """Sequences the library delivered to this subscriber so far
        (queued, dropped by the queue policy, or given to the callback)."""
        return self._received

    @property
    def dropped(self) -> int:
        """Sequences the queue policy dropped (``drop_new``, ``drop_old``)."""
        return self._dropped

    @property
    def queued(self) -> int:
        """Sequences waiting in the queue now."""
        return len(self._queue)

    def stats(self) -> FlowStats:
        """The sum of the subscriber's connections' counters."""
        s = _lib.FlowStats()
        self._lib.check(self._lib.subscriber_stats(self._handle(), ctypes.byref(s)))
        return FlowStats._from_c(s)

    # -- closing --------------------------------------------------------------------

    def _before_destroy(self) -> None:
        # Wake library threads blocked on a full queue and consumers waiting
        # for data: after this no sequence is queued any more.
        with self._mu:
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def _destroy(self, h: int) -> None:
        self._lib.check(self._lib.subscriber_destroy(h))

    def _after_close(self) -> None:
        if self.env is not None:
            self.env._remove_child(self)
