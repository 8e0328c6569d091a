"""Tests of the binding against the real library (and a real stkd where a
test needs one).

They need libstk.so (found as the package finds it: STK_LIBRARY, ...) and
are skipped without it. Tests of the name service and the monitor need a
running stkd, given by STK_TEST_NAME_SERVER ("tcp:ip:port"),
STK_TEST_MONITOR ("tcp:ip:port") and STK_TEST_HTTP ("ip:port");
bindings/python/python_test.go starts one and sets them. With
STK_TEST_REQUIRE_LIVE=1 (set by that Go test) a missing library or stkd
fails instead of skipping.
"""

import json
import logging
import os
import sys
import threading
import time
import unittest
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stk  # noqa: E402

REQUIRE = os.environ.get("STK_TEST_REQUIRE_LIVE") == "1"
NS = os.environ.get("STK_TEST_NAME_SERVER", "")
MONITOR = os.environ.get("STK_TEST_MONITOR", "")
HTTP = os.environ.get("STK_TEST_HTTP", "")

try:
    stk.load_library()
    NO_LIB = ""
except stk.LibraryNotFoundError as e:
    NO_LIB = str(e)


def need_lib(test):
    if NO_LIB and REQUIRE:
        raise RuntimeError(f"STK_TEST_REQUIRE_LIVE=1 but {NO_LIB}")
    return unittest.skipIf(NO_LIB, NO_LIB)(test)


