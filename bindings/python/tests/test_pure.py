"""Unit tests of the parts of the binding that need no library: sequences,
name-service values, errors, the library search and the examples' helpers.

Run from bindings/python: ``python3 -m unittest discover``.
"""

import os
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))

import stk  # noqa: E402
from stk import _lib  # noqa: E402
from stk.names import Endpoint, FTState, NameInfo  # noqa: E402
from stk.sequence import Element, Sequence, SequenceType  # noqa: E402


class SequenceTest(unittest.TestCase):
    def test_build_and_read(self):
        s = Sequence(id=42, name="prices").add(0x135, b"hello").add(7, bytearray(b"\x00\x01"))
        self.assertEqual(s.id, 42)
        self.assertEqual(s.name, "prices")
        self.assertIs(s.type, SequenceType.DATA)
        self.assertEqual(len(s), 2)
        self.assertEqual(s.size, 7)
        self.assertEqual(list(s), [(0x135, b"hello"), (7, b"\x00\x01")])
        self.assertEqual(s[1], Element(7, b"\x00\x01"))
        self.assertIsInstance(s[1].data, bytes)
        self.assertEqual(s[0].user_type, 0x135)
        self.assertEqual(s.find(7), b"\x00\x01")
        self.assertIsNone(s.find(8))
        self.assertIn("2 element(s), 7 bytes", repr(s))

    def test_elements_in_constructor_and_equality(self):
        a = Sequence(1, "n", 9, [(1, b"a"), (2, memoryview(b"bc"))])
        b = Sequence(1, "n", 9).add(1, b"a").add(2, b"bc")
        self.assertEqual(a, b)
        self.assertEqual(a.type, 9)
        b.add(3, b"")
        self.assertNotEqual(a, b)
        self.assertNotEqual(a, Sequence(2, "n", 9, [(1, b"a"), (2, b"bc")]))

    def test_copy_on_add(self):
        buf = bytearray(b"abc")
        s = Sequence().add(1, buf)
        buf[0] = ord("x")
        self.assertEqual(s[0].data, b"abc")

    def test_bad_values(self):
        for kw, exc in [({"id": -1}, ValueError), ({"id": 1 << 64}, ValueError), ({"id": "1"}, TypeError),
                        ({"id": True}, TypeError), ({"type": 70000}, ValueError), ({"type": -1}, ValueError),
                        ({"name": "a\x00b"}, ValueError), ({"name": 5}, TypeError),
                        ({"name": "x" * 70000}, ValueError)]:
            with self.subTest(kw=kw), self.assertRaises(exc):
                Sequence(**kw)
        s = Sequence()
        with self.assertRaisesRegex(TypeError, "encode the str"):
            s.add(1, "text")
        with self.assertRaises(ValueError):
            s.add(-1, b"")
        with self.assertRaises(ValueError):
            s.add(1 << 64, b"")
        self.assertEqual(len(s), 0)

    def test_limits_accepted(self):
        s = Sequence(id=(1 << 64) - 1, type=0xFFFF, name="é" * 100).add((1 << 64) - 1, b"")
        self.assertEqual(s.id, (1 << 64) - 1)
        self.assertEqual(s.type, 0xFFFF)
        self.assertEqual(s[0].user_type, (1 << 64) - 1)


