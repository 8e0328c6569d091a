#!/usr/bin/env python3
"""simple_name_lookup: looks a name up, or with -X subscribes to it, and
prints every answer.

The Python twin of examples/simple_name_lookup.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import _cli
from _cli import stk

PROG = "simple_name_lookup.py"


def main() -> int:
    p = _cli.parser(PROG, "[flags] <name>", "Looks <name> up with the name server and prints the answers.")
    p.add_argument("name", help="the name to look up")
    p.add_argument("-G", "--group", default="", help="name group to look in")
    p.add_argument("-X", "--subscribe", action="store_true",
                   help="subscribe: print the current registrations and every later one until Ctrl-C")
    p.add_argument("-c", "--count", type=int, default=0, metavar="N",
                   help="stop after this many answers (0: all of them)")
    p.add_argument("-e", "--expiration", type=_cli.duration, default=1.0, metavar="DURATION",
                   help="how long to wait for answers, as 1s or 500ms (a Go stkd says when it has sent them all, "
                        "so a lookup usually ends sooner)")
    _cli.add_name_server(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    a = p.parse_args()
    if a.count < 0 or a.expiration <= 0:
        p.error("-c must be >= 0 and -e > 0")

    try:
        env = stk.Environment(name_server=a.name_server, monitor="", group=a.group or None)
    except stk.StkError as e:
        _cli.fail(PROG, e)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    answers = 0
    lock = threading.Lock()

    def on_answer(info: stk.NameInfo) -> None:
        nonlocal answers
        with lock:
            if not a.quiet:
                _cli.print_info(info)
                sys.stdout.flush()
            answers += 1
            if a.count and answers == a.count:
                stop.set()

    with env:
        start = time.perf_counter()
        if a.subscribe:
            print(f"Subscribing to name {a.name}", flush=True)
            try:
                env.subscribe_name(a.name, on_answer)
            except stk.StkError as e:
                _cli.fail(PROG, e)
            while not stop.wait(0.5):
                pass
            with lock:
                print(f"Received {answers} answer(s) for name {a.name}")
            return 0

        print(f"Requesting info on name {a.name}", flush=True)
        try:
            q = env.lookup(a.name, expiration=a.expiration, on_answer=on_answer, on_done=lambda r: stop.set())
        except stk.StkError as e:
            _cli.fail(PROG, e)
        while not stop.wait(0.5):  # the end of the lookup, -c answers or Ctrl-C
            pass
        took = _cli.go_duration(round(time.perf_counter() - start, 6))
        with lock:
            r = q.result
            if a.count and answers >= a.count:
                print(f"Lookup of '{a.name}': stopped after {answers} answer(s) in {took}")
            elif r is not None:
                how = "complete" if r.complete else "expired"
                print(f"Lookup of '{a.name}' {how}: {r.answers} answer(s) in {took}", flush=True)
                if not r.complete:
                    try:
                        env.wait_name_server(0)
                    except stk.StkError:
                        print(f"{PROG}: not connected to a name server ({_cli.NAMES_HINT})", file=sys.stderr)
        q.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
