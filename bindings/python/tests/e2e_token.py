#!/usr/bin/env python3
"""Helper of python_test.go (TestPythonToken): against a name server whose
default-deny policy lets only the token of TOKEN_FILE register PREFIX.*,
registers PREFIX.file with ``token_file=``, PREFIX.env with ``STK_TOKEN``
(set after the library is loaded: it is read when the environment is
made), and checks that PREFIX.none, without a token, is refused and not
found. A token file that is missing or not NAME:SECRET is refused when the
environment is made. Prints "ok <check>" per check and "PASS", or raises.

Usage: e2e_token.py -R tcp:IP:PORT --token-file TOKEN_FILE PREFIX
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stk  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description="Register with and without a name-service token.")
    p.add_argument("-R", "--name-server", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("prefix")
    a = p.parse_args()
    os.environ.pop("STK_TOKEN", None)
    addr = ["tcp:127.0.0.1:9"]

    with stk.Environment(name_server=a.name_server, monitor="", token_file=Path(a.token_file)) as env:
        env.register(a.prefix + ".file", addr, timeout=5)
    print("ok token_file", flush=True)

    os.environ["STK_TOKEN"] = Path(a.token_file).read_text().strip()
    with stk.Environment(name_server=a.name_server, monitor="") as env:
        env.register(a.prefix + ".env", addr, timeout=5)
    del os.environ["STK_TOKEN"]
    print("ok STK_TOKEN", flush=True)

    with stk.Environment(name_server=a.name_server, monitor="") as env:
        try:
            env.register(a.prefix + ".none", addr, timeout=1)
        except stk.StkTimeoutError:
            pass
        else:
            raise AssertionError(f"{a.prefix}.none was registered without a token")
        for name, want in ((".file", True), (".env", True), (".none", False)):
            got = bool(env.lookup_all(a.prefix + name))
            if got != want:
                raise AssertionError(f"{a.prefix}{name} registered: {got}, want {want}")
    print("ok refused without a token", flush=True)

    with tempfile.TemporaryDirectory() as d:
        bad = Path(d, "bad.token")
        bad.write_text("no colon here\n")
        for path, want in ((bad, "NAME:SECRET"), (Path(d, "missing"), "missing")):
            try:
                stk.Environment(name_server=a.name_server, monitor="", token_file=path).close()
            except stk.InvalidArgumentError as e:
                if want not in str(e) or "token_file" not in str(e):
                    raise AssertionError(f"token_file {path}: {e!r} does not say what is wrong") from e
            else:
                raise AssertionError(f"token_file {path} was accepted")
    print("ok bad token files refused", flush=True)
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
