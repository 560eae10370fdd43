"""GGUF reader: header, metadata and tensor infos parsed eagerly; tensor data as zero-copy mmap views.

Every field is validated against the bytes that remain in the file *before* anything is allocated
for it, so a corrupt or hostile header cannot make the reader allocate more than the file could
justify; every problem is a ``GGUFError`` naming the file, the byte offset and the field.
Split models (``name-00001-of-00003.gguf``) open as one model from their first file.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
import struct
from typing import Any

import numpy as np

from llmcore.errors import GGUFError

from .dequant import SUPPORTED_TYPES, dequantize
from .split import KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT, split_path, split_prefix
from .types import (
    DEFAULT_ALIGNMENT,
    GGML_QUANT_SIZES,
    GGUF_MAGIC,
    MAX_DIMS,
    MAX_TENSOR_NAME_BYTES,
    SCALAR_DTYPES,
    SUPPORTED_VERSIONS,
    EncodedStrings,
    GGMLType,
    GGUFValueType,
    TensorInfo,
    numpy_dtype,
    row_bytes,
)

__all__ = ["GGUFReader"]

KEY_ALIGNMENT = "general.alignment"
MAX_ARRAY_NESTING = 8  # far beyond any real file; bounds the parser's recursion
_MAX_ELEMENT_SPAN = 1 << 60  # product of a tensor's dims must stay representable in bytes by numpy

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRUCT_CODES = {
    "u1": "B",
    "i1": "b",
    "u2": "H",
    "i2": "h",
    "u4": "I",
    "i4": "i",
    "u8": "Q",
    "i8": "q",
    "f4": "f",
    "f8": "d",
}
_SCALARS: dict[GGUFValueType, struct.Struct] = {
    vtype: struct.Struct("<" + _STRUCT_CODES[f"{dtype.kind}{dtype.itemsize}"]) for vtype, dtype in SCALAR_DTYPES.items()
}
# The fewest bytes an array element of each type can occupy (string: its length; array: type + count).
_MIN_ELEMENT_BYTES = {vtype: dtype.itemsize for vtype, dtype in SCALAR_DTYPES.items()}
_MIN_ELEMENT_BYTES[GGUFValueType.STRING] = 8
_MIN_ELEMENT_BYTES[GGUFValueType.ARRAY] = 12
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_VALUE_TYPES = {int(t): t for t in GGUFValueType}
_TENSOR_TYPES = {int(t): t for t in GGMLType if t in GGML_QUANT_SIZES}


class _Parser:
    """A bounds-checked little-endian cursor over one file's bytes."""

    def __init__(self, path: str, buf: mmap.mmap | bytes, decode_strings: bool = True) -> None:
        self.path = path
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.decode_strings = decode_strings  # string arrays as list[str], else as EncodedStrings

    def error(self, offset: int, field: str, problem: str) -> GGUFError:
        return GGUFError(self.path, offset, field, problem)

    def need(self, n_bytes: int, field: str) -> None:
        """Fail unless ``n_bytes`` remain after the cursor (the cheap check done before any allocation)."""
        left = self.size - self.pos
        if n_bytes > left:
            raise self.error(self.pos, field, f"needs {n_bytes} bytes but only {left} remain in the file")

    def scalar(self, fmt: struct.Struct, field: str) -> Any:
        self.need(fmt.size, field)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def u32(self, field: str) -> int:
        return self.scalar(_U32, field)

    def u64(self, field: str) -> int:
        return self.scalar(_U64, field)

    def strings(self, count: int, field: str) -> list[str]:
        """Read ``count`` length-prefixed UTF-8 strings (invalid bytes become U+FFFD)."""
        self.need(8 * count, field)
        buf, size, pos = self.buf, self.size, self.pos
        unpack = _U64.unpack_from
        out: list[str] = []
        append = out.append
        # Sequential by nature (each length says where the next string starts), so a tight loop.
        for _ in range(count):
            if size - pos < 8:
                break
            (length,) = unpack(buf, pos)
            if length > size - pos - 8:
                break
            append(str(buf[pos + 8 : pos + 8 + length], "utf-8", "replace"))
            pos += 8 + length
        self.pos = pos
        if len(out) < count:
            raise self._overrun(count, len(out), field)
        return out

    def encoded_strings(self, count: int, field: str) -> EncodedStrings:
        """Read ``count`` length-prefixed strings as the file stores them (bounds-checked, not decoded)."""
        self.need(8 * count, field)
        buf, size, start = self.buf, self.size, self.pos
        unpack = _U64.unpack_from
        pos = start
        for done in range(count):  # each length says where the next string starts
            if size - pos < 8:
                break
            (length,) = unpack(buf, pos)
            if length > size - pos - 8:
                break
            pos += 8 + length
        else:
            self.pos = pos
            return EncodedStrings(count, bytes(buf[start:pos]))
        self.pos = pos
        raise self._overrun(count, done, field)

    def _overrun(self, count: int, done: int, field: str) -> GGUFError:
        """The error for string ``done`` of ``count``, at the cursor, running past the end of the file."""
        where = field if count == 1 else f"{field}[{done}]"
        self.need(8, where)
        length = _U64.unpack_from(self.buf, self.pos)[0]
        return self.error(self.pos, where, f"string length {length} exceeds the {self.size - self.pos - 8} bytes "
                          "left in the file")

    def string(self, field: str) -> str:
        return self.strings(1, field)[0]

    def value_type(self, field: str) -> GGUFValueType:
        at = self.pos
        code = self.u32(field)
        if code not in _VALUE_TYPES:
            raise self.error(at, field, f"unknown value type {code}")
        return _VALUE_TYPES[code]

    def value(self, vtype: GGUFValueType, field: str) -> tuple[Any, GGUFValueType]:
        """Read one metadata value; returns it with its type (for arrays: the element type)."""
        if vtype == GGUFValueType.STRING:
            return self.string(field), vtype
        if vtype == GGUFValueType.BOOL:
            return self.scalar(_SCALARS[vtype], field) != 0, vtype
        if vtype == GGUFValueType.ARRAY:
            return self.array(field, depth=0)
        return self.scalar(_SCALARS[vtype], field), vtype

    def array(self, field: str, depth: int) -> tuple[Any, GGUFValueType]:
        """Read an array's element type, count and elements; returns the elements and their type."""
        if depth >= MAX_ARRAY_NESTING:
            raise self.error(self.pos, field, f"arrays nested deeper than {MAX_ARRAY_NESTING} levels")
        element_type = self.value_type(f"{field} element type")
        count_at = self.pos
        count = self.u64(f"{field} element count")
        min_bytes = count * _MIN_ELEMENT_BYTES[element_type]
        if min_bytes > self.size - self.pos:
            raise self.error(
                count_at,
                f"{field} element count",
                f"{count} elements need at least {min_bytes} bytes but only {self.size - self.pos} remain in the file",
            )
        if element_type == GGUFValueType.STRING:
            strings = self.strings(count, field) if self.decode_strings else self.encoded_strings(count, field)
            return strings, element_type
        if element_type == GGUFValueType.ARRAY:
            return [self.array(f"{field}[{i}]", depth + 1)[0] for i in range(count)], element_type
        # Metadata arrays are small next to the weights; a copy lets close() unmap the file.
        values = np.frombuffer(self.buf, SCALAR_DTYPES[element_type], count, self.pos).copy()
        self.pos += min_bytes
        return (values != 0 if element_type == GGUFValueType.BOOL else values), element_type


