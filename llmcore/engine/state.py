"""Saving and restoring the KV state of a sequence: sequence 0 for ``--prompt-cache`` and
``LLM.save_state``, a server slot's for ``POST /slots/{id}?action=save|restore``.

A state file holds the tokens of the sequence and, for every layer's key and value cache, the rows of
the cells those tokens occupy, in position order, so a long prompt (a system prompt, a document) is
evaluated once and reloaded by later runs. Layout (little-endian)::

    b"LLMCSTAT"  u32 version  u32 header_len  header (JSON, utf-8)
    i32 tokens[n_tokens]
    per cache in header["caches"] order: rows[n_tokens] of the cache's type, as the cache stores
        them (f32, f16, bf16 values of the row's width; the block types' bytes); a recurrent
        model's (Mamba's) caches hold one row each instead, sequence 0's state after the tokens
    u32 crc32 of everything before it

The header names the model (file size and the SHA-256 of its GGUF header and metadata), n_ctx,
the K and V cache types (``cache_type``, ``cache_type_v``: files from before V had its own type
have only the first) and the caches' names and widths; loading checks each against the running
context, and refuses a state saved with other cache types.
Logits are not saved: the next evaluation always recomputes at least the last token (as llama.cpp
replays the last token of a session file).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.engine.batch import Batch
from llmcore.engine.kv_cache import EMPTY
from llmcore.graph import kv_types

if TYPE_CHECKING:
    from llmcore.engine.context import Context
    from llmcore.engine.model import Model

MAGIC = b"LLMCSTAT"
VERSION = 1
_PREAMBLE = struct.Struct("<8sII")  # magic, version, header length
_CRC = struct.Struct("<I")


class StateError(LLMCoreError):
    """A state file is unreadable, corrupt, or was saved with another model or context setup."""


@dataclass
class StateHeader:
    """What a state file says about the setup it was saved from."""

    model_file: str
    model_size: int
    model_sha256: str
    n_ctx: int
    cache_type: str  # of the K caches
    cache_type_v: str
    caches: list[tuple[str, int]]  # (cache name, row width), in file order
    n_tokens: int

    def to_json(self) -> bytes:
        fields = {
            "model": {"file": self.model_file, "size": self.model_size, "sha256": self.model_sha256},
            "n_ctx": self.n_ctx, "cache_type": self.cache_type, "cache_type_v": self.cache_type_v,
            "caches": [[name, width] for name, width in self.caches], "n_tokens": self.n_tokens,
        }
        return json.dumps(fields, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, path: Path, raw: bytes) -> StateHeader:
        try:
            fields = json.loads(raw.decode("utf-8"))
            model = fields["model"]
            header = cls(
                model_file=_typed(model["file"], str, "model.file"),
                model_size=_typed(model["size"], int, "model.size"),
                model_sha256=_typed(model["sha256"], str, "model.sha256"),
                n_ctx=_typed(fields["n_ctx"], int, "n_ctx"),
                cache_type=_typed(fields["cache_type"], str, "cache_type"),
                cache_type_v=_typed(fields.get("cache_type_v", fields["cache_type"]), str, "cache_type_v"),
                caches=[(_typed(name, str, "caches"), _typed(width, int, "caches")) for name, width in fields["caches"]],
                n_tokens=_typed(fields["n_tokens"], int, "n_tokens"),
            )
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StateError(f"{path}: header: not valid JSON ({error})") from None
        except (KeyError, TypeError, ValueError) as error:
            raise StateError(f"{path}: header: missing or malformed field {error}") from None
        for field_name, value in (("cache_type", header.cache_type), ("cache_type_v", header.cache_type_v)):
            if value not in kv_types.KV_CACHE_TYPES:
                raise StateError(f"{path}: header: {field_name}: unknown type {value!r}")
        if header.n_tokens < 0 or any(width < 1 for _, width in header.caches):
            raise StateError(f"{path}: header: negative n_tokens or cache width")
        return header


def save_state(path: str | os.PathLike[str], context: Context, model: Model, tokens: Sequence[int],
               seq_id: int = 0) -> None:
    """Write ``tokens`` (sequence ``seq_id``'s, from position 0: a server slot's) and their cells'
    keys and values to ``path``.

    The file is written to a new temporary file beside ``path`` and renamed over it, so an
    interrupted save never leaves a half-written state behind; ``path`` must be a regular file or
    absent (see :func:`check_state_path`).
    """
    path = Path(path)
    check_state_path(path)
    views = context.cache_views()
    widths = context.cache_widths()
    rows = _sequence_cells(context, len(tokens), seq_id)
    model_size, model_sha256 = model_identity(model)
    header = StateHeader(model.path.name, model_size, model_sha256, context.n_ctx, context.cache.type_k,
                         context.cache.type_v, [(name, widths[name]) for name in views], len(tokens))
    header_json = header.to_json()
    scratch = None
    try:
        # a fresh name (O_EXCL): never a file, FIFO or link someone left at a predictable one
        handle, scratch_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        scratch = Path(scratch_name)
        with open(handle, "wb") as out:
            crc = 0
            for chunk in _chunks(header_json, np.asarray(tokens, "<i4"), views, rows):
                out.write(chunk)
                crc = zlib.crc32(chunk, crc)
            out.write(_CRC.pack(crc))
        os.replace(scratch, path)
    except OSError as error:
        if scratch is not None:
            scratch.unlink(missing_ok=True)
        raise StateError(f"{path}: cannot write the state: {error.strerror}") from None


def check_state_path(path: str | os.PathLike[str]) -> None:
    """Refuse a state path that holds something other than a regular file: a symlink, a FIFO, a
    device or a directory would be replaced by the save (as root, ``/dev/null`` itself) or block
    the load. A path that does not exist yet is fine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise StateError(f"{path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise StateError(f"{path}: is a {_file_kind(mode)}, not a regular file; a state is only read from "
                         f"and written to a regular file or a new path")


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"), (stat.S_ISSOCK, "socket")]
    return next((name for is_kind, name in kinds if is_kind(mode)), "special file")


