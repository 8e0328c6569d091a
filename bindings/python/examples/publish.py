#!/usr/bin/env python3
"""publish: registers a name and publishes sequences under it (TCP).

The Python twin of examples/publish: it listens on the -i address,
registers it with the name server, waits for -w subscribers, sends -s
sequences of one -l byte element and prints how many it sent and how fast.
"""

from __future__ import annotations

import itertools
import random
import signal
import struct
import sys
import time

import _cli
from _cli import stk

PROG = "publish.py"


def payload(n: int) -> bytes:
    """The C publish example's element: repeated 0x0123456789abcdef (little
    endian), starting with "default data" and ending with de ad."""
    p = bytearray((struct.pack("<Q", 0x0123456789ABCDEF) * (n // 8 + 1))[:n])
    text = max(0, min(12, n - 2))
    p[:text] = b"default data"[:text]
    if n >= 2:
        p[n - 2:] = b"\xde\xad"
    return bytes(p)


def main() -> int:
    p = _cli.parser(PROG, "[flags] <name>", "Registers <name> and publishes sequences to its subscribers (TCP).")
    p.add_argument("name", help="the name to publish under")
    p.add_argument("-i", "--interface", default="tcp:127.0.0.1:29312", metavar="ADDR",
                   help="where to listen and what to register: [tcp:]ip[:port] (port 0 picks a free one)")
    p.add_argument("-B", "--bind", default="", metavar="IP",
                   help="IP to listen on (default: the -i IP; 0.0.0.0 serves every interface, and -i then says "
                        "which IP to register)")
    p.add_argument("-s", "--sequences", type=int, default=100, metavar="N", help="number of sequences to send")
    p.add_argument("-a", "--batch", type=int, default=10, metavar="N", help="sequences per batch; -p pauses between batches")
    p.add_argument("-l", "--length", type=int, default=10, metavar="N",
                   help="element length in bytes (0 sends empty sequences)")
    p.add_argument("-p", "--pause", type=int, default=0, metavar="MS", help="milliseconds to pause between batches")
    p.add_argument("-w", "--wait", type=int, default=1, metavar="N", help="subscribers to wait for before sending")
    p.add_argument("-L", "--linger", type=int, default=5, metavar="S", help="seconds the name outlives this program")
    _cli.add_name_server(p)
    p.add_argument("--send-many", action="store_true",
                   help="send each -a batch with Publisher.send_many: one library call per 4096 sequences (or 1 MiB) "
                        "instead of one per sequence; same sequences on the wire (ignored with -l 0: those have no "
                        "element)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens (the library's debug log)")
    a = p.parse_args()
    if a.sequences < 0 or a.batch < 1 or a.length < 0 or a.pause < 0 or a.wait < 0 or a.linger < 0:
        p.error("-s, -l, -p, -w and -L must be >= 0 and -a >= 1")
    try:
        ep = stk.Endpoint.parse(a.interface, default_port=29312)
    except ValueError as e:
        _cli.fail(PROG, f"-i: {e}")
    if ep.protocol != "tcp":
        _cli.fail(PROG, f"-i {a.interface}: this binding publishes over tcp only")

    # Ctrl-C ends the sending loop (or the wait for subscribers), not the program.
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    try:
        env = stk.Environment(name_server=a.name_server, monitor="", log_level="debug" if a.verbose else None)
    except stk.StkError as e:
        _cli.fail(PROG, e)
    with env:
        try:
            if a.bind:
                # Listen on -B, register the -i IP with the bound port.
                pub = env.publisher(None, f"tcp:{a.bind}:{ep.port}")
                bound = pub.endpoint
                env.register(a.name, [stk.Endpoint("tcp", ep.host, bound.port)], linger=a.linger,
                             ft=stk.FTState.ACTIVE)
                where = f"tcp:{ep.host}:{bound.port}"
            else:
                pub = env.publisher(a.name, str(ep), linger=a.linger)
                where = pub.address
        except stk.StkTimeoutError as e:
            _cli.fail(PROG, _cli.with_hint(e))
        except stk.StkError as e:
            _cli.fail(PROG, e)
        print(f"Publishing to '{a.name}' on {where}", flush=True)

        if a.wait > 0:
            print(f"Waiting for {a.wait} subscriber(s)", flush=True)
            while pub.subscribers < a.wait:
                if stop:
                    pub.close()
                    print("publish: interrupted before any subscriber came", flush=True)
                    return 1
                time.sleep(0.005)

        seq = stk.Sequence(id=random.getrandbits(31), name="publish sequence", type=stk.SequenceType.DATA)
        if a.length > 0:
            seq.add(stk.UT_EXAMPLE_DATA, payload(a.length))
        print(f"Sending {a.sequences} sequences", flush=True)
        send = pub.send
        many = a.send_many and a.length > 0
        start = time.perf_counter()
        sent = slow = 0
        while sent < a.sequences and not stop:
            k = min(a.batch, a.sequences - sent)
            try:
                if many:
                    sent += pub.send_many(itertools.repeat(seq[0].data, k), seq[0].user_type, seq.id, seq.name,
                                          seq.type)
                else:
                    for _ in range(k):
                        send(seq)
                        sent += 1
            except stk.QueueFullError:
                # A subscriber too slow for 1 s was disconnected; the others got it
                # (with --send-many: the whole batch).
                sent += k if many else 1
                slow += 1
                continue
            except stk.StkError as e:
                _cli.fail(PROG, f"send: {e}")
            if a.pause > 0:
                time.sleep(a.pause / 1000)
        queued = time.perf_counter()
        st = pub.stats()
        pub.close()  # delivers what is queued
        end = time.perf_counter()
    print("Sent " + _cli.rate(sent, sent * a.length, start, end))
    print(f"(queueing took {queued - start:.6f} s, delivering the rest {end - queued:.6f} s; "
          f"{st.connections} subscriber(s) at the end, {st.dropped} dropped)")
    if slow:
        print(f"({slow} send(s) disconnected a subscriber too slow to keep up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
