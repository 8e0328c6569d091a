#!/usr/bin/env python3
"""simple_name_registration: registers a name with addresses and optional
meta-data, group, fault-tolerance state and linger.

The Python twin of examples/simple_name_registration.
"""

from __future__ import annotations

import signal
import sys
import threading

import _cli
from _cli import stk

PROG = "simple_name_registration.py"
FT_STATES = {"active": stk.FTState.ACTIVE, "backup": stk.FTState.UNSET, "standby": stk.FTState.STANDBY}


def main() -> int:
    p = _cli.parser(PROG, "[flags] <name>", "Registers <name> with the name server.")
    p.add_argument("name", help="the name to register")
    p.add_argument("-i", "--interface", action="append", metavar="ADDR",
                   help="address to register, [protocol:]ip[:port]; repeat for several (at most 5) "
                        "(default: tcp:127.0.0.1:20003)")
    p.add_argument("-M", "--meta", action="append", default=[], metavar="ID,VALUE",
                   help="meta-data element (user type id, value sent as a C string); repeatable")
    p.add_argument("-F", "--ft-state", default="active", metavar="STATE",
                   help="fault-tolerance state: active, backup (sends none, like C) or standby")
    p.add_argument("-G", "--group", default="", help="name group")
    p.add_argument("-L", "--linger", type=int, default=300, metavar="S",
                   help="seconds the name outlives this program's connection")
    p.add_argument("-w", "--wait", action="store_true",
                   help="stay registered until Ctrl-C (the name then lingers -L seconds)")
    _cli.add_name_server(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    a = p.parse_args()

    info = stk.NameInfo(name=a.name, group=a.group, linger=a.linger)
    for s in a.interface or ["tcp:127.0.0.1:20003"]:
        try:
            info.addresses.append(stk.Endpoint.parse(s, default_port=20003))
        except ValueError as e:
            _cli.fail(PROG, f"-i {s}: {e}")
    try:
        info.ft = FT_STATES[a.ft_state.lower()]
    except KeyError:
        _cli.fail(PROG, f"-F {a.ft_state!r}: want active, backup or standby")
    for m in a.meta:
        ident, sep, value = m.partition(",")
        try:
            ut = int(ident, 0)
            if not sep:
                raise ValueError
            info.add_meta(ut, value.encode() + b"\x00")
        except ValueError:
            _cli.fail(PROG, f"-M {m!r}: want id,value with a numeric id, as in -M 100,hello")
    try:
        info.check()
    except (ValueError, TypeError) as e:
        _cli.fail(PROG, e)

    try:
        env = stk.Environment(name_server=a.name_server, monitor="")
    except stk.StkError as e:
        _cli.fail(PROG, e)
    with env:
        if not a.quiet:
            print(f"Registering info on name {a.name}", flush=True)
        try:
            env.register(info)
        except stk.StkTimeoutError as e:
            _cli.fail(PROG, _cli.with_hint(e))
        except stk.StkError as e:
            _cli.fail(PROG, e)
        if not a.quiet:
            print(f"Registered {a.name} with the name server at {a.name_server} "
                  f"(linger {_cli.go_duration(a.linger)})", flush=True)
        if a.wait:
            done = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: done.set())
            signal.signal(signal.SIGTERM, lambda *_: done.set())
            while not done.wait(0.5):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