class _GGUFFile:
    """One parsed GGUF file: its header, metadata, tensor infos and the mapping of its bytes."""

    def __init__(self, path: str, part: int, decode_strings: bool = True) -> None:
        self.path = path
        self.mmap = _map(path)
        try:
            self._parse(_Parser(path, self.mmap if self.mmap is not None else b"", decode_strings), part)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.mmap is not None:
            try:
                self.mmap.close()
            except BufferError:
                pass  # views returned by raw() are alive; the mapping goes when the last one does

    def _parse(self, p: _Parser, part: int) -> None:
        p.need(4, "magic")
        magic = bytes(p.buf[0:4])
        if magic != GGUF_MAGIC:
            raise p.error(0, "magic", f"{magic!r} is not {GGUF_MAGIC!r}: not a GGUF file")
        p.pos = 4
        self.version = p.u32("version")
        if self.version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if self.version & 0xFFFF == 0 else ""
            raise p.error(4, "version", f"unsupported version {self.version}{hint}; supported: {SUPPORTED_VERSIONS}")
        n_tensors = p.u64("tensor count")
        n_kv = p.u64("metadata count")
        if n_kv * _MIN_KV_BYTES > p.size - p.pos:
            raise p.error(16, "metadata count", f"{n_kv} key-value pairs cannot fit in the {p.size - p.pos} bytes left")
        self._parse_metadata(p, n_kv)
        if n_tensors * _MIN_TENSOR_INFO_BYTES > p.size - p.pos:
            raise p.error(8, "tensor count", f"{n_tensors} tensor infos cannot fit in the {p.size - p.pos} bytes left")
        self._parse_tensor_infos(p, n_tensors, part)

    def _parse_metadata(self, p: _Parser, n_kv: int) -> None:
        self.metadata: dict[str, Any] = {}
        self.metadata_types: dict[str, GGUFValueType] = {}
        self.alignment = DEFAULT_ALIGNMENT
        for i in range(n_kv):
            key_at = p.pos
            key = p.string(f"metadata key #{i}")
            field = f"metadata {key!r}"
            if key in self.metadata:
                raise p.error(key_at, field, "duplicate key")
            value_at = p.pos
            value, vtype = p.value(p.value_type(f"{field} type"), field)
            self.metadata[key] = value
            self.metadata_types[key] = vtype
            if key == KEY_ALIGNMENT:
                self.alignment = _check_alignment(p, value_at, value, vtype)

    def _parse_tensor_infos(self, p: _Parser, n_tensors: int, part: int) -> None:
        self.tensors: dict[str, TensorInfo] = {}
        names: set[str] = set()
        infos = [self._read_tensor_info(p, i, part, names) for i in range(n_tensors)]
        self.data_offset = -(-p.pos // self.alignment) * self.alignment
        if n_tensors and self.data_offset > p.size:
            raise p.error(
                p.pos,
                "tensor data",
                f"data section would start at {self.data_offset}, past the end of the {p.size}-byte file",
            )
        for info, offset_field_at in infos:
            start = self.data_offset + info.offset
            if info.n_bytes > p.size - start:
                raise p.error(
                    offset_field_at,
                    f"tensor {info.name!r} offset",
                    f"data [{start}, {start + info.n_bytes}) lies outside the {p.size}-byte file",
                )
            self.tensors[info.name] = dataclasses.replace(info, offset=start)

    def _read_tensor_info(self, p: _Parser, index: int, part: int, names: set[str]) -> tuple[TensorInfo, int]:
        """One tensor info (offset still relative to the data section) and where its offset was read.

        ``names`` holds the names read so far; this one is added to it.
        """
        name_at = p.pos
        name = p.string(f"tensor #{index} name")
        field = f"tensor #{index} {name!r}"
        if len(name.encode()) > MAX_TENSOR_NAME_BYTES:
            raise p.error(name_at, field, f"name longer than {MAX_TENSOR_NAME_BYTES} bytes")
        if name in names:
            raise p.error(name_at, field, "duplicate tensor name")
        names.add(name)
        dims_at = p.pos
        n_dims = p.u32(f"{field} n_dims")
        if n_dims > MAX_DIMS:
            raise p.error(dims_at, f"{field} n_dims", f"{n_dims} dimensions, at most {MAX_DIMS} allowed")
        ne = tuple(p.u64(f"{field} ne[{j}]") for j in range(n_dims))
        if math.prod(max(dim, 1) for dim in ne) > _MAX_ELEMENT_SPAN:
            raise p.error(dims_at, f"{field} dimensions", f"{list(ne)} overflow a tensor's size")
        type_at = p.pos
        code = p.u32(f"{field} type")
        if code not in _TENSOR_TYPES:
            raise p.error(type_at, f"{field} type", f"unknown tensor type {code}")
        ggml_type = _TENSOR_TYPES[code]
        try:
            n_bytes = row_bytes(ggml_type, ne[0] if ne else 1) * math.prod(ne[1:])
        except ValueError as error:
            raise p.error(dims_at, f"{field} ne[0]", str(error)) from None
        offset_at = p.pos
        relative = p.u64(f"{field} offset")
        if relative % self.alignment:
            raise p.error(
                offset_at, f"{field} offset", f"{relative} is not a multiple of the alignment {self.alignment}"
            )
        shape = tuple(reversed(ne))
        return TensorInfo(name, ggml_type, shape, math.prod(shape), n_bytes, relative, part), offset_at


def _map(path: str) -> mmap.mmap | None:
    """Map the file read-only (None for an empty file, which mmap refuses)."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return None
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise GGUFError(path, None, "file", error.strerror or str(error)) from None
    except ValueError as error:  # mmap of something that is not a regular file
        raise GGUFError(path, None, "file", str(error)) from None


def _check_alignment(p: _Parser, at: int, value: Any, vtype: GGUFValueType) -> int:
    if vtype != GGUFValueType.UINT32:
        raise p.error(at, f"metadata {KEY_ALIGNMENT!r}", f"must be UINT32, not {vtype.name}")
    if value == 0 or value & (value - 1):
        raise p.error(at, f"metadata {KEY_ALIGNMENT!r}", f"{value} is not a power of two")
    return value


class GGUFReader:
    """A parsed GGUF model (all splits of it), with tensor data left in the page cache until used.

    ``metadata`` maps keys to Python values (str, int, float, bool; numeric arrays as 1-D numpy
    arrays, string arrays as ``list[str]``, arrays of arrays as lists). ``metadata_types`` gives each
    key's GGUF value type, or for arrays the element type, so that a writer can reproduce the file.
    ``tensors`` maps names to ``TensorInfo`` in file order. Use as a context manager or ``close()``.
    Without ``decode_strings``, string arrays stay as the file stores them (``EncodedStrings``), for a
    tool that copies the metadata without reading the vocabulary.
    """

    def __init__(self, path: str | os.PathLike[str], *, decode_strings: bool = True) -> None:
        self.path = os.fspath(path)
        self._decode_strings = decode_strings
        self._files = [_GGUFFile(self.path, part=0, decode_strings=decode_strings)]
        try:
            self._open_other_splits()
            self.tensors: dict[str, TensorInfo] = self._merge_tensors()
        except BaseException:
            self.close()
            raise
        first = self._files[0]
        self.version = first.version
        self.alignment = first.alignment
        self.metadata = first.metadata
        self.metadata_types = first.metadata_types

    @property
    def part_paths(self) -> list[str]:
        """The files of the model: just ``path``, or every split in order."""
        return [part.path for part in self._files]

    def _open_other_splits(self) -> None:
        first = self._files[0]
        count = first.metadata.get(KEY_SPLIT_COUNT, 1)
        if not isinstance(count, int) or count < 0 or count > 99999:
            raise GGUFError(self.path, None, f"metadata {KEY_SPLIT_COUNT!r}", f"{count!r} is not a split count")
        if count <= 1:  # 0: a merged model (llama-gguf-split --merge writes split.count = 0), one file
            return
        if first.metadata.get(KEY_SPLIT_NO) != 0:
            raise GGUFError(
                self.path,
                None,
                f"metadata {KEY_SPLIT_NO!r}",
                f"this is split {first.metadata.get(KEY_SPLIT_NO)!r} of {count}; open the first split",
            )
        prefix = split_prefix(self.path, 0, count)
        if prefix is None:
            raise GGUFError(
                self.path, None, "file name", f"a split model's first file must end in -00001-of-{count:05d}.gguf"
            )
        for index in range(1, count):
            part = _GGUFFile(split_path(prefix, index, count), part=index, decode_strings=self._decode_strings)
            self._files.append(part)
            if part.metadata.get(KEY_SPLIT_NO) != index or part.metadata.get(KEY_SPLIT_COUNT) != count:
                raise GGUFError(
                    part.path, None, "metadata 'split.no'/'split.count'", f"expected split {index} of {count}"
                )

    def _merge_tensors(self) -> dict[str, TensorInfo]:
        tensors: dict[str, TensorInfo] = {}
        for part in self._files:
            for name, info in part.tensors.items():
                if name in tensors:
                    other = self._files[tensors[name].part].path
                    raise GGUFError(part.path, info.offset, f"tensor {name!r}", f"also defined in {other}")
                tensors[name] = info
        expected = self._files[0].metadata.get(KEY_SPLIT_TENSORS_COUNT)
        if expected is not None and expected != len(tensors):
            raise GGUFError(
                self.path,
                None,
                f"metadata {KEY_SPLIT_TENSORS_COUNT!r}",
                f"says {expected} tensors, the splits hold {len(tensors)}",
            )
        return tensors

    def raw(self, name: str) -> np.ndarray:
        """The tensor's stored data as a read-only zero-copy view over the file mapping.

        F32/F16/F64/I* -> array of ``shape`` in that dtype; BF16 -> uint16 of ``shape``;
        block-quantized types -> uint8 of ``(*shape[:-1], bytes_per_row)``.
        """
        info = self._info(name)
        dtype = numpy_dtype(info.type)
        view_shape = info.shape if dtype is not None else (*info.shape[:-1], row_bytes(info.type, info.shape[-1]))
        if info.n_bytes == 0:
            empty = np.empty(view_shape, dtype=dtype or np.uint8)
            empty.flags.writeable = False
            return empty
        buffer = self._files[info.part].mmap
        if dtype is None:
            return np.frombuffer(buffer, np.uint8, info.n_bytes, info.offset).reshape(view_shape)
        return np.frombuffer(buffer, dtype, info.n_elements, info.offset).reshape(view_shape)

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as a new float32 array of its ``shape``; GGUFError for a type llmcore cannot decode."""
        info = self._info(name)
        if info.type not in SUPPORTED_TYPES:
            path = self._files[info.part].path
            raise GGUFError(path, info.offset, f"tensor {name!r}", f"cannot dequantize type {info.type.name}")
        return dequantize(self.raw(name), info.type, info.shape)

    def _info(self, name: str) -> TensorInfo:
        if name not in self.tensors:
            raise KeyError(f"{self.path}: no tensor named {name!r}")
        return self.tensors[name]

    def close(self) -> None:
        """Release the file mappings (each stays alive while views from ``raw()`` still use it)."""
        for part in self._files:
            part.close()

    def __enter__(self) -> GGUFReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GGUFReader({self.path!r}, version={self.version}, {len(self.metadata)} keys, {len(self.tensors)} tensors)"
        )
