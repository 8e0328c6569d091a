#!/usr/bin/env python3
"""Helper of tls_test.go (TestPythonTLS): against a name server inside
mutual TLS (stkd --names-tls --tls-client-ca), registers PREFIX.args with
``tls_ca_file=``, ``tls_cert_file=``, ``tls_key_file=`` and PREFIX.env with
``STK_TLS_CA``, ``STK_TLS_CERT``, ``STK_TLS_KEY`` (set after the library is
loaded: they are read when the environment is made), looks both up over
TLS, and checks that another CA's certificate is refused with an error
naming the TLS handshake, and that a CA file that does not exist is refused
when the environment is made. Prints "ok <check>" per check and "PASS", or
raises.

Usage: e2e_tls.py -R tls:IP:PORT --ca CA --cert CERT --key KEY
                  --bad-cert CERT --bad-key KEY PREFIX
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import stk  # noqa: E402

TLS_VARS = ("STK_TLS_CA", "STK_TLS_CERT", "STK_TLS_KEY")


def main() -> int:
    p = argparse.ArgumentParser(description="Register over mutual TLS, and be refused with a wrong certificate.")
    p.add_argument("-R", "--name-server", required=True)
    for f in ("--ca", "--cert", "--key", "--bad-cert", "--bad-key"):
        p.add_argument(f, required=True)
    p.add_argument("prefix")
    a = p.parse_args()
    for v in TLS_VARS:
        os.environ.pop(v, None)
    addr = ["tcp:127.0.0.1:9"]

    with stk.Environment(name_server=a.name_server, monitor="", tls_ca_file=Path(a.ca),
                         tls_cert_file=a.cert, tls_key_file=a.key) as env:
        env.register(a.prefix + ".args", addr, timeout=5)
        if len(env.lookup_all(a.prefix + ".args")) != 1:
            raise AssertionError(f"{a.prefix}.args not found over TLS")
    print("ok tls_ca_file, tls_cert_file, tls_key_file", flush=True)

    os.environ.update(dict(zip(TLS_VARS, (a.ca, a.cert, a.key))))
    with stk.Environment(name_server=a.name_server, monitor="") as env:
        env.register(a.prefix + ".env", addr, timeout=5)
        if len(env.lookup_all(a.prefix + ".env")) != 1:
            raise AssertionError(f"{a.prefix}.env not found over TLS")
    print("ok STK_TLS_CA, STK_TLS_CERT, STK_TLS_KEY", flush=True)

    # The arguments win over the environment, which still holds the good files.
    with stk.Environment(name_server=a.name_server, monitor="", tls_cert_file=a.bad_cert,
                         tls_key_file=a.bad_key) as env:
        try:
            env.register(a.prefix + ".bad", addr, timeout=1.5)
        except stk.StkTimeoutError as e:
            if "TLS handshake" not in str(e) or "tls_cert_file" not in str(e):
                raise AssertionError(f"another CA's certificate: {e!r} does not say the TLS handshake failed") from e
            print(f"refused: {e}", flush=True)
        else:
            raise AssertionError(f"{a.prefix}.bad was registered with another CA's certificate")
    for v in TLS_VARS:
        del os.environ[v]
    print("ok another CA's certificate refused", flush=True)

    with tempfile.TemporaryDirectory() as d:
        try:
            stk.Environment(name_server=a.name_server, monitor="", tls_ca_file=Path(d, "missing.pem")).close()
        except stk.InvalidArgumentError as e:
            if "missing.pem" not in str(e) or "tls_ca_file" not in str(e):
                raise AssertionError(f"a missing CA file: {e!r} does not say which") from e
        else:
            raise AssertionError("a missing tls_ca_file was accepted")
        try:
            stk.Environment(name_server=a.name_server, monitor="", tls_cert_file=a.cert).close()
        except stk.InvalidArgumentError as e:
            if "key" not in str(e):
                raise AssertionError(f"a certificate without its key: {e!r}") from e
        else:
            raise AssertionError("tls_cert_file without tls_key_file was accepted")
    print("ok bad TLS files refused", flush=True)
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