class NamesTest(unittest.TestCase):
    def test_endpoint_parse(self):
        self.assertEqual(Endpoint.parse("tcp:127.0.0.1:29312"), Endpoint("tcp", "127.0.0.1", 29312))
        self.assertEqual(Endpoint.parse("udp:10.0.0.1:5"), Endpoint("udp", "10.0.0.1", 5))
        self.assertEqual(Endpoint.parse("127.0.0.2:7"), Endpoint("tcp", "127.0.0.2", 7))
        self.assertEqual(Endpoint.parse("multicast:224.10.10.20", default_port=29400),
                         Endpoint("multicast", "224.10.10.20", 29400))
        self.assertEqual(Endpoint.parse("rawudp:", default_port=1), Endpoint("rawudp", "127.0.0.1", 1))
        self.assertEqual(str(Endpoint("tcp", "1.2.3.4", 5)), "tcp:1.2.3.4:5")
        self.assertEqual(str(Endpoint("", "1.2.3.4", 5)), "1.2.3.4:5")
        for bad, why in [("tcp:1.2.3.4", "no port"), ("sctp:1.2.3.4:5", "unknown protocol"),
                         ("tcp:host:5", "not an IPv4"), ("tcp:1.2.3.4:x", "not a number"),
                         ("tcp:1.2.3.4:70000", "out of range"), ("lookup:foo", "lookup")]:
            with self.subTest(bad=bad), self.assertRaisesRegex(ValueError, why):
                Endpoint.parse(bad)

    def test_info_check(self):
        info = NameInfo("svc", addresses=[Endpoint.parse("tcp:127.0.0.1:1")], ft=FTState.ACTIVE)
        info.add_meta(100, b"hello\x00")
        info.check()
        self.assertEqual(info.meta_string(100), "hello")
        self.assertIsNone(info.meta_string(101))
        self.assertIn("tcp:127.0.0.1:1", str(info))
        for bad in [NameInfo(""), NameInfo("x" * 96), NameInfo("a", group="g" * 48),
                    NameInfo("a", addresses=[Endpoint("tcp", "1.1.1.1", 1)] * 6), NameInfo("a", linger=-1),
                    NameInfo("a", linger=1.5), NameInfo("a", ft=7), NameInfo("a", meta=[Element(5, b"")]),
                    NameInfo("a", meta=[Element(100, b"")] * 250)]:
            with self.subTest(info=bad), self.assertRaises(ValueError):
                bad.check()
        with self.assertRaises(TypeError):
            NameInfo("a", addresses=["tcp:1.1.1.1:1"]).check()
        NameInfo("x" * 95, group="g" * 47, meta=[Element(8, b""), Element(0, b"")] + [Element(9, b"")] * 247).check()


class ErrorsTest(unittest.TestCase):
    def test_hierarchy(self):
        for cls, std in [(stk.InvalidArgumentError, ValueError), (stk.NotFoundError, LookupError),
                         (stk.StkTimeoutError, TimeoutError), (stk.ConnectError, ConnectionError),
                         (stk.LibraryNotFoundError, ImportError)]:
            self.assertTrue(issubclass(cls, stk.StkError))
            self.assertTrue(issubclass(cls, std))
        e = stk.StkTimeoutError(-3, "no answer")
        self.assertEqual((e.code, e.message), (-3, "no answer"))
        self.assertEqual(str(e), "no answer (STK error -3)")
        self.assertIn("StkTimeoutError", repr(e))

    def test_for_code(self):
        e = stk.errors.error_for_code(-12345, "what")
        self.assertIs(type(e), stk.StkError)
        self.assertEqual(e.code, -12345)
        for code, cls in stk.errors._CLASSES.items():
            self.assertIs(type(stk.errors.error_for_code(code, "m")), cls)


class LibrarySearchTest(unittest.TestCase):
    def test_env_var_missing_file(self):
        with mock.patch.dict(os.environ, {"STK_LIBRARY": "/nonexistent/pybind-libstk.so"}):
            with self.assertRaisesRegex(stk.LibraryNotFoundError, "no such file.*make -C bindings/c"):
                _lib.find_library()

    def test_env_var_wins(self):
        with tempfile.TemporaryDirectory(prefix="pybind-") as d:
            p = Path(d) / "libstk.so"
            p.write_bytes(b"")
            with mock.patch.dict(os.environ, {"STK_LIBRARY": str(p)}):
                self.assertEqual(_lib.find_library()[0], str(p))

    def test_candidates_then_hint(self):
        with tempfile.TemporaryDirectory(prefix="pybind-") as d:
            fake = [Path(d) / "a" / "libstk.so", Path(d) / "b" / "libstk.so"]
            env = {k: v for k, v in os.environ.items() if k != "STK_LIBRARY"}
            with mock.patch.dict(os.environ, env, clear=True), \
                    mock.patch.object(_lib, "candidates", lambda: fake), \
                    mock.patch("ctypes.util.find_library", lambda n: None):
                with self.assertRaisesRegex(stk.LibraryNotFoundError, "cannot find.*a/libstk.so.*b/libstk.so.*make -C"):
                    _lib.find_library()
                fake[1].parent.mkdir()
                fake[1].write_bytes(b"")
                path, looked = _lib.find_library()
                self.assertEqual(path, str(fake[1]))
                self.assertEqual(looked, [str(fake[0]), str(fake[1])])

    def test_not_a_library(self):
        with tempfile.TemporaryDirectory(prefix="pybind-") as d:
            p = Path(d) / "libstk.so"
            p.write_bytes(b"not an ELF file")
            with self.assertRaisesRegex(stk.LibraryNotFoundError, "cannot load .*libstk.so.*make -C bindings/c"):
                _lib.Lib(str(p))

    def test_another_library(self):
        import ctypes.util
        libc = ctypes.util.find_library("c")
        if not libc:
            self.skipTest("no libc to load")
        with self.assertRaisesRegex(stk.LibraryNotFoundError, "lacks stk_version.*not the C binding"):
            _lib.Lib(libc)

    def test_default_candidates(self):
        c = [str(p) for p in _lib.candidates()]
        self.assertTrue(any(p.endswith(os.path.join("bindings", "c", "build", "libstk.so")) for p in c), c)


