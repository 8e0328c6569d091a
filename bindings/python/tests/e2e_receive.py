#!/usr/bin/env python3
"""Helper of python_test.go: subscribes to a name, receives COUNT sequences
from the Go (or C, or Python) publish example and checks every byte.

Each sequence must be the publish example's: name "publish sequence", type
data, one element of user type 0x135 holding the LENGTH-byte payload, and
one id for all of them. Prints "Subscribing to 'NAME'" when subscribed, then
"verified N sequences, B bytes" and exits 0, or says what differed and
exits 1 (2 if nothing came for 20 s).

Usage: e2e_receive.py -R tcp:IP:PORT NAME COUNT LENGTH
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))

import stk  # noqa: E402
from publish import payload  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description="Receive and check the publish example's sequences.")
    p.add_argument("-R", "--name-server", required=True)
    p.add_argument("--queue", type=int, default=64, help="the subscriber's queue bound (small: exercises blocking)")
    p.add_argument("name")
    p.add_argument("count", type=int)
    p.add_argument("length", type=int)
    a = p.parse_args()
    want_els = [(stk.UT_EXAMPLE_DATA, payload(a.length))] if a.length else []
    with stk.Environment(name_server=a.name_server, monitor="") as env, \
            env.subscriber(a.name, max_queue=a.queue) as sub:
        print(f"Subscribing to '{a.name}'", flush=True)
        first_id = None
        total = 0
        for i in range(a.count):
            s = sub.receive(timeout=20)
            if s is None:
                print(f"nothing for 20 s after {i} sequences (dropped {sub.dropped})", flush=True)
                return 2
            if first_id is None:
                first_id = s.id
            if (s.id, s.name, s.type, [tuple(e) for e in s]) != (first_id, "publish sequence", 1, want_els):
                print(f"sequence {i} differs: {s!r} {[(ut, data[:16]) for ut, data in s]}", flush=True)
                return 1
            total += s.size
        extra = sub.receive(timeout=0.2)
        if extra is not None:
            print(f"one sequence too many: {extra!r}", flush=True)
            return 1
        print(f"verified {a.count} sequences, {total} bytes (queue bound {a.queue}, dropped {sub.dropped})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
