"""What the example programs share: finding the stk package, flag types,
errors, and the Go examples' output formats (rates, durations, name
answers), so that their output reads the same."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn, Optional, TextIO

# Run from a source tree without installing: the package is one level up.
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _PKG_PARENT not in sys.path:
    sys.path.insert(0, _PKG_PARENT)

import stk  # noqa: E402

DEFAULT_NAME_SERVER = "tcp:127.0.0.1:20002"
NAMES_HINT = "is stkd running? start it with `go run ./stkd`, or point -R at it"

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def duration(s: str) -> float:
    """An argparse type: a Go duration ("200ms", "1.5s", "1m30s") in
    seconds. A bare "0" is accepted, as Go does."""
    text = s.strip()
    if text in ("0", "+0"):
        return 0.0
    pos, total = 0, 0.0
    for m in _DUR.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"invalid duration {s!r}: want a number with a unit, as 500ms, 2s or 1m30s")
    return total


def go_duration(seconds: float) -> str:
    """Format a duration as Go's time.Duration.String does ("1.5s",
    "2m0s", "850µs", "0s")."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1000:
        out = f"{ns}ns"
    elif ns < 1_000_000:
        out = _frac(ns, 1000) + "µs"
    elif ns < 1_000_000_000:
        out = _frac(ns, 1_000_000) + "ms"
    else:
        h, rem = divmod(ns, 3600 * 10**9)
        m, rem = divmod(rem, 60 * 10**9)
        out = _frac(rem, 10**9) + "s"
        if h or m:
            out = f"{m}m" + out
        if h:
            out = f"{h}h" + out
    return "-" + out if neg else out


def _frac(v: int, unit: int) -> str:
    whole, frac = divmod(v, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def rate(n: int, nbytes: int, first: float, last: float) -> str:
    """The Go examples' throughput report (internal/cli.Rate)."""
    d = last - first
    if n < 2 or d <= 0:
        return f"{n} sequences, {nbytes} bytes"
    return f"{n} sequences, {nbytes} bytes in {d:.6f} s: {n / d:.0f} sequences/s, {nbytes / d / 1e6:.1f} MB/s"


def go_quote(s: str) -> str:
    """Quote a string roughly as Go's %q does."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= o <= 0xDCFF:  # an invalid UTF-8 byte kept by surrogateescape
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def sequence_type(t: int) -> str:
    """A sequence type as the Go programs print it ("data", "type(9)")."""
    names = ("invalid", "data", "kvpair", "mgmt", "request", "query", "subscribe")
    return names[t] if 0 <= t < len(names) else f"type({t})"


def print_info(info: stk.NameInfo, out: Optional[TextIO] = None) -> None:
    """Print a name-service answer as the C and Go examples do."""
    w = out or sys.stdout
    line = f"Received info on name {info.name}"
    if info.group:
        line += f" (group {info.group})"
    if not info.addresses:
        line += ", no address"
    for i, e in enumerate(info.addresses):
        line += ("; " if i else ", ") + f"IP {e.host} Port {e.port} Protocol {e.protocol}"
    line += f", FT State {info.ft}, linger {go_duration(info.linger)}"
    print(line, file=w)
    if info.meta:
        print(f"Name {info.name} has {len(info.meta)} meta data elements", file=w)
    labels = {0x1000: "TCP", 0x1001: "UDP", 0x1002: "Multicast"}
    for ut, data in info.meta:
        text = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        if ut in labels:
            print(f"HTTP monitoring {labels[ut]} Connection {text}", file=w)
        else:
            print(f"Meta data type {ut} sz {len(data)} {go_quote(text)}", file=w)


def with_hint(e: Exception) -> str:
    """The error's text with NAMES_HINT, unless it already says as much."""
    msg = str(e)
    return msg if "stkd" in msg else f"{msg}; {NAMES_HINT}"


def fail(prog: str, msg: object) -> NoReturn:
    """Print ``prog: msg`` on stderr and exit with status 1."""
    print(f"{prog}: {msg}", file=sys.stderr)
    sys.exit(1)


class _Formatter(argparse.HelpFormatter):
    """Adds "(default: X)" to a flag's help when X says something (not for
    switches, empty strings, or helps that already name their default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        d = action.default
        if ("default" in h or d is None or d is False or d == "" or d == argparse.SUPPRESS
                or action.option_strings == [] or isinstance(d, list)):
            return h
        if action.type is duration:
            return h + f" (default: {go_duration(d)})"
        return h + " (default: %(default)s)"


def parser(prog: str, synopsis: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the Go examples' usage layout."""
    return argparse.ArgumentParser(prog=prog, usage=f"{prog} {synopsis}", description=description,
                                   formatter_class=_Formatter)


def add_name_server(p: argparse.ArgumentParser, what: str = "name server") -> None:
    """The -R flag every example has."""
    p.add_argument("-R", "--name-server", default=DEFAULT_NAME_SERVER, metavar="ADDR",
                   help=f"{what}: [tcp|udp:]ip[:port]")
