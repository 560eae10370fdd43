"""GGUF writer: typed metadata, tensors (numpy arrays or raw quantized bytes), optional splitting.

The layout is llama.cpp's (gguf.cpp ``gguf_write_out``): header, key-value pairs, tensor infos,
padding to the alignment, then each tensor's bytes padded to the alignment (a file without tensors
ends after its metadata, as gguf-py writes vocab-only files). A file read with
``GGUFReader`` and written back with its ``metadata_types`` is byte-identical.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .split import KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT, SPLIT_KEYS, split_path
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
    numpy_dtype,
    tensor_bytes,
)

__all__ = ["GGUFWriter", "encode_metadata", "encode_tensor_info"]

KEY_ARCHITECTURE = "general.architecture"
KEY_ALIGNMENT = "general.alignment"

_INT_TYPES = {vtype for vtype, dtype in SCALAR_DTYPES.items() if dtype.kind in "iu" and vtype != GGUFValueType.BOOL}
_DTYPE_TO_VALUE_TYPE = {dtype: vtype for vtype, dtype in SCALAR_DTYPES.items() if vtype != GGUFValueType.BOOL}
_DTYPE_TO_TENSOR_TYPE = {
    numpy_dtype(t): t
    for t in (GGMLType.F32, GGMLType.F16, GGMLType.F64, GGMLType.I8, GGMLType.I16, GGMLType.I32, GGMLType.I64)
}


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


_U64 = struct.Struct("<Q")


def _u64(value: int) -> bytes:
    return _U64.pack(value)


def _utf8(value: str | bytes) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"a STRING value must be str, not {type(value).__name__}")


def _string(value: str | bytes) -> bytes:
    data = _utf8(value)
    return _u64(len(data)) + data


def _strings(values: Sequence[str | bytes]) -> bytes:
    """Length-prefixed strings back to back (a vocabulary: one list comprehension, not a generator
    of concatenations)."""
    pack = _U64.pack
    return b"".join([pack(len(data)) + data for data in map(_utf8, values)])


def _int_type_for(values: Sequence[int]) -> GGUFValueType:
    """The narrowest of INT32, INT64, UINT64 that holds every value (INT32 is gguf-py's default)."""
    low, high = min(values, default=0), max(values, default=0)
    for vtype in (GGUFValueType.INT32, GGUFValueType.INT64, GGUFValueType.UINT64):
        info = np.iinfo(SCALAR_DTYPES[vtype])
        if info.min <= low and high <= info.max:
            return vtype
    raise ValueError(f"integers in [{low}, {high}] do not fit any GGUF integer type")


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, EncodedStrings))


def _infer_scalar_type(value: Any) -> GGUFValueType:
    if isinstance(value, (bool, np.bool_)):
        return GGUFValueType.BOOL
    if isinstance(value, np.generic) and value.dtype in _DTYPE_TO_VALUE_TYPE:
        return _DTYPE_TO_VALUE_TYPE[value.dtype]
    if isinstance(value, int):
        return _int_type_for([value])
    if isinstance(value, float):
        return GGUFValueType.FLOAT32
    if isinstance(value, (str, bytes)):
        return GGUFValueType.STRING
    raise TypeError(f"cannot store a {type(value).__name__} in GGUF metadata")


