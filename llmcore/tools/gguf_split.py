"""llama.cpp's ``llama-gguf-split``: split a GGUF into ``PREFIX-00001-of-0000N.gguf`` files, or merge
such files back into one, byte for byte as the llama.cpp tool (tools/gguf-split/gguf-split.cpp) does.

What its output looks like, and so ours:

- Every output is laid out with the default alignment (32): the tool's gguf contexts start empty,
  and copying a ``general.alignment`` key into one does not change that context's alignment.
- A split: the first file holds every key of the input, then ``split.no`` (u16), ``split.tensors.count``
  (i32) and ``split.count`` (u16), in that order (each ``gguf_set_val`` removes the key and appends
  it, and ``split.count`` is set last, once the number of splits is known); the others hold just
  those three. Splits cut the tensor list in file order: every ``--split-max-tensors`` tensors, or
  before the tensor that would make the split's padded tensor bytes exceed ``--split-max-size``.
- A merge: the first split's keys with ``split.count`` moved to the end and set to 0 (so the merged
  file does not look split), then every split's tensors in order.
- A tensor info names as many dimensions as ``ggml_n_dims`` counts (trailing 1s dropped).

Tensor data is copied in chunks from the input files, never held whole in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmcore.errors import LLMCoreError
from llmcore.gguf import GGUFReader, GGUFValueType, TensorInfo
from llmcore.gguf.split import KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT, split_path, split_prefix
from llmcore.gguf.types import DEFAULT_ALIGNMENT, GGUF_MAGIC
from llmcore.gguf.writer import encode_metadata, encode_tensor_info

__all__ = [
    "DEFAULT_MAX_TENSORS", "GGUFOutput", "parse_split_size", "plan_merge", "plan_split", "size_in_megabytes",
    "write_outputs",
]

DEFAULT_MAX_TENSORS = 128  # llama-gguf-split's --split-max-tensors default
_VERSION = 3  # gguf_init_empty's
_CHUNK = 16 << 20  # bytes copied at a time

Metadata = list[tuple[str, Any, GGUFValueType]]


def _pad(n: int) -> int:
    return -n % DEFAULT_ALIGNMENT


@dataclass
class GGUFOutput:
    """One file to write: its metadata, in order, and the input tensors it takes, in order."""

    path: str
    metadata: Metadata
    tensors: list[TensorInfo] = field(default_factory=list)

    def header(self) -> bytes:
        """Everything before the tensor data: header, key-value pairs, tensor infos, padding
        (``gguf_get_meta_data``; like llama.cpp, padded even when there are no tensors)."""
        parts = [GGUF_MAGIC, _VERSION.to_bytes(4, "little"), len(self.tensors).to_bytes(8, "little")]
        parts.append(len(self.metadata).to_bytes(8, "little"))
        parts += [encode_metadata(key, value, vtype) for key, value, vtype in self.metadata]
        offset = 0
        for info in self.tensors:
            parts.append(encode_tensor_info(info.name, info.type, _ggml_ne(info), offset))
            offset += info.n_bytes + _pad(info.n_bytes)
        head = b"".join(parts)
        return head + bytes(_pad(len(head)))

    @property
    def n_bytes(self) -> int:
        """Header plus unpadded tensor bytes: the size llama-gguf-split prints for a split."""
        return len(self.header()) + sum(info.n_bytes for info in self.tensors)


def _ggml_ne(info: TensorInfo) -> tuple[int, ...]:
    """The tensor's dimensions in GGUF order, cut to ``ggml_n_dims`` (trailing 1s dropped, at least one)."""
    ne = tuple(reversed(info.shape)) or (1,)
    n_dims = max((i + 1 for i, d in enumerate(ne) if d > 1), default=1)
    return ne[:n_dims]


def parse_split_size(text: str) -> int:
    """``--split-max-size``'s ``N(M|G)`` in bytes: decimal megabytes or gigabytes, as llama.cpp reads
    it (the leading integer of ``N``: ``1.5G`` is 1 G)."""
    if not text or text[-1] not in "MG":
        unit = text[-1:] or "nothing"
        raise ValueError(f"supported units are M (megabytes) or G (gigabytes), but got: {unit}")
    digits = text[:-1].lstrip()
    sign = digits[:1] if digits[:1] in "+-" else ""
    number = digits[len(sign):]
    number = number[: len(number) - len(number.lstrip("0123456789"))]
    if not number:
        raise ValueError(f"{text!r} is not a size: a whole number followed by M or G")
    n = int(sign + number)
    if n <= 0:
        raise ValueError("size must be a positive value")
    return n * (1000**2 if text[-1] == "M" else 1000**3)


def _split_keys(index: int, count: int, n_tensors: int) -> Metadata:
    return [
        (KEY_SPLIT_NO, index, GGUFValueType.UINT16),
        (KEY_SPLIT_TENSORS_COUNT, n_tensors, GGUFValueType.INT32),
        (KEY_SPLIT_COUNT, count, GGUFValueType.UINT16),
    ]


def _metadata(reader: GGUFReader, without: tuple[str, ...] = ()) -> Metadata:
    return [(key, value, reader.metadata_types[key]) for key, value in reader.metadata.items() if key not in without]


