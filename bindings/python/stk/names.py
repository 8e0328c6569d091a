"""Name-service values: what a name stands for.

:class:`NameInfo` is what :meth:`stk.Environment.register` registers and
what lookups and subscriptions answer. This module is pure Python.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple

from .sequence import BytesLike, Element, check_data, check_u64

__all__ = ["FTState", "Endpoint", "NameInfo", "PROTOCOLS", "MAX_ADDRESSES", "MAX_NAME_LEN", "MAX_GROUP_LEN",
           "RESERVED_META"]

#: Address protocols STK knows.
PROTOCOLS = ("tcp", "udp", "rawudp", "multicast")
#: Element user types of the name service's own fields (name, address,
#: group, linger, request id, protocol, FT state): not allowed as meta-data.
RESERVED_META = frozenset(range(1, 8))
#: Most addresses one registration may carry.
MAX_ADDRESSES = 5
#: Longest name in bytes (the C client's 96-byte buffer, less its NUL).
MAX_NAME_LEN = 95
#: Longest group name in bytes (48-byte buffer, less its NUL).
MAX_GROUP_LEN = 47


class FTState(enum.IntEnum):
    """A registration's fault-tolerance state.

    ``UNSET`` sends no state (what C programs call "backup"), ``STANDBY`` and
    ``ACTIVE`` send 0 and 1. The server stores it and returns it unchanged.
    """

    UNSET = 0
    STANDBY = 1
    ACTIVE = 2

    def __str__(self) -> str:
        return self.name.lower()


class Endpoint(NamedTuple):
    """One registered address: protocol, IPv4 address and port.

    ``str(e)`` is STK's address string, ``"tcp:127.0.0.1:29312"``;
    :meth:`parse` reads one.
    """

    protocol: str
    host: str
    port: int

    def __str__(self) -> str:
        if not self.protocol:
            return f"{self.host}:{self.port}"
        return f"{self.protocol}:{self.host}:{self.port}"

    @classmethod
    def parse(cls, s: str, default_protocol: str = "tcp", default_host: str = "127.0.0.1",
              default_port: Optional[int] = None) -> "Endpoint":
        """Parse ``"[tcp|udp|rawudp|multicast:]ip[:port]"``.

        Missing parts take the defaults; a missing port without
        ``default_port`` is an error. Raises ``ValueError`` with the reason.
        """
        if not isinstance(s, str):
            raise TypeError(f"address must be a str, not {type(s).__name__}")
        rest = s.strip()
        proto = default_protocol
        head, sep, tail = rest.partition(":")
        if sep and head.lower() in PROTOCOLS:
            proto, rest = head.lower(), tail
        elif sep and head.lower() == "lookup":
            raise ValueError(f"{s!r}: a lookup: address names a service, it is not an address")
        elif sep and not _looks_like_ip(head):
            raise ValueError(f"{s!r}: unknown protocol {head!r}; want one of {', '.join(PROTOCOLS)}")
        host, sep, port_s = rest.partition(":")
        host = host or default_host
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{s!r}: {host!r} is not an IPv4 address") from None
        if sep:
            try:
                port = int(port_s, 10)
            except ValueError:
                raise ValueError(f"{s!r}: port {port_s!r} is not a number") from None
        elif default_port is not None:
            port = default_port
        else:
            raise ValueError(f"{s!r}: no port")
        if not 0 <= port <= 65535:
            raise ValueError(f"{s!r}: port {port} out of range")
        return cls(proto, str(ip), port)


def _looks_like_ip(s: str) -> bool:
    return bool(s) and all(c.isdigit() or c == "." for c in s)


@dataclass
class NameInfo:
    """What a name stands for.

    Attributes:
        name: the name (case-sensitive, at most 95 bytes).
        group: a separate name space (at most 47 bytes); "" is the
            default one.
        addresses: where the service can be reached (at most 5).
        linger: seconds the server keeps the registration after the
            registrant's connection closes (whole seconds on the wire).
        ft: the fault-tolerance state.
        meta: every other element of the registration, ``(user_type,
            bytes)`` pairs, returned unchanged by the server.
    """

    name: str
    group: str = ""
    addresses: List[Endpoint] = field(default_factory=list)
    linger: int = 5
    ft: FTState = FTState.UNSET
    meta: List[Element] = field(default_factory=list)

    def meta_string(self, user_type: int) -> Optional[str]:
        """Return the C-string meta-data element of ``user_type`` (up to its
        first NUL, decoded as UTF-8 with replacement), or ``None``."""
        for ut, data in self.meta:
            if ut == user_type:
                return data.split(b"\x00", 1)[0].decode("utf-8", "replace")
        return None

    def add_meta(self, user_type: int, data: BytesLike) -> "NameInfo":
        """Append a meta-data element and return the info."""
        self.meta.append(Element(check_u64("user_type", user_type), check_data(data)))
        return self

    def check(self) -> None:
        """Raise ``ValueError``/``TypeError`` if the info cannot be
        registered (the library checks again)."""
        _check_cstr("name", self.name, MAX_NAME_LEN, empty_ok=False)
        _check_cstr("group", self.group, MAX_GROUP_LEN, empty_ok=True)
        if len(self.addresses) > MAX_ADDRESSES:
            raise ValueError(f"{len(self.addresses)} addresses; at most {MAX_ADDRESSES}")
        for a in self.addresses:
            if not isinstance(a, Endpoint):
                raise TypeError(f"addresses must be Endpoint values (Endpoint.parse(...)), not {type(a).__name__}")
            if a.protocol and a.protocol not in PROTOCOLS:
                raise ValueError(f"address {a}: unknown protocol {a.protocol!r}")
        if isinstance(self.linger, bool) or not isinstance(self.linger, int) or not 0 <= self.linger <= 0x7FFFFFFF:
            raise ValueError(f"linger {self.linger!r}: want whole seconds, 0 <= linger < 2**31")
        self.ft = FTState(self.ft)
        for m in self.meta:
            check_u64("meta user_type", m[0])
            check_data(m[1])
            if m[0] in RESERVED_META:
                raise ValueError(f"meta-data user type {m[0]} is a name-service field (1..7 are reserved); "
                                 "use the NameInfo fields")
        n = 5 + 2 * len(self.addresses) + len(self.meta)
        if n >= 255:
            raise ValueError(f"{len(self.meta)} meta-data elements are too many: a name request holds at most "
                             f"254 elements ({n} here)")

    def __str__(self) -> str:
        parts = [self.name]
        if self.group:
            parts.append(f"group={self.group}")
        parts += [str(a) for a in self.addresses]
        parts.append(f"linger={self.linger}s ft={self.ft} meta={len(self.meta)}")
        return " ".join(parts)


def _check_cstr(what: str, v: str, max_len: int, empty_ok: bool) -> None:
    if not isinstance(v, str):
        raise TypeError(f"{what} must be a str, not {type(v).__name__}")
    if not v and not empty_ok:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in v:
        raise ValueError(f"{what} must not contain NUL characters")
    n = len(v.encode())
    if n > max_len:
        raise ValueError(f"{what} {v!r} is {n} bytes; at most {max_len}")


def split_address(e: Endpoint) -> Tuple[str, str, int]:
    """Return ``(protocol, host, port)`` of an endpoint (helper for the
    library glue)."""
    return e.protocol, e.host, e.port
