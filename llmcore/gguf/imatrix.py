"""llama-imatrix's files: an importance matrix as GGUF (llama.cpp's default) or in the legacy format.

GGUF (``imatrix.cpp``'s ``save_imatrix``): ``general.type = "imatrix"``, ``imatrix.datasets``,
``imatrix.chunk_count`` and ``imatrix.chunk_size``, then per weight tensor, in name order,
``<name>.in_sum2`` (F32, [experts, columns]: the sums of the squared activations that multiplied it)
and ``<name>.counts`` (F32, [experts, 1]: the rows summed). The legacy format (``save_imatrix_legacy``)
stores per entry the name, ``ncall`` and the mean squares times ``ncall``, then the chunk count and
the dataset's name. Both are read as ``common_imatrix_load`` reads them: sums and counts as stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmcore.errors import LLMCoreError

from .reader import GGUFReader
from .types import GGUF_MAGIC, GGMLType, GGUFValueType
from .writer import GGUFWriter

__all__ = ["ImatrixFile", "read_imatrix", "write_imatrix_gguf", "write_imatrix_legacy"]


@dataclass
class ImatrixFile:
    """An importance matrix as its file holds it. ``entries``: tensor name -> (sums float32
    [experts * columns], counts int64 [experts]); a legacy file's sums are its mean squares times
    ``ncall`` and its one count is ``ncall``."""

    entries: dict[str, tuple[np.ndarray, np.ndarray]]
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0  # 0 in the legacy format, which does not record it
    legacy: bool = False


def read_imatrix(path: str | Path) -> ImatrixFile:
    """Read a llama-imatrix file of either format; a malformed one is a one-line ``LLMCoreError``."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            is_gguf = handle.read(4) == GGUF_MAGIC
    except OSError as error:
        raise LLMCoreError(f"failed to load imatrix from {path!r}: {error.strerror}") from None
    return _read_gguf(path) if is_gguf else _read_legacy(path)


def _read_gguf(path: str) -> ImatrixFile:
    with GGUFReader(path) as reader:
        if not reader.tensors:
            raise LLMCoreError(f"failed to load imatrix from {path!r}: no data in the file")
        meta = reader.metadata
        for key in ("imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"):
            if key not in meta:
                raise LLMCoreError(f"missing imatrix metadata in file {path} ({key})")
        datasets = meta["imatrix.datasets"] if reader.metadata_types["imatrix.datasets"] == GGUFValueType.STRING else []
        pairs: dict[str, list[str | None]] = {}
        for name, info in reader.tensors.items():
            for slot, suffix in enumerate((".in_sum2", ".counts")):
                if name.endswith(suffix) and len(name) > len(suffix):
                    pairs.setdefault(name[: -len(suffix)], [None, None])[slot] = name
        entries = {}
        for name, (sums_name, counts_name) in sorted(pairs.items()):
            if sums_name is None or counts_name is None:
                raise LLMCoreError(f"failed to load imatrix from {path!r}: mismatched sums and counts for {name}")
            if reader.tensors[sums_name].type != GGMLType.F32 or reader.tensors[counts_name].type != GGMLType.F32:
                raise LLMCoreError(f"failed to load imatrix from {path!r}: sums and counts for {name} must be F32")
            sums = np.array(reader.raw(sums_name), np.float32).reshape(-1)
            stored = np.array(reader.raw(counts_name), np.float64).reshape(-1)
            counts = (np.floor(np.abs(stored) + 0.5) * np.sign(stored)).astype(np.int64)  # std::lround
            if not len(counts) or len(sums) % len(counts):
                raise LLMCoreError(f"failed to load imatrix from {path!r}: {len(sums)} sums for {len(counts)} "
                                   f"counts in {name}")
            entries[name] = (sums, counts)
        return ImatrixFile(entries, list(datasets), int(meta["imatrix.chunk_count"]), int(meta["imatrix.chunk_size"]))


