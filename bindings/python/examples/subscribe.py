#!/usr/bin/env python3
"""subscribe: receives the sequences published under a name (TCP).

The Python twin of examples/subscribe: it subscribes to the name with the
name server, connects to every publisher registered under it (now and
later), prints each sequence unless -q, and when it stops (Ctrl-C, or after
-c sequences) prints one summary line, as the Go one does: "Received: N
sequences, B bytes in T s: R sequences/s, M MB/s", from the first sequence to
the last.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import _cli
from _cli import stk

PROG = "subscribe.py"


def main() -> int:
    p = _cli.parser(PROG, "[flags] <name>", "Receives the sequences published under <name> (TCP).")
    p.add_argument("name", help="the name to subscribe to")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print each sequence")
    p.add_argument("-c", "--count", type=int, default=0, metavar="N",
                   help="stop after this many sequences (0: run until Ctrl-C)")
    p.add_argument("-G", "--group", default="", help="name group to look in")
    _cli.add_name_server(p)
    p.add_argument("--queue", type=int, default=1024, metavar="N",
                   help="sequences the receive queue holds; when it is full the connection waits (policy block)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (the library's debug log)")
    a = p.parse_args()
    if a.count < 0 or a.queue < 1:
        p.error("-c must be >= 0 and --queue >= 1")

    try:
        env = stk.Environment(name_server=a.name_server, monitor="", group=a.group or None,
                              log_level="debug" if a.verbose else None)
    except stk.StkError as e:
        _cli.fail(PROG, e)

    count = nbytes = 0
    first = last = 0.0
    with env:
        print(f"Subscribing to '{a.name}'", flush=True)
        try:
            sub = env.subscriber(a.name, max_queue=a.queue)
        except stk.StkError as e:
            _cli.fail(PROG, e)

        # Say where the subscriber receives from, as the Go subscribe does:
        # it connects to every tcp address registered under the name.
        seen = set()
        seen_lock = threading.Lock()

        def connecting(info: stk.NameInfo) -> None:
            for e in info.addresses:
                if e.protocol in ("", "tcp"):
                    with seen_lock:
                        if e in seen:
                            continue
                        seen.add(e)
                    print(f"Receiving '{info.name}' from tcp:{e.host}:{e.port}", flush=True)

        env.subscribe_name(a.name, connecting)

        def no_name_server() -> None:
            try:
                env.wait_name_server(3.0)
            except stk.StkTimeoutError:
                if not sub.closed:
                    print(f"{PROG}: no name server yet at {a.name_server} ({_cli.NAMES_HINT}); still trying",
                          file=sys.stderr, flush=True)
            except stk.StkError:
                pass

        threading.Thread(target=no_name_server, daemon=True).start()

        # Ctrl-C (or SIGTERM) closes the subscriber: the loop below then ends.
        def interrupt(*_: object) -> None:
            threading.Thread(target=sub.close).start()

        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)

        out = sys.stdout
        for seq in sub:
            count += 1
            nbytes += seq.size
            now = time.perf_counter()
            if count == 1:
                first = now
            last = now
            if not a.quiet:
                out.write(f"Received sequence {seq.id:#x} {_cli.go_quote(seq.name)} type "
                          f"{_cli.sequence_type(seq.type)}, {len(seq)} element(s), {seq.size} bytes\n")
            if count == a.count:
                break
        sub.close()
    # Every sequence is timed: the rate covers all of them.
    print("Received: " + _cli.rate(count, nbytes, first, last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
