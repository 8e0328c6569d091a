#!/usr/bin/env python3
"""monitored_service: a service that reports to the monitor (stkd).

The Python twin of examples/monitored_service: it announces itself, goes to
"running", advances its checkpoint once per iteration, and on the last
iteration (or Ctrl-C) goes to "stopping" and says goodbye. Watch it in
stkd's status UI, http://127.0.0.1:8080/, or GET /api/v1/services.
"""

from __future__ import annotations

import signal
import sys
import threading

import _cli
from _cli import stk

PROG = "monitored_service.py"


def main() -> int:
    p = _cli.parser(PROG, "[flags]", "Runs a service that reports its state and checkpoint to the monitor.")
    p.add_argument("-m", "--monitor", default="tcp:127.0.0.1:20001", metavar="ADDR",
                   help="monitor: lookup:name or [tcp|udp|multicast:]ip[:port]")
    p.add_argument("-t", "--iterations", type=int, default=1000000, metavar="N",
                   help="iterations before exiting; the checkpoint is the iteration number")
    p.add_argument("-S", "--service-name", default="basic monitored service", metavar="NAME", help="service name")
    p.add_argument("-i", "--interval", type=_cli.duration, default=1.0, metavar="DURATION",
                   help="time between iterations, as 1s or 250ms")
    p.add_argument("-b", "--beat", type=_cli.duration, default=0.5, metavar="DURATION", help="smartbeat period")
    p.add_argument("-a", "--activity-timeout", type=_cli.duration, default=1.2, metavar="DURATION",
                   help="how long the monitor waits for a smartbeat before declaring the service failed; "
                        "at least --beat")
    _cli.add_name_server(p, "name server for -m lookup:name")
    p.add_argument("-v", "--verbose", action="store_true", help="print each checkpoint and the library's debug log")
    a = p.parse_args()
    if a.iterations < 0 or a.interval <= 0 or a.beat <= 0 or a.activity_timeout < a.beat:
        p.error("-t must be >= 0, -i and --beat > 0, and --activity-timeout >= --beat")

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        env = stk.Environment(name_server=a.name_server, monitor=a.monitor, smartbeat_period=a.beat,
                              log_level="debug" if a.verbose else None)
        svc = env.service(a.service_name, activity_timeout=a.activity_timeout)
    except (stk.InvalidArgumentError, stk.LibraryNotFoundError) as e:
        _cli.fail(PROG, e)
    except stk.StkError as e:
        _cli.fail(PROG, f"{e} (is stkd running? -m says where the monitor is)")
    with env, svc:
        print(f"Service '{svc.name}' id {svc.id:#x} reporting to {a.monitor}", flush=True)
        svc.state = stk.State.RUNNING
        for i in range(1, a.iterations + 1):
            if stop.wait(a.interval):
                break
            svc.checkpoint = i
            if a.verbose:
                print(f"checkpoint {i}", flush=True)
        svc.state = stk.State.STOPPING
    print(f"Service '{svc.name}' stopped at checkpoint {svc.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