class ExampleHelpersTest(unittest.TestCase):
    """The examples' output must read as the Go programs' does."""

    def test_duration_flags(self):
        import argparse
        import _cli
        for text, want in [("200ms", 0.2), ("1s", 1.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("250us", 0.00025),
                           ("0", 0.0), ("2µs", 2e-6), ("3ns", 3e-9)]:
            self.assertAlmostEqual(_cli.duration(text), want, msg=text)
        for bad in ["", "5", "1x", "s", "1s2", "-1s"]:
            with self.subTest(bad=bad), self.assertRaises(argparse.ArgumentTypeError):
                _cli.duration(bad)

    def test_go_duration(self):
        import _cli
        for secs, want in [(0, "0s"), (30, "30s"), (300, "5m0s"), (3600, "1h0m0s"), (3725.5, "1h2m5.5s"),
                           (1.007584, "1.007584s"), (0.050842, "50.842ms"), (0.0014530, "1.453ms"),
                           (0.000850, "850µs"), (5e-8, "50ns"), (-2, "-2s")]:
            self.assertEqual(_cli.go_duration(secs), want)

    def test_go_quote_and_rate(self):
        import _cli
        self.assertEqual(_cli.go_quote('publish "seq"\n\x01é'), '"publish \\"seq\\"\\n\\x01é"')
        self.assertEqual(_cli.go_quote(b"a\xffb".decode("utf-8", "surrogateescape")), '"a\\xffb"')
        self.assertEqual(_cli.rate(1, 10, 0, 1), "1 sequences, 10 bytes")
        self.assertEqual(_cli.rate(1000, 10000, 1.0, 1.5),
                         "1000 sequences, 10000 bytes in 0.500000 s: 2000 sequences/s, 0.0 MB/s")
        self.assertEqual(_cli.sequence_type(1), "data")
        self.assertEqual(_cli.sequence_type(9), "type(9)")

    def test_publish_payload(self):
        from publish import payload
        # The bytes the C and Go publish examples send (examples/publish/main.go).
        self.assertEqual(payload(10), b"default \xde\xad")
        self.assertEqual(payload(0), b"")
        self.assertEqual(payload(1), b"\xef")
        p = payload(1024)
        self.assertEqual(p[:12], b"default data")
        self.assertEqual(p[16:24], bytes.fromhex("efcdab8967452301"))
        self.assertEqual(p[-2:], b"\xde\xad")

    def test_print_info(self):
        import io
        import _cli
        info = NameInfo("svc", group="test", linger=30, ft=FTState.ACTIVE,
                        addresses=[Endpoint("tcp", "127.0.0.1", 5432), Endpoint("udp", "127.0.0.2", 6000)])
        info.add_meta(100, b"hello\x00").add_meta(0x1000, b"tcp:127.0.0.1:20001\x00")
        out = io.StringIO()
        _cli.print_info(info, out)
        self.assertEqual(out.getvalue().splitlines(), [
            "Received info on name svc (group test), IP 127.0.0.1 Port 5432 Protocol tcp; "
            "IP 127.0.0.2 Port 6000 Protocol udp, FT State active, linger 30s",
            "Name svc has 2 meta data elements",
            'Meta data type 100 sz 6 "hello"',
            "HTTP monitoring TCP Connection tcp:127.0.0.1:20001"])


if __name__ == "__main__":
    unittest.main()