def _infer_element_type(values: Any) -> GGUFValueType:
    """The element type of an array value; numpy dtypes map exactly, Python lists like gguf-py does."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "b":
            return GGUFValueType.BOOL
        if values.dtype.newbyteorder("<") in _DTYPE_TO_VALUE_TYPE:
            return _DTYPE_TO_VALUE_TYPE[values.dtype.newbyteorder("<")]
        values = values.tolist()
    if not values or all(isinstance(v, (str, bytes)) for v in values):
        return GGUFValueType.STRING  # an empty list's type is unknowable: pass type= to be exact
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return GGUFValueType.BOOL
    if all(_is_array(v) for v in values):
        return GGUFValueType.ARRAY
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return _int_type_for([int(v) for v in values])
    if all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        return GGUFValueType.FLOAT32
    raise TypeError("cannot store an array of mixed or unsupported element types in GGUF metadata")


def _numeric_payload(values: Any, vtype: GGUFValueType) -> bytes:
    """Fixed-width values as little-endian bytes; integers are range-checked rather than wrapped."""
    dtype = SCALAR_DTYPES[vtype]
    array = np.asarray(values)
    if array.ndim > 1:
        raise ValueError("GGUF metadata arrays are 1-D (use a list of arrays to nest them)")
    if vtype == GGUFValueType.BOOL:
        return array.astype(bool).astype(dtype).tobytes()
    if vtype in _INT_TYPES:
        if array.size and array.dtype.kind not in "iub":
            raise ValueError(f"{vtype.name} values must be integers, got {array.dtype}")
        info = np.iinfo(dtype)
        if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
            raise ValueError(f"value out of range for {vtype.name}")
    with np.errstate(over="raise"):
        try:
            return array.astype(dtype).tobytes()
        except (FloatingPointError, ValueError, TypeError) as error:
            raise ValueError(f"cannot store {values!r:.60} as {vtype.name}: {error}") from None


def _encode_array(values: Any, element_type: GGUFValueType | None) -> bytes:
    """Element type, count and elements of an array value (without the leading ARRAY type code)."""
    if isinstance(values, EncodedStrings):
        return _u32(GGUFValueType.STRING) + _u64(values.count) + values.data
    if element_type is None:
        element_type = _infer_element_type(values)
    if element_type == GGUFValueType.STRING:
        payload = _strings(values)
    elif element_type == GGUFValueType.ARRAY:
        payload = b"".join(_encode_array(v, None) for v in values)
    else:
        payload = _numeric_payload(values, element_type)
    return _u32(element_type) + _u64(len(values)) + payload


def _encode_value(value: Any, vtype: GGUFValueType | None) -> bytes:
    """Type code and payload of one metadata value. For array values ``vtype`` is the element type."""
    if _is_array(value):
        element_type = None if vtype in (None, GGUFValueType.ARRAY) else vtype
        return _u32(GGUFValueType.ARRAY) + _encode_array(value, element_type)
    if vtype is None:
        vtype = _infer_scalar_type(value)
    if vtype == GGUFValueType.ARRAY:
        raise TypeError(f"an ARRAY value must be a list, tuple or numpy array, not {type(value).__name__}")
    if vtype == GGUFValueType.STRING:
        return _u32(vtype) + _string(value)
    return _u32(vtype) + _numeric_payload([value], vtype)


def encode_metadata(key: str, value: Any, type: GGUFValueType | None = None) -> bytes:
    """One key-value pair as a GGUF file stores it: key, type code, value. ``type`` is as in
    ``GGUFWriter.add_metadata`` (for arrays the element type), so a ``GGUFReader``'s
    ``metadata[key]`` and ``metadata_types[key]`` encode back to the bytes they were read from."""
    return _string(key) + _encode_value(value, None if type is None else GGUFValueType(type))


def encode_tensor_info(name: str, type: GGMLType, ne: Sequence[int], relative_offset: int) -> bytes:
    """One tensor info as a GGUF file stores it; ``ne`` is in GGUF order (innermost dimension first)
    and ``relative_offset`` counts from the start of the data section."""
    return _string(name) + _u32(len(ne)) + b"".join(_u64(d) for d in ne) + _u32(type) + _u64(relative_offset)


@dataclass(frozen=True)
class _Tensor:
    name: str
    type: GGMLType
    shape: tuple[int, ...]
    data: np.ndarray | None  # C-contiguous, exactly n_bytes long (often a zero-copy view of another file)
    produce: Callable[[], np.ndarray] | None = None  # makes ``data`` when it is written (add_lazy_tensor)

    @property
    def n_bytes(self) -> int:
        return self.data.nbytes if self.data is not None else tensor_bytes(self.type, self.shape)

    def contents(self) -> np.ndarray:
        if self.data is not None:
            return self.data
        data = np.ascontiguousarray(self.produce()).reshape(-1).view(np.uint8)
        if data.nbytes != self.n_bytes:
            raise ValueError(f"tensor {self.name!r}: produced {data.nbytes} bytes, {self.n_bytes} announced")
        return data

    def info(self, relative_offset: int) -> bytes:
        return encode_tensor_info(self.name, self.type, tuple(reversed(self.shape)), relative_offset)


def _padding(size: int, alignment: int) -> int:
    return -size % alignment


class GGUFWriter:
    """Collects metadata and tensors, then writes them as one GGUF file or as splits::

        writer = GGUFWriter("out.gguf", arch="llama")
        writer.add_metadata("llama.block_count", 30, GGUFValueType.UINT32)
        writer.add_tensor("output_norm.weight", np.ones(576, np.float32))
        writer.add_tensor("token_embd.weight", reader.raw("token_embd.weight"), GGMLType.Q8_0)
        writer.write()
    """

    def __init__(
        self, path: str | os.PathLike[str], arch: str | None = None, *, alignment: int | None = None, version: int = 3
    ) -> None:
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"GGUF version {version} is not supported; use one of {SUPPORTED_VERSIONS}")
        self.path = os.fspath(path)
        self.version = version
        self.alignment = DEFAULT_ALIGNMENT
        self._metadata: dict[str, bytes] = {}  # key -> encoded type code and value
        self._tensors: dict[str, _Tensor] = {}
        if arch is not None:
            self.add_metadata(KEY_ARCHITECTURE, arch)
        if alignment is not None:
            self.add_metadata(KEY_ALIGNMENT, alignment, GGUFValueType.UINT32)

    def add_metadata(self, key: str, value: Any, type: GGUFValueType | None = None) -> None:
        """Set ``key`` (replacing an earlier value in place, keeping its position).

        ``type`` is the GGUF value type, or for list/tuple/ndarray values the element type; when
        omitted it is inferred: bool -> BOOL, int -> INT32 (INT64/UINT64 if too big), float ->
        FLOAT32, str -> STRING, numpy arrays by dtype, nested lists -> arrays of arrays.
        """
        vtype = None if type is None else GGUFValueType(type)
        if key == KEY_ALIGNMENT and vtype is None:
            vtype = GGUFValueType.UINT32
        encoded = _encode_value(value, vtype)
        if key == KEY_ALIGNMENT:
            if (
                vtype != GGUFValueType.UINT32
                or not isinstance(value, (int, np.integer))
                or value <= 0
                or value & (value - 1)
            ):
                raise ValueError(f"{KEY_ALIGNMENT} must be a UINT32 power of two, got {value!r} ({vtype})")
            self.alignment = int(value)
        self._metadata[key] = encoded

    def add_tensor(
        self, name: str, array: np.ndarray, type: GGMLType | None = None, raw_shape: Sequence[int] | None = None
    ) -> None:
        """Add a tensor; ``array`` is kept by reference (no copy) until ``write()``.

        - ``type`` omitted: F32/F16/F64/I8/I16/I32/I64 from the array's dtype, shape = array.shape.
        - ``type`` of an unquantized kind: the array is cast to it (float<->float, int<->int).
        - BF16: a uint16 array of the bf16 bit patterns. Block-quantized types: a uint8 array of
          shape ``(*shape[:-1], bytes_per_row)``, as ``GGUFReader.raw`` returns.
        - ``raw_shape`` (numpy order): ``array`` holds the stored bytes of a tensor of that shape.
        """
        if name in self._tensors:
            raise ValueError(f"duplicate tensor name {name!r}")
        if len(name.encode("utf-8")) > MAX_TENSOR_NAME_BYTES:
            raise ValueError(f"tensor name {name!r} is longer than {MAX_TENSOR_NAME_BYTES} bytes")
        array = np.asarray(array)
        ggml_type = GGMLType(type) if type is not None else _tensor_type_for(array.dtype)
        if raw_shape is not None:
            shape = tuple(int(d) for d in raw_shape)
            data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        else:
            shape, data = _tensor_data(name, array, ggml_type)
        if len(shape) > MAX_DIMS:
            raise ValueError(f"tensor {name!r} has {len(shape)} dimensions, GGUF allows {MAX_DIMS}")
        expected = tensor_bytes(ggml_type, shape)
        if data.nbytes != expected:
            raise ValueError(
                f"tensor {name!r}: {ggml_type.name} of shape {shape} takes {expected} bytes, got {data.nbytes}"
            )
        self._tensors[name] = _Tensor(name, ggml_type, shape, data)

    def add_lazy_tensor(self, name: str, type: GGMLType, shape: Sequence[int], produce: Callable[[], np.ndarray]) -> None:
        """Add a tensor of ``type`` and ``shape`` (numpy order) whose stored bytes ``produce()``
        returns only when ``write()`` reaches it, so that a converter holds one tensor at a time."""
        if name in self._tensors:
            raise ValueError(f"duplicate tensor name {name!r}")
        if len(name.encode("utf-8")) > MAX_TENSOR_NAME_BYTES:
            raise ValueError(f"tensor name {name!r} is longer than {MAX_TENSOR_NAME_BYTES} bytes")
        self._tensors[name] = _Tensor(name, GGMLType(type), tuple(int(d) for d in shape), None, produce)

    def write(self, *, split_max_tensors: int | None = None, split_max_bytes: int | None = None,
              on_tensor: Callable[[int], None] | None = None) -> list[str]:
        """Write the file(s) and return their paths.

        ``on_tensor`` is told the bytes of each tensor once written (a progress bar).
        Without limits: one file at ``path``, without any ``split.*`` keys copied from a split
        source (a single file that claimed to be split would not open). With a limit, splits named
        like llama.cpp's gguf-split (``path`` minus ``.gguf`` + ``-00001-of-0000N.gguf``): the first
        holds all metadata, every one the ``split.no``/``split.count``/``split.tensors.count`` keys.
        """
        if split_max_tensors is None and split_max_bytes is None:
            metadata = [(key, encoded) for key, encoded in self._metadata.items() if key not in SPLIT_KEYS]
            self._write_file(self.path, metadata, list(self._tensors.values()), on_tensor)
            return [self.path]
        groups = self._split_groups(split_max_tensors, split_max_bytes)
        prefix = self.path[: -len(".gguf")] if self.path.endswith(".gguf") else self.path
        paths = []
        for index, tensors in enumerate(groups):
            split_keys = {
                KEY_SPLIT_NO: _encode_value(index, GGUFValueType.UINT16),
                KEY_SPLIT_COUNT: _encode_value(len(groups), GGUFValueType.UINT16),
                KEY_SPLIT_TENSORS_COUNT: _encode_value(len(self._tensors), GGUFValueType.INT32),
            }
            if index == 0:
                metadata = {**self._metadata, **split_keys}
            elif KEY_ALIGNMENT in self._metadata:
                metadata = {KEY_ALIGNMENT: self._metadata[KEY_ALIGNMENT], **split_keys}
            else:
                metadata = split_keys
            paths.append(split_path(prefix, index, len(groups)))
            self._write_file(paths[-1], list(metadata.items()), tensors, on_tensor)
        return paths

    def _split_groups(self, max_tensors: int | None, max_bytes: int | None) -> list[list[_Tensor]]:
        """Consecutive groups of tensors, each within the limits (a lone oversized tensor gets its own)."""
        groups: list[list[_Tensor]] = [[]]
        group_bytes = 0
        for tensor in self._tensors.values():
            size = tensor.n_bytes + _padding(tensor.n_bytes, self.alignment)
            full = (max_tensors is not None and len(groups[-1]) >= max_tensors) or (
                max_bytes is not None and group_bytes + size > max_bytes
            )
            if full and groups[-1]:
                groups.append([])
                group_bytes = 0
            groups[-1].append(tensor)
            group_bytes += size
        return groups

    def _write_file(self, path: str, metadata: list[tuple[str, bytes]], tensors: list[_Tensor],
                    on_tensor: Callable[[int], None] | None = None) -> None:
        header = [GGUF_MAGIC, _u32(self.version), _u64(len(tensors)), _u64(len(metadata))]
        header += [_string(key) + encoded for key, encoded in metadata]
        offset = 0
        for tensor in tensors:
            header.append(tensor.info(offset))
            offset += tensor.n_bytes + _padding(tensor.n_bytes, self.alignment)
        head = b"".join(header)
        temporary = f"{path}.tmp"  # the final name appears only once the file is complete
        try:
            with open(temporary, "wb") as out:
                out.write(head)
                if tensors:  # like llama.cpp's reader, only a data section needs aligning
                    out.write(bytes(_padding(len(head), self.alignment)))
                for tensor in tensors:
                    out.write(tensor.contents())
                    out.write(bytes(_padding(tensor.n_bytes, self.alignment)))
                    if on_tensor:
                        on_tensor(tensor.n_bytes)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise


def _tensor_type_for(dtype: np.dtype) -> GGMLType:
    little = dtype.newbyteorder("<")
    if little not in _DTYPE_TO_TENSOR_TYPE:
        raise ValueError(f"no GGML type for numpy dtype {dtype}; pass type= (and raw bytes for quantized types)")
    return _DTYPE_TO_TENSOR_TYPE[little]


def _tensor_data(name: str, array: np.ndarray, ggml_type: GGMLType) -> tuple[tuple[int, ...], np.ndarray]:
    """The logical shape and the contiguous stored data of ``array`` as a tensor of ``ggml_type``."""
    element = numpy_dtype(ggml_type)
    if ggml_type == GGMLType.BF16:
        if array.dtype != np.uint16:
            raise ValueError(f"tensor {name!r}: BF16 data must be a uint16 array of bf16 bit patterns")
        return array.shape, np.ascontiguousarray(array)
    if element is not None:
        if array.dtype != element and array.dtype.kind != element.kind:
            raise ValueError(f"tensor {name!r}: cannot store {array.dtype} data as {ggml_type.name}")
        data = np.ascontiguousarray(array, dtype=element)
        if element.kind == "i" and data is not array and not np.array_equal(data, array):
            raise ValueError(f"tensor {name!r}: values out of range for {ggml_type.name}")
        return array.shape, data
    if array.dtype != np.uint8 or array.ndim == 0:
        raise ValueError(
            f"tensor {name!r}: {ggml_type.name} data must be a uint8 array of shape (*shape[:-1], bytes_per_row)"
        )
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    if array.shape[-1] % type_size:
        raise ValueError(
            f"tensor {name!r}: {array.shape[-1]} bytes per row is not a whole number of {ggml_type.name} blocks"
        )
    shape = (*array.shape[:-1], array.shape[-1] // type_size * block_size)
    return shape, np.ascontiguousarray(array)