def load_state(path: str | os.PathLike[str], context: Context, model: Model, seq_id: int = 0) -> list[int]:
    """Restore the state saved in ``path`` into sequence ``seq_id`` of ``context`` and return its
    tokens: sequence 0 of a context not partitioned into slots gets the whole cache (every other
    cell is freed); otherwise only the sequence's own cells are replaced (a server slot's). The
    file is checked completely before anything changes."""
    path = Path(path)
    check_state_path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise StateError(f"{path}: cannot read the state: {error.strerror}") from None
    return _restore(path, data, context, model, seq_id)


def _restore(path: Path, buf: bytes, context: Context, model: Model, seq_id: int) -> list[int]:
    if len(buf) < _PREAMBLE.size + _CRC.size:
        raise StateError(f"{path}: truncated: {len(buf)} bytes is shorter than a state file's preamble")
    magic, version, header_len = _PREAMBLE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise StateError(f"{path}: offset 0: magic: not an llmcore state file (got {bytes(magic)!r})")
    if version != VERSION:
        raise StateError(f"{path}: offset 8: version: unsupported state version {version} (this llmcore reads {VERSION})")
    body_end = len(buf) - _CRC.size
    if _PREAMBLE.size + header_len > body_end:
        raise StateError(f"{path}: offset 12: header length {header_len} runs past the end of the file")
    (stored_crc,) = _CRC.unpack_from(buf, body_end)
    if zlib.crc32(memoryview(buf)[:body_end]) != stored_crc:
        raise StateError(f"{path}: checksum mismatch: the file is corrupt or truncated")
    header = StateHeader.from_json(path, bytes(buf[_PREAMBLE.size:_PREAMBLE.size + header_len]))
    views = context.cache_views()
    _check_compatible(path, header, context, model, views)

    n = header.n_tokens
    offset = _PREAMBLE.size + header_len
    row_bytes = [views[name][:1].nbytes for name, _ in header.caches]  # one cell of each cache
    n_rows = min(n, 1) if context.arch.recurrent else n
    expected_end = offset + 4 * n + n_rows * sum(row_bytes)
    if expected_end != body_end:
        raise StateError(f"{path}: size: {n} tokens need {expected_end + _CRC.size} bytes, the file has {len(buf)}")
    tokens = np.frombuffer(buf, "<i4", n, offset)
    if n and (tokens.min() < 0 or tokens.max() >= model.hparams.n_vocab):
        raise StateError(f"{path}: tokens: id out of range for a vocabulary of {model.hparams.n_vocab}")
    offset += 4 * n

    if context.arch.recurrent:
        if seq_id:
            raise StateError(f"{path}: a recurrent model's state is restored into sequence 0 only")
        context.cells.clear()
        cells = np.arange(n_rows)
    else:
        if seq_id == 0 and context.cells.range_size is None:
            context.cells.clear()
        else:
            context.cells.remove(seq_id)
        cells = context.cells.place(Batch.for_sequence(tokens.tolist(), 0, seq_id=seq_id))
    for (name, _), size in zip(header.caches, row_bytes):
        view = views[name]
        view[cells] = np.frombuffer(buf, view.dtype, n_rows * view.shape[1], offset).reshape(n_rows, -1)
        offset += n_rows * size
    if context.arch.recurrent:
        context.cells.pos[0] = n - 1
    return tokens.tolist()


