"""The Sequence: STK's unit of data, as Python values.

A sequence is an id (u64), an optional name, a type (u16) and an ordered
list of elements, each a ``(user_type, data)`` pair of a u64 and ``bytes``.
This module is pure Python: building and reading sequences needs no
library.
"""

from __future__ import annotations

import enum
from typing import Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union, overload

__all__ = [
    "SequenceType",
    "Element",
    "Sequence",
    "BytesLike",
    "UT_EXAMPLE_DATA",
    "MAX_U64",
    "MAX_NAME_BYTES",
]

#: Anything accepted as element data; it is copied into ``bytes``.
BytesLike = Union[bytes, bytearray, memoryview]

#: The largest u64 (ids and user types).
MAX_U64 = (1 << 64) - 1
#: Longest sequence name in bytes (UTF-8), excluding the terminating NUL: the
#: wire's u16 length field counts the NUL.
MAX_NAME_BYTES = 0xFFFF - 1
#: User type of the payload element of the publish and simple_client
#: examples (0x135).
UT_EXAMPLE_DATA = 0x135


class SequenceType(enum.IntEnum):
    """Sequence types STK defines (a u16 on the wire; other values are the
    application's). ``INVALID`` (0) is never sent: C receivers abort on it."""

    INVALID = 0
    DATA = 1
    KVPAIR = 2
    MGMT = 3
    REQUEST = 4
    QUERY = 5
    SUBSCRIBE = 6


def _type_value(t: int) -> Union[SequenceType, int]:
    try:
        return SequenceType(t)
    except ValueError:
        return t


class Element(NamedTuple):
    """One element of a sequence: a u64 user type and its bytes."""

    user_type: int
    data: bytes


def check_u64(what: str, v: int) -> int:
    """Return ``v`` as an ``int`` if it is an integer in [0, 2**64); raise
    ``TypeError`` / ``ValueError`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    if v < 0 or v > MAX_U64:
        raise ValueError(f"{what} {v} is out of range: want 0 <= {what} < 2**64")
    return int(v)


def check_data(data: BytesLike) -> bytes:
    """Return element data as ``bytes`` (copying a ``bytearray`` or
    ``memoryview``); raise ``TypeError`` for anything else (``str`` must be
    encoded first)."""
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"element data must be bytes, bytearray or memoryview, not {type(data).__name__}"
                    + (" (encode the str first, e.g. s.encode())" if isinstance(data, str) else ""))


def check_name(name: Optional[str]) -> str:
    """Return a sequence or service name checked as a C string: a ``str``
    with no NUL character, at most :data:`MAX_NAME_BYTES` bytes in UTF-8."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if "\x00" in name:
        raise ValueError("name must not contain NUL characters (it travels as a C string)")
    if len(name) > MAX_NAME_BYTES // 4:
        n = len(name.encode("utf-8", "surrogateescape"))
        if n > MAX_NAME_BYTES:
            raise ValueError(f"name is {n} bytes in UTF-8; at most {MAX_NAME_BYTES}")
    return name


class Sequence:
    """A sequence: ``id``, ``name``, ``type`` and ``elements``.

    Build one and add elements (``add`` returns the sequence, so calls
    chain)::

        s = Sequence(id=42, name="prices").add(0x135, b"hello").add(7, b"\\x00\\x01")

    Read one as a list of :class:`Element` ``(user_type, data)`` pairs::

        for user_type, data in s:
            ...
        s[0].data, len(s), s.size, s.find(0x135)

    ``id`` is a u64 (default 0), ``name`` a C string (default "": no name on
    the wire), ``type`` a u16 (default :attr:`SequenceType.DATA`; type 0
    cannot be sent). Element data are ``bytes``; a ``bytearray`` or
    ``memoryview`` is copied when added, so changing it later does not
    change the sequence. Sequences compare equal when all four fields are
    equal.
    """

    __slots__ = ("_id", "_name", "_bname", "_type", "elements", "_prep")

    elements: List[Element]

    def __init__(
        self,
        id: int = 0,
        name: Optional[str] = "",
        type: int = SequenceType.DATA,
        elements: Iterable[Tuple[int, BytesLike]] = (),
    ) -> None:
        self.id = id
        self.name = name  # type: ignore[assignment]
        self.type = type
        #: The elements, in order. Prefer :meth:`add`, which checks them; a
        #: send checks them too.
        self.elements = []
        # (publisher, element, prepared C call) of the one-call send, set by
        # Publisher.send and valid while elements == [element]; any change
        # of id, name or type clears it.
        self._prep = None
        for ut, data in elements:
            self.add(ut, data)

    @property
    def id(self) -> int:
        """The sequence id, a u64."""
        return self._id

    @id.setter
    def id(self, v: int) -> None:
        self._id = check_u64("id", v)
        self._prep = None

    @property
    def name(self) -> str:
        """The sequence name ("" for none)."""
        return self._name

    @name.setter
    def name(self, v: Optional[str]) -> None:
        self._name = check_name(v)
        # The name as the library takes it (None: no name), encoded once.
        self._bname = self._name.encode("utf-8", "surrogateescape") if self._name else None
        self._prep = None

    @property
    def type(self) -> Union[SequenceType, int]:
        """The sequence type, a :class:`SequenceType` or an application
        value in [0, 65535]."""
        return self._type

    @type.setter
    def type(self, v: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"type must be an int, not {type(v).__name__}")
        if not 0 <= v <= 0xFFFF:
            raise ValueError(f"type {v} is out of range: want 0 <= type <= 65535")
        self._type = _type_value(int(v))
        self._prep = None

    def add(self, user_type: int, data: BytesLike) -> "Sequence":
        """Append an element and return the sequence."""
        self.elements.append(Element(check_u64("user_type", user_type), check_data(data)))
        return self

    def find(self, user_type: int) -> Optional[bytes]:
        """Return the data of the first element of ``user_type``, or
        ``None``."""
        for e in self.elements:
            if e.user_type == user_type:
                return e.data
        return None

    @property
    def size(self) -> int:
        """The total number of data bytes in the elements."""
        return sum(len(e.data) for e in self.elements)

    def __len__(self) -> int:
        return len(self.elements)

    def __iter__(self) -> Iterator[Element]:
        return iter(self.elements)

    @overload
    def __getitem__(self, i: int) -> Element: ...

    @overload
    def __getitem__(self, i: slice) -> List[Element]: ...

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.elements[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return (self._id, self._name, int(self._type), [tuple(e) for e in self.elements]) == (
            other._id, other._name, int(other._type), [tuple(e) for e in other.elements])

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        t = self._type.name if isinstance(self._type, SequenceType) else str(self._type)
        return (f"Sequence(id={self._id:#x}, name={self._name!r}, type={t}, "
                f"{len(self.elements)} element(s), {self.size} bytes)")

    @classmethod
    def _trusted(cls, id: int, name: str, type: int, elements: List[Element]) -> "Sequence":
        """Build a sequence from values the library produced (no checks)."""
        s = cls.__new__(cls)
        s._id = id
        s._name = name
        s._bname = name.encode("utf-8", "surrogateescape") if name else None
        s._type = _type_value(type)
        s.elements = elements
        s._prep = None
        return s
