"""Read a CTranslate2 `model.bin` into numpy arrays (the inverse of CTranslate2's spec writer).

Layout, little-endian: u32 binary version, spec name, u32 spec revision, u32 variable count,
then per variable: name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw bytes;
then u32 alias count and (alias, target) name pairs. A string is u16 length (with its
trailing NUL) followed by the bytes. Rank-0 variables hold config values."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

# CTranslate2's DataType enum -> numpy dtype. bf16 is read as raw uint16 and widened below.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
BFLOAT16 = 5
SUPPORTED_VERSIONS = (5, 6)


def _read(stream: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("truncated CTranslate2 model.bin")
    return struct.unpack(fmt, data)


def _read_string(stream: BinaryIO) -> str:
    (length,) = _read(stream, "<H")
    return stream.read(length)[:-1].decode("utf-8")


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Spec name and every variable (aliases resolved) of a CTranslate2 model file."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as stream:
        (version,) = _read(stream, "<I")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
        spec = _read_string(stream)
        _read(stream, "<I")  # spec revision
        (count,) = _read(stream, "<I")
        for _ in range(count):
            name = _read_string(stream)
            (rank,) = _read(stream, "<B")
            shape = _read(stream, f"<{rank}I") if rank else ()
            dtype_id, num_bytes = _read(stream, "<BI")
            array = np.frombuffer(stream.read(num_bytes), dtype=DTYPES[dtype_id]).reshape(shape)
            variables[name] = _bfloat16_to_float32(array) if dtype_id == BFLOAT16 else array
        (num_aliases,) = _read(stream, "<I")
        for _ in range(num_aliases):
            alias = _read_string(stream)
            variables[alias] = variables[_read_string(stream)]
    return spec, variables