def need_stkd(test):
    missing = "" if NS and MONITOR and HTTP else "no stkd: set STK_TEST_NAME_SERVER, STK_TEST_MONITOR, STK_TEST_HTTP"
    if missing and REQUIRE:
        raise RuntimeError(f"STK_TEST_REQUIRE_LIVE=1 but {missing}")
    return need_lib(unittest.skipIf(missing, missing)(test))


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def wait_until(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def varied(i):
    """Sequence i of a set that covers ids, names, types and elements."""
    s = stk.Sequence(id=(i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1), name=["", "plain", "ünïcödé ✓", "x" * 300][i % 4],
                     type=[1, 3, 9, 0xFFFF][i % 4])
    for j in range(i % 5):  # 0 to 4 elements; 1 takes the one-call path
        s.add((1 << 64) - 1 - j if j % 2 else j, bytes((i + j + k) & 0xFF for k in range((i * 37 + j) % 2000)))
    return s


@need_lib
class PubSubTest(unittest.TestCase):
    """Publisher and subscriber in one process, over loopback, without the
    name service (Subscriber by address)."""

    def setUp(self):
        self.env = stk.Environment(monitor="")
        self.addCleanup(self.env.close)
        self.pub = self.env.publisher(None, "tcp:127.0.0.1:0")
        self.assertRegex(self.pub.address, r"^tcp:127\.0\.0\.1:\d+$")
        self.assertNotEqual(self.pub.endpoint.port, 0)

    def connect(self, **kw):
        sub = self.env.connect(self.pub.address, **kw)
        self.assertTrue(self.pub.wait_subscribers(1, timeout=5), "the subscriber did not connect")
        return sub

    def test_every_sequence_round_trips(self):
        sub = self.connect()
        sent = [varied(i) for i in range(400)]
        for s in sent:
            self.pub.send(s)
        got = [sub.receive(timeout=5) for _ in sent]
        self.assertNotIn(None, got)
        for i, (a, b) in enumerate(zip(sent, got)):
            self.assertEqual(a, b, f"sequence {i}")
        self.assertEqual(sub.received, len(sent))
        self.assertEqual(sub.dropped, 0)
        st = self.pub.stats()
        self.assertEqual(st.sequences_out, len(sent))
        self.assertEqual(st.connections, 1)
        self.assertEqual(sub.stats().sequences_in, len(sent))

    def test_send_data_and_prepared_send(self):
        sub = self.connect()
        self.pub.send_data(b"abc", user_type=7, id=1, name="n", type=2)
        self.pub.send_data(bytearray(b"xyz"))
        s = stk.Sequence(id=5, name="same").add(9, b"one")
        self.pub.send(s)
        self.pub.send(s)  # prepared arguments reused
        s.id = 6  # invalidates them
        self.pub.send(s)
        s.elements[0] = stk.Element(9, b"two")
        self.pub.send(s)
        s.elements.append(stk.Element(10, b""))
        self.pub.send(s)
        want = [stk.Sequence(1, "n", 2, [(7, b"abc")]), stk.Sequence(0, "", 1, [(stk.UT_EXAMPLE_DATA, b"xyz")]),
                stk.Sequence(5, "same", 1, [(9, b"one")]), stk.Sequence(5, "same", 1, [(9, b"one")]),
                stk.Sequence(6, "same", 1, [(9, b"one")]), stk.Sequence(6, "same", 1, [(9, b"two")]),
                stk.Sequence(6, "same", 1, [(9, b"two"), (10, b"")])]
        self.assertEqual([sub.receive(timeout=5) for _ in want], want)

    def test_send_many(self):
        sub = self.connect(max_queue=20000, max_queue_bytes=1 << 30)
        # A generator of 10,000 payloads of varied sizes: several chunks (4096
        # sequences or 1 MiB each), consumed lazily.
        payloads = (bytes([i & 0xFF]) * (i % 700) for i in range(10000))
        self.assertEqual(self.pub.send_many(payloads, user_type=7, id=3, name="m", type=2), 10000)
        self.assertEqual(self.pub.send_many([]), 0)
        self.assertEqual(self.pub.send_many([bytearray(b"ab"), memoryview(b"cd")]), 2)
        for i in range(10000):
            s = sub.receive(timeout=5)
            self.assertEqual(s, stk.Sequence(3, "m", 2, [(7, bytes([i & 0xFF]) * (i % 700))]), i)
        self.assertEqual([sub.receive(5)[0].data for _ in range(2)], [b"ab", b"cd"])
        with self.assertRaises(TypeError):
            self.pub.send_many([b"ok", None])
        with self.assertRaises(ValueError):
            self.pub.send_many([b"x"], id=-1)

    def test_callback_and_its_exceptions(self):
        got = []
        done = threading.Event()

        def cb(seq):
            got.append(seq.id)
            if seq.id % 10 == 3:
                raise ValueError(f"callback failure {seq.id}")
            if len(got) == 50:
                done.set()

        with self.assertLogs("stk", logging.ERROR) as logs:
            sub = self.connect(callback=cb)
            for i in range(50):
                self.pub.send_data(b"d", id=i)
            self.assertTrue(done.wait(5))
        self.assertEqual(sorted(got), list(range(50)))
        self.assertEqual(len([r for r in logs.records if "callback failure" in r.getMessage()
                              or (r.exc_info and "callback failure" in str(r.exc_info[1]))]), 5)
        with self.assertRaises(RuntimeError):
            sub.receive(0)

    def _fill(self, sub, n, size=1):
        for i in range(n):
            self.pub.send_data(b"x" * size, id=i)
        wait_until(lambda: sub.received == n, what=f"{n} deliveries")

    def test_drop_new(self):
        sub = self.connect(max_queue=10, on_full="drop_new")
        self._fill(sub, 100)
        self.assertEqual((sub.queued, sub.dropped), (10, 90))
        self.assertEqual([sub.receive(0).id for _ in range(10)], list(range(10)))
        self.assertIsNone(sub.receive(0))

    def test_drop_old(self):
        sub = self.connect(max_queue=10, on_full="drop_old")
        self._fill(sub, 100)
        self.assertEqual((sub.queued, sub.dropped), (10, 90))
        self.assertEqual([sub.receive(0).id for _ in range(10)], list(range(90, 100)))

    def test_receive_many(self):
        sub = self.connect(max_queue=100)
        self.assertEqual(sub.receive_many(timeout=0.05), [])
        self._fill(sub, 30)
        got = sub.receive_many(10, timeout=1)
        self.assertEqual([s.id for s in got], list(range(10)))
        self.assertEqual([s.id for s in sub.receive_many(timeout=1)], list(range(10, 30)))
        self.assertEqual(sub.queued, 0)
        with self.assertRaises(ValueError):
            sub.receive_many(0)

    def test_byte_bound(self):
        sub = self.connect(max_queue=1000, max_queue_bytes=1000, on_full="drop_new")
        self._fill(sub, 50, size=100)
        self.assertEqual((sub.queued, sub.dropped), (10, 40))

    def test_block_is_lossless_and_bounded(self):
        sub = self.connect(max_queue=8)
        n = 3000
        peak = 0

        def produce():
            for i in range(n):
                self.pub.send_data(b"y" * 200, id=i)

        t = threading.Thread(target=produce)
        t.start()
        ids = []
        while len(ids) < n:
            peak = max(peak, sub.queued)
            s = sub.receive(timeout=5)
            self.assertIsNotNone(s, f"stalled after {len(ids)}")
            ids.append(s.id)
            if len(ids) % 500 == 0:
                time.sleep(0.05)  # a slow consumer: the publisher waits
        t.join()
        self.assertEqual(ids, list(range(n)))
        self.assertLessEqual(peak, 8)
        self.assertEqual(sub.dropped, 0)

    def test_close_releases_a_blocked_delivery(self):
        sub = self.connect(max_queue=1)
        self._fill(sub, 2)  # the second waits in the library thread for room
        t0 = time.monotonic()
        sub.close()
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(sub.closed)
        self.assertEqual(len(list(sub)), 1)  # what was queued is still handed out
        with self.assertRaises(stk.ClosedError):
            sub.receive(0)

    def test_iteration_ends_at_close(self):
        sub = self.connect()
        self.pub.send_data(b"1", id=1)
        threading.Timer(0.3, sub.close).start()
        self.assertEqual([s.id for s in sub], [1])

    def test_env_close_closes_children_and_refuses_in_callbacks(self):
        env = stk.Environment(monitor="")
        pub = env.publisher(None)
        outcome = []
        ev = threading.Event()

        def cb(seq):
            try:
                env.close()
            except stk.BusyError as e:
                outcome.append(e.code)
            ev.set()

        sub = env.connect(pub.address, callback=cb)
        pub.wait_subscribers(1, 5)
        pub.send_data(b"z")
        self.assertTrue(ev.wait(5))
        self.assertEqual(outcome, [-12])
        env.close()
        self.assertTrue(pub.closed and sub.closed and env.closed)
        with self.assertRaises(stk.ClosedError):
            pub.send_data(b"late")
        with self.assertRaises(stk.ClosedError):
            env.publisher(None)
        env.close()  # idempotent

    def test_errors_carry_code_and_message(self):
        with self.assertRaises(stk.AddressError) as cm:
            self.env.publisher(None, "tcp:999.1.1.1:1")
        self.assertEqual(cm.exception.code, -4)
        self.assertTrue(cm.exception.message)
        with self.assertRaises(stk.ConnectError) as cm:
            self.env.publisher(None, self.pub.address)  # in use
        self.assertEqual(cm.exception.code, -5)
        self.assertIn(str(self.pub.endpoint.port), cm.exception.message)
        with self.assertRaises(stk.SequenceError) as cm:
            self.pub.send(stk.Sequence(type=0).add(1, b"x"))
        self.assertEqual(cm.exception.code, -10)
        with self.assertRaises(stk.SequenceError):
            self.pub.send(stk.Sequence(elements=[(1, b"")] * 256))
        with self.assertRaises(stk.AddressError):
            stk.Environment(name_server="nonsense:1:2:3")
        with self.assertRaises(ValueError):
            stk.Environment(log_level="loud")
        with self.assertRaises(ValueError):
            self.env.connect(self.pub.address, on_full="sometimes")
        with self.assertRaises(ValueError):
            self.env.connect(self.pub.address, max_queue=0)
        with self.assertRaises(TypeError):
            self.pub.send_data("text")

    def test_register_times_out_without_name_server(self):
        with stk.Environment(name_server="tcp:127.0.0.1:1", monitor="") as env:
            t0 = time.monotonic()
            with self.assertRaises(stk.StkTimeoutError) as cm:
                env.register("nobody-listens", ["tcp:127.0.0.1:9"], timeout=0.3)
            self.assertEqual(cm.exception.code, -6)
            self.assertLess(time.monotonic() - t0, 3)
            with self.assertRaises(stk.StkTimeoutError):
                env.wait_name_server(0.2)


@need_lib
class LookupWithoutServerTest(unittest.TestCase):
    """Lookups against a name server that never answers."""

    def test_expiration(self):
        with stk.Environment(name_server="tcp:127.0.0.1:1", monitor="") as env:
            t0 = time.monotonic()
            q = env.lookup("nobody", expiration=0.3)
            self.assertEqual(list(q), [])
            self.assertEqual(q.result, stk.LookupResult(0, False, -6))
            self.assertLess(time.monotonic() - t0, 3)
            with self.assertRaisesRegex(stk.NotFoundError, "expired"):
                env.lookup_one("nobody", expiration=0.2)

    def test_close_before_the_end(self):
        env = stk.Environment(name_server="tcp:127.0.0.1:1", monitor="")
        done = []
        q = env.lookup("nobody", expiration=10, on_done=done.append)
        q2 = env.lookup("nobody2", expiration=10, on_done=done.append)
        threading.Timer(0.2, q.close).start()
        t0 = time.monotonic()
        self.assertEqual(list(q), [])  # ends when closed
        self.assertIsNone(q.result)
        threading.Timer(0.2, env.close).start()
        self.assertIsNone(q2.wait(5))
        self.assertTrue(q2.closed)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(done, [])
        with stk.Environment(monitor="") as other, self.assertRaises(ValueError):
            other.lookup("x" * 96)


@need_stkd
class NameServiceTest(unittest.TestCase):
    def setUp(self):
        self.env = stk.Environment(name_server=NS, monitor="")
        self.addCleanup(self.env.close)

    def test_register_and_look_up(self):
        name = unique("py-reg")
        info = stk.NameInfo(name=name, group="pygroup", linger=30, ft=stk.FTState.ACTIVE,
                            addresses=[stk.Endpoint.parse("tcp:127.0.0.1:5432"), stk.Endpoint.parse("udp:127.0.0.2:6000")])
        info.add_meta(100, b"hello\x00").add_meta(0xFFFFFFFFFFFFFFFF, bytes(range(256)))
        self.env.register(info)
        with stk.Environment(name_server=NS, monitor="") as other:
            got = other.lookup_all(name, group="pygroup")
            self.assertEqual(got, [info])
            self.assertEqual(other.lookup_all(name), [])  # another group
            answers, results = [], []
            done = threading.Event()
            q = other.lookup(name, "pygroup", on_answer=answers.append,
                             on_done=lambda r: (results.append(r), done.set()))
            self.assertTrue(done.wait(5))
            self.assertEqual(answers, [info])
            self.assertEqual(results, [stk.LookupResult(1, True, 0)])
            self.assertEqual(q.wait(1), results[0])
            self.assertTrue(q.closed)  # freed at its end
            self.assertEqual(list(q), [info])
            with self.assertRaises(stk.NotFoundError) as cm:
                other.lookup_one(unique("py-missing"))
            self.assertEqual(cm.exception.code, -7)
            self.assertEqual(other.lookup_one(name, "pygroup").addresses[1], stk.Endpoint("udp", "127.0.0.2", 6000))

    def test_register_by_parts_and_subscribe(self):
        name = unique("py-sub")
        seen = []
        ev = threading.Event()

        def cb(info):
            seen.append(info)
            ev.set()

        sub = self.env.subscribe_name(name, cb)
        with stk.Environment(name_server=NS, monitor="") as other:
            other.register(name, ["tcp:127.0.0.1:7001"], linger=1, meta=[(50, b"m")])
            self.assertTrue(ev.wait(5), "no subscription callback")
        self.assertEqual(seen[0].name, name)
        self.assertEqual(seen[0].addresses, [stk.Endpoint("tcp", "127.0.0.1", 7001)])
        self.assertEqual(seen[0].meta, [(50, b"m")])
        sub.close()

    def test_publisher_and_subscriber_by_name(self):
        name = unique("py-pubsub")
        with self.env.publisher(name) as pub, self.env.subscriber(name) as sub:
            self.assertTrue(pub.wait_subscribers(1, timeout=10), "the subscriber did not find the publisher")
            for i in range(100):
                pub.send(varied(i))
            for i in range(100):
                self.assertEqual(sub.receive(timeout=5), varied(i))
            info = self.env.lookup_one(name)
            self.assertEqual(info.addresses, [pub.endpoint])
            self.assertEqual(info.ft, stk.FTState.ACTIVE)


@need_stkd
class ServiceTest(unittest.TestCase):
    def services(self, which="services"):
        with urllib.request.urlopen(f"http://{HTTP}/api/v1/{which}", timeout=5) as r:
            return json.load(r)["services"]

    def find(self, name, which="services"):
        return [s for s in self.services(which) if s["name"] == name]

    def test_state_and_checkpoint_reach_the_monitor(self):
        name = unique("py-svc")
        with stk.Environment(name_server=NS, monitor=MONITOR, smartbeat_period=0.1) as env:
            svc = env.service(name, type=stk.ServiceType.IO, activity_timeout=2.0)
            self.assertEqual(svc.state, stk.State.STARTING)
            svc.set_state_name(0x81, "sending")
            svc.state = 0x81
            self.assertEqual(svc.state, 0x81)
            svc.checkpoint = 41
            self.assertEqual(svc.add_checkpoint(), 42)

            def reported():
                s = self.find(name)
                return s and s[0]["state"] == 0x81 and s[0]["checkpoint"] == 42 and s[0]["state_name"] == "sending"
            wait_until(reported, what="the service's state and checkpoint in /api/v1/services")
            s = self.find(name)[0]
            self.assertEqual((s["id"], s["type"], s["activity_timeout_ms"]), (svc.id, 1, 2000))
            svc.close()
            wait_until(lambda: any(h["end_reason"] == "destroyed" and h["state"] == 4 for h in self.find(name, "history")),
                       what="the service's DESTROY in /api/v1/history")
            with self.assertRaises(stk.ClosedError):
                svc.checkpoint = 1
        with self.assertRaises(ValueError):
            svc.state = 0


if __name__ == "__main__":
    unittest.main()
