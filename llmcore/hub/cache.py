"""The model cache directory and its manifest (where each cached file came from, and its sha256).

Layout: ``<cache_dir>/<name>`` for each model file, ``<name>.part`` while it downloads, and
``manifest.json`` mapping names to ``{"sha256", "source", "url"}``. The manifest is rewritten
atomically (temporary file + rename) under an advisory lock, so concurrent pulls cannot corrupt it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmcore.hub.errors import HubError
from llmcore.paths import cache_dir

MANIFEST_NAME = "manifest.json"
PART_SUFFIX = ".part"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class CachedModel:
    """One model file in the cache. ``sha256``/``source``/``url`` are None when not recorded."""

    name: str
    path: Path
    size: int
    sha256: str | None
    source: str | None
    url: str | None = None


def list_cached() -> list[CachedModel]:
    """Every model in the cache, sorted by name: manifest entries plus any other ``.gguf`` dropped there."""
    directory = cache_dir()
    entries = _read_manifest(directory)
    names = {name for name in entries if (directory / name).is_file()}
    if directory.is_dir():
        names.update(path.name for path in directory.glob("*.gguf") if path.is_file())
    return [_cached_model(directory, name, entries.get(name, {})) for name in sorted(names)]


def find_cached(key: str) -> CachedModel | None:
    """The cached model whose name, recorded source reference or URL is ``key``; no network."""
    for model in list_cached():
        if key in (model.name, model.source, model.url):
            return model
    return None


def part_path(dest: Path) -> Path:
    """Where ``dest`` is written until it is complete and verified."""
    return dest.with_name(dest.name + PART_SUFFIX)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (model files are gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def commit(part: Path, dest: Path, expected_sha256: list[str]) -> str:
    """Verify ``part`` against every expected sha256, then atomically rename it to ``dest``.

    A mismatching part is deleted (resuming it would only reproduce the corruption).
    Returns the file's sha256.
    """
    actual = sha256_file(part)
    for expected in expected_sha256:
        if actual != expected.lower():
            part.unlink(missing_ok=True)
            raise HubError(f"{dest.name}: sha256 mismatch: expected {expected.lower()}, got {actual}")
    os.replace(part, dest)
    return actual


def record(name: str, *, sha256: str, source: str, url: str | None) -> None:
    """Remember where the cached file ``name`` came from and its checksum."""
    directory = cache_dir()
    with _manifest_lock(directory):
        entries = _read_manifest(directory)
        entries[name] = {"sha256": sha256, "source": source, "url": url}
        temporary = directory / f".manifest-{secrets.token_hex(8)}.json"
        try:
            with temporary.open("x", encoding="utf-8") as stream:
                json.dump({"version": 1, "models": entries}, stream, indent=2, sort_keys=True)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, directory / MANIFEST_NAME)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _cached_model(directory: Path, name: str, entry: dict) -> CachedModel:
    path = directory / name
    return CachedModel(
        name=name,
        path=path,
        size=path.stat().st_size,
        sha256=entry.get("sha256"),
        source=entry.get("source"),
        url=entry.get("url"),
    )


def _read_manifest(directory: Path) -> dict[str, dict]:
    # The manifest is only a cache of facts: an unreadable one is treated as empty and rewritten.
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        models = data["models"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {name: entry for name, entry in models.items() if isinstance(entry, dict)}


@contextlib.contextmanager
def _manifest_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic rename still prevents torn files
        yield
        return
    with (directory / ".manifest.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