def _check_compatible(path: Path, header: StateHeader, context: Context, model: Model,
                      views: dict[str, np.ndarray]) -> None:
    model_size, model_sha256 = model_identity(model)
    if (header.model_size, header.model_sha256) != (model_size, model_sha256):
        raise StateError(f"{path}: model: saved with {header.model_file} ({header.model_size} bytes, "
                         f"sha256 {header.model_sha256[:12]}), not {model.path.name} ({model_size} bytes, "
                         f"sha256 {model_sha256[:12]})")
    saved = (header.cache_type, header.cache_type_v)
    ours = (context.cache.type_k, context.cache.type_v)
    if saved != ours:
        raise StateError(f"{path}: cache_type: saved with K {saved[0]}, V {saved[1]}; the context uses K {ours[0]}, "
                          f"V {ours[1]} (-ctk/-ctv)")
    if header.n_tokens > context.n_ctx:
        raise StateError(f"{path}: n_tokens: {header.n_tokens} tokens do not fit in n_ctx={context.n_ctx} "
                         f"(saved with n_ctx={header.n_ctx}); raise -c/--ctx-size")
    widths = context.cache_widths()
    if header.caches != [(name, widths[name]) for name in views]:
        raise StateError(f"{path}: caches: the file's caches (names and widths) differ from the model's")


def model_identity(model: Model) -> tuple[int, str]:
    """(file size, SHA-256 of the GGUF header and metadata) of ``model``'s first file."""
    offsets = [t.offset for t in model.reader.tensors.values() if t.part == 0]
    size = model.path.stat().st_size
    with open(model.path, "rb") as f:
        head = f.read(min(offsets, default=size))
    return size, hashlib.sha256(head).hexdigest()


def _sequence_cells(context: Context, n_tokens: int, seq_id: int = 0) -> np.ndarray:
    """The cells holding positions 0..n_tokens-1 of sequence ``seq_id``, in position order (a
    recurrent model's: its state row, once it has read exactly those tokens)."""
    cells = context.cells
    if context.arch.recurrent:
        if seq_id:
            raise StateError("a recurrent model's state is saved from sequence 0 only")
        if cells.seq_pos_max(0) != n_tokens - 1:
            raise StateError(f"sequence 0's state has read {cells.seq_pos_max(0) + 1} tokens, not {n_tokens}; "
                             "a recurrent model saves the state after all its tokens")
        return np.arange(min(n_tokens, 1))
    hit = np.flatnonzero(cells.holds(seq_id) & (cells.pos != EMPTY) & (cells.pos < n_tokens))
    rows = hit[np.argsort(cells.pos[hit], kind="stable")]
    if not np.array_equal(cells.pos[rows], np.arange(n_tokens)):
        raise StateError(f"sequence {seq_id} does not hold positions 0..{n_tokens - 1}; nothing to save")
    return rows


def _chunks(header_json: bytes, tokens: np.ndarray, views: dict[str, np.ndarray], rows: np.ndarray) -> Any:
    yield _PREAMBLE.pack(MAGIC, VERSION, len(header_json))
    yield header_json
    yield tokens.tobytes()
    for view in views.values():
        yield np.ascontiguousarray(view[rows]).tobytes()


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(name)
    return value