def plan_split(
    reader: GGUFReader,
    prefix: str,
    *,
    max_tensors: int | None = None,
    max_bytes: int | None = None,
    no_tensor_first_split: bool = False,
) -> list[GGUFOutput]:
    """The files ``llama-gguf-split --split`` writes for ``reader``'s model, named ``prefix-0000i-of-0000N.gguf``.

    ``max_bytes`` (``--split-max-size``) or else ``max_tensors`` (``--split-max-tensors``, default 128)
    bounds each split; ``no_tensor_first_split`` leaves the first split with the metadata alone.
    """
    if len(reader.part_paths) > 1:
        raise LLMCoreError(
            f"{reader.path} is the first of {len(reader.part_paths)} splits; merge them first (--merge)"
        )
    if max_bytes is None and max_tensors is None:
        max_tensors = DEFAULT_MAX_TENSORS
    if max_bytes is not None and max_bytes <= 0 or max_tensors is not None and max_tensors <= 0:
        raise LLMCoreError("the split limit must be positive")
    tensors = list(reader.tensors.values())
    groups: list[list[TensorInfo]] = [[]]
    if no_tensor_first_split:
        groups.append([])
    current = 0  # padded tensor bytes in the current split
    for index, info in enumerate(tensors):
        padded = info.n_bytes + _pad(info.n_bytes)
        if max_bytes is not None:
            cut = current + padded > max_bytes
        else:
            cut = index > 0 and index % max_tensors == 0
        if cut:
            if not groups[-1]:
                raise LLMCoreError(
                    f"tensor {info.name!r} ({info.n_bytes} bytes) alone exceeds the split size limit: "
                    "one of the splits would have 0 tensors"
                )
            groups.append([])
            current = padded
        else:
            current += padded
        groups[-1].append(info)
    count = len(groups)
    outputs = []
    for index, group in enumerate(groups):
        keys = _split_keys(index, count, len(tensors))
        metadata = _metadata(reader, without=(KEY_SPLIT_NO, KEY_SPLIT_COUNT, KEY_SPLIT_TENSORS_COUNT)) + keys
        outputs.append(GGUFOutput(split_path(prefix, index, count), metadata if index == 0 else keys, group))
    return outputs


def plan_merge(reader: GGUFReader, output: str) -> GGUFOutput:
    """The file ``llama-gguf-split --merge`` writes from the splits ``reader`` opened (at their first file)."""
    if KEY_SPLIT_COUNT not in reader.metadata:
        raise LLMCoreError(f"{reader.path} does not contain {KEY_SPLIT_COUNT} metadata: not a split model")
    count = reader.metadata[KEY_SPLIT_COUNT]
    if reader.metadata_types[KEY_SPLIT_COUNT] != GGUFValueType.UINT16:
        raise LLMCoreError(f"{reader.path}: {KEY_SPLIT_COUNT} is {reader.metadata_types[KEY_SPLIT_COUNT].name}, not UINT16")
    if count < 1:
        raise LLMCoreError(f"{reader.path} does not contain a valid split count {count} (an already merged model?)")
    if split_prefix(reader.path, 0, count) is None:
        raise LLMCoreError(f"unexpected input file name {reader.path}: the first split ends in -00001-of-{count:05d}.gguf")
    metadata = _metadata(reader, without=(KEY_SPLIT_COUNT,)) + [(KEY_SPLIT_COUNT, 0, GGUFValueType.UINT16)]
    return GGUFOutput(output, metadata, list(reader.tensors.values()))


def write_outputs(
    outputs: list[GGUFOutput],
    sources: list[str],
    *,
    progress: bool = True,
    on_file: Callable[[GGUFOutput], None] | None = None,
    delete_sources: bool = False,
) -> None:
    """Write each output, copying its tensors' bytes from ``sources`` (the input's files, indexed by
    ``TensorInfo.part``). A file appears under its name only once complete, unless ``delete_sources``
    (``--delete-splits``): then each source is deleted as soon as its tensors are copied and the
    output is written in place, as llama.cpp does."""
    from tqdm import tqdm

    for output in outputs:
        if any(os.path.exists(output.path) and os.path.samefile(output.path, source) for source in sources):
            raise LLMCoreError(f"{output.path} is one of the input files; choose another output")
    total = sum(info.n_bytes for output in outputs for info in output.tensors)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
              disable=None if progress else True) as bar:  # None: only on a terminal
        for output in outputs:
            bar.set_description(os.path.basename(output.path))
            target = output.path if delete_sources else f"{output.path}.tmp"
            try:
                with open(target, "wb") as out:
                    out.write(output.header())
                    if not delete_sources:
                        _copy(sources, output.tensors, out, bar)
                    for part, source in enumerate(sources if delete_sources else ()):
                        _copy(sources, [info for info in output.tensors if info.part == part], out, bar)
                        os.remove(source)
                if target != output.path:
                    os.replace(target, output.path)
            except BaseException:
                if target != output.path and os.path.exists(target):
                    os.unlink(target)
                raise
            if on_file is not None:
                on_file(output)


def _copy(sources: list[str], tensors: list[TensorInfo], out: Any, bar: Any) -> None:
    handles: dict[int, Any] = {}
    try:
        for info in tensors:
            if info.part not in handles:
                handles[info.part] = open(sources[info.part], "rb")
            source = handles[info.part]
            source.seek(info.offset)
            left = info.n_bytes
            while left:
                chunk = source.read(min(left, _CHUNK))
                if not chunk:
                    raise LLMCoreError(f"{sources[info.part]}: tensor {info.name!r} ends past the end of the file")
                out.write(chunk)
                left -= len(chunk)
                bar.update(len(chunk))
            out.write(bytes(_pad(info.n_bytes)))
    finally:
        for handle in handles.values():
            handle.close()


def size_in_megabytes(output: GGUFOutput) -> int:
    """llama-gguf-split's ``total_size = ...M`` (decimal megabytes, rounded down)."""
    return output.n_bytes // 1000 // 1000