def _read_legacy(path: str) -> ImatrixFile:
    with open(path, "rb") as handle:
        data = handle.read()
    fail = f"failed to load imatrix from {path!r}"
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise LLMCoreError(f"{fail}: the file ends inside {what}")
        pos += n
        return data[pos - n:pos]

    (n_entries,) = struct.unpack("<i", take(4, "the entry count"))
    if n_entries < 1:
        raise LLMCoreError(f"{fail}: no data in the file")
    imatrix = ImatrixFile({}, legacy=True)
    for index in range(n_entries):
        (length,) = struct.unpack("<i", take(4, f"entry {index + 1}'s name"))
        name = take(max(length, 0), f"entry {index + 1}'s name").split(b"\0")[0].decode("utf-8", "replace")
        ncall, nval = struct.unpack("<ii", take(8, f"entry {index + 1}'s counts"))
        if nval < 1:
            raise LLMCoreError(f"{fail}: entry {index + 1} has no values")
        sums = np.frombuffer(take(4 * nval, f"entry {index + 1}'s values"), "<f4").astype(np.float32)
        imatrix.entries[name] = (sums, np.array([ncall], np.int64))
    if pos + 4 <= len(data):  # the optional trailer: chunk count, then the dataset's name
        (imatrix.chunk_count,) = struct.unpack("<i", take(4, "the chunk count"))
        if pos + 4 <= len(data):
            (length,) = struct.unpack("<i", take(4, "the dataset name"))
            if 0 < length <= len(data) - pos:
                imatrix.datasets.append(take(length, "the dataset name").split(b"\0")[0].decode("utf-8", "replace"))
    return imatrix


def write_imatrix_gguf(path: str | Path, imatrix: ImatrixFile) -> None:
    """``imatrix`` as llama-imatrix's GGUF file (every entry, with partial data too)."""
    writer = GGUFWriter(path)
    writer.add_metadata("general.type", "imatrix")
    writer.add_metadata("imatrix.datasets", list(imatrix.datasets), GGUFValueType.STRING)
    writer.add_metadata("imatrix.chunk_count", imatrix.chunk_count, GGUFValueType.UINT32)
    writer.add_metadata("imatrix.chunk_size", imatrix.chunk_size, GGUFValueType.UINT32)
    for name in sorted(imatrix.entries):
        sums, counts = imatrix.entries[name]
        if len(sums) and len(counts):
            # ggml writes a tensor's dimensions up to its last one above 1: one expert's are 1-D
            shape = (len(counts), -1) if len(counts) > 1 else (-1,)
            writer.add_tensor(f"{name}.in_sum2", sums.astype(np.float32).reshape(shape))
            writer.add_tensor(f"{name}.counts", counts.astype(np.float32).reshape(len(counts), 1).reshape(shape))
    writer.write()


def write_imatrix_legacy(path: str | Path, imatrix: ImatrixFile) -> list[str]:
    """``imatrix`` in llama-imatrix's legacy format: per entry the mean squares (a count of 0 stores
    1s) times ``ncall``, the rounded-up chunks its largest count makes. Entries without any data
    are left out; returns their names."""
    chunk_size = imatrix.chunk_size
    stored, skipped = [], []
    for name in sorted(imatrix.entries):
        sums, counts = imatrix.entries[name]
        if not len(counts):
            continue
        (stored if counts.any() else skipped).append(name)
    parts = [struct.pack("<i", len(stored))]
    for name in stored:
        sums, counts = imatrix.entries[name]
        encoded = name.encode()
        ncall = int((counts.max() + (chunk_size - 1)) // chunk_size)
        per_value = np.repeat(counts.astype(np.float32), len(sums) // len(counts))
        values = np.where(per_value == 0, np.float32(1), sums.astype(np.float32))
        scaled = (values / np.where(per_value == 0, np.float32(1), per_value)) * np.float32(ncall)
        parts += [struct.pack("<i", len(encoded)), encoded, struct.pack("<ii", ncall, len(sums)),
                  scaled.astype("<f4").tobytes()]
    dataset = (imatrix.datasets[-1] if imatrix.datasets else "").encode()
    parts += [struct.pack("<i", imatrix.chunk_count), struct.pack("<i", len(dataset)), dataset]
    Path(path).write_bytes(b"".join(parts))
    return skipped
