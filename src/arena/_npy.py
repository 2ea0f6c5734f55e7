"""The ``.npy`` header around a file-backed :class:`~arena.Growable`'s items.

A ``.npy`` file (``numpy.lib.format``) is the magic ``b"\\x93NUMPY"``, a major and minor
version, the little-endian length of the header text (2 bytes in version 1.0, 4 in 2.0 and
3.0), then the header: a Python dict literal, padded with spaces and ended by a newline so
that the data starts on a 64-byte boundary. The Growable writes the item count as a field
of :data:`COUNT_WIDTH` characters (left-aligned, padded with spaces: ``(12    ,)`` is a
valid tuple), so that a flush rewrites those bytes and nothing else: the data never moves.

Pure Python: the header is built and checked once, when the file is opened.
"""
from __future__ import annotations

import ast
import struct
from typing import NamedTuple

import numpy as np

MAGIC = b"\x93NUMPY"
COUNT_WIDTH = 20  # digits of the largest count a size_t holds
ALIGN = 64        # where NumPy starts the data (numpy.lib.format.ARRAY_ALIGN)
PREAMBLE = 12     # enough bytes to know the header length, whatever the version
MAX_HEADER = 1 << 20  # a sanity bound before literal_eval reads a stranger's file


class Layout(NamedTuple):
    """The header as ``head + count field + tail``; the data starts at ``data_offset``."""

    head: bytes
    tail: bytes
    data_offset: int

    @property
    def count_at(self) -> int:
        """Offset of the count field in the file."""
        return len(self.head)

    def header(self, count: int) -> bytes:
        return self.head + count_field(count) + self.tail


def count_field(count: int) -> bytes:
    return f"{count:<{COUNT_WIDTH}d}".encode("ascii")


def _dict_parts(dtype: np.dtype, item_shape: tuple) -> tuple[str, str]:
    # Keys in NumPy's own (sorted) order; the count goes between the two parts.
    descr = np.lib.format.dtype_to_descr(dtype)
    head = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ("
    tail = repr((0,) + item_shape)[2:] + ", }"
    return head, tail


def _version_for(text: str) -> int:
    try:
        text.encode("latin1")
    except UnicodeEncodeError:  # non-Latin-1 field names
        return 3
    return 1


def new_layout(dtype: np.dtype, item_shape: tuple) -> Layout:
    """The header of a new file holding items of ``dtype`` and ``item_shape``."""
    head, tail = _dict_parts(dtype, item_shape)
    major = _version_for(head)
    encoding = "utf8" if major == 3 else "latin1"
    head_b, tail_b = head.encode(encoding), tail.encode(encoding)
    text_min = len(head_b) + COUNT_WIDTH + len(tail_b) + 1  # + the newline
    pre = 10 if major == 1 and text_min + 10 <= 0xFFFF else 12
    if pre == 12 and major == 1:
        major = 2
    total = -(-(pre + text_min) // ALIGN) * ALIGN
    text_len = total - pre
    length = struct.pack("<H" if pre == 10 else "<I", text_len)
    padding = b" " * (text_len - text_min) + b"\n"
    return Layout(MAGIC + bytes([major, 0]) + length + head_b, tail_b + padding, total)


def header_length(preamble: bytes, name: str) -> int:
    """Bytes of the whole header (magic to newline) from the file's first bytes."""
    if len(preamble) < 10 or preamble[:6] != MAGIC:
        raise ValueError(f"{name} is not a .npy file (it does not start with NumPy's magic "
                         "bytes); a Growable on a file needs a new, empty or .npy file")
    major = preamble[6]
    if major == 1:
        return 10 + struct.unpack("<H", preamble[8:10])[0]
    if major in (2, 3) and len(preamble) >= 12:
        return 12 + struct.unpack("<I", preamble[8:12])[0]
    raise ValueError(f"{name}: .npy format version {major}.{preamble[7]} is not supported")


class Existing(NamedTuple):
    """What a file's header says."""

    dtype: np.dtype
    shape: tuple
    fortran_order: bool
    major: int
    text_len: int


def parse(header: bytes, name: str) -> Existing:
    """The dtype, shape and order a ``.npy`` header declares; ValueError when unreadable."""
    major = header[6]
    pre = 10 if major == 1 else 12
    try:
        text = header[pre:].decode("utf8" if major == 3 else "latin1")
        d = ast.literal_eval(text)
    except (SyntaxError, ValueError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ValueError(f"{name}: the .npy header cannot be read") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"{name}: the .npy header does not hold descr, fortran_order and "
                         "shape")
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise ValueError(f"{name}: the .npy header's shape {shape!r} is not a tuple of sizes")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: the .npy header's descr cannot be read ({exc})") from None
    return Existing(dtype, shape, bool(d["fortran_order"]), major, len(header) - pre)


def existing_layout(header: bytes, dtype: np.dtype, item_shape: tuple,
                    name: str) -> tuple[Layout, int]:
    """The layout to rewrite ``header`` with, in place, and the file's item count.

    ValueError when the file holds another dtype or item shape (naming both), a 0-d or a
    Fortran-ordered array, or a header too short for a count field of its own.
    """
    found = parse(header, name)
    if not found.shape:
        raise ValueError(f"{name} holds a 0-d array: there is no first axis to append along")
    file_item_shape = found.shape[1:]
    if found.dtype != dtype or file_item_shape != item_shape:
        raise ValueError(f"{name} holds items of dtype {found.dtype} and item shape "
                         f"{file_item_shape}, not the Growable's dtype {dtype} and item "
                         f"shape {item_shape}")
    if found.fortran_order and sum(1 for x in found.shape if x != 1) > 1:
        raise ValueError(f"{name} holds a Fortran-ordered array: its items are not "
                         "contiguous, so it cannot grow along the first axis")
    head, tail = _dict_parts(dtype, item_shape)
    encoding = "utf8" if found.major == 3 else "latin1"
    head_b, tail_b = head.encode(encoding), tail.encode(encoding)
    room = found.text_len - len(head_b) - COUNT_WIDTH - len(tail_b) - 1
    if room < 0:
        raise ValueError(f"{name}: its .npy header leaves no room to rewrite the count in "
                         f"place ({found.text_len} bytes; NumPy's np.save pads for this)")
    pre = len(header) - found.text_len
    layout = Layout(header[:pre] + head_b, tail_b + b" " * room + b"\n", len(header))
    return layout, found.shape[0]
