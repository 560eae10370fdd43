"""Model references, as llama.cpp (``-mu``, ``-hf``) and Ollama users write them, turned into a URL.

Accepted forms:

- ``http(s)://host/path/model.gguf``: any URL;
- ``hf://owner/repo[@revision]/path/model.gguf``, or ``owner/repo/path/model.gguf``: one file of a
  Hugging Face repository;
- ``[hf://]owner/repo[@revision][:QUANT]``: the repository's ``.gguf`` whose name carries the quant
  tag (default ``Q4_K_M``, as in llama.cpp), found in the repository's file list.

The hub is ``$HF_ENDPOINT`` (default https://huggingface.co), like huggingface_hub; ``$HF_TOKEN``,
when set, is sent to it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit

from llmcore.hub.errors import HubError
from llmcore.hub.transfer import get_json

DEFAULT_QUANT = "Q4_K_M"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HF_REF = re.compile(
    rf"(?P<owner>{_NAME})/(?P<repo>{_NAME})(?:@(?P<revision>[^/:@]+))?"
    rf"(?::(?P<quant>[A-Za-z0-9._-]+)|/(?P<path>.+))?"
)
_SPLIT_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class RemoteFile:
    """Where a reference's file is downloaded from, and the name it gets in the cache."""

    url: str
    name: str
    headers: dict[str, str] = field(default_factory=dict)


def is_remote_ref(ref: str) -> bool:
    """Whether ``ref`` reads as a URL or a Hugging Face reference (not as a local file name)."""
    if ref.startswith(("http://", "https://", "hf://")):
        return True
    match = _HF_REF.fullmatch(ref)
    # "dir/model.gguf" is a missing local file, not repository "model.gguf" of owner "dir".
    return bool(match) and not (match["path"] is None and ref.lower().endswith(".gguf"))


def resolve_ref(ref: str) -> RemoteFile:
    """The URL and cache name of ``ref``; an ``owner/repo:QUANT`` reference asks the hub's API."""
    if ref.startswith(("http://", "https://")):
        name = PurePosixPath(unquote(urlsplit(ref).path)).name
        if not name or name in (".", ".."):
            raise HubError(f"{ref}: the URL does not end with a file name")
        return RemoteFile(url=ref, name=name)
    match = _HF_REF.fullmatch(ref.removeprefix("hf://"))
    if not is_remote_ref(ref) or not match:
        raise HubError(
            f"{ref}: not a model reference (expected a URL, hf://owner/repo/file.gguf, "
            "owner/repo/file.gguf or owner/repo:QUANT)"
        )
    owner, repo, revision = match["owner"], match["repo"], match["revision"] or "main"
    endpoint = hf_endpoint()
    headers = {"Authorization": f"Bearer {token}"} if (token := os.environ.get("HF_TOKEN")) else {}
    path = match["path"] or _pick_quant(endpoint, owner, repo, match["revision"], match["quant"], headers)
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(f"{ref}: invalid file path {path!r} in the repository")
    return RemoteFile(
        url=f"{endpoint}/{owner}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}",
        # The owner and repo are part of the name so that equally named files of two repos coexist.
        name=f"{owner}_{repo}_{path.replace('/', '_')}",
        headers=headers,
    )


def hf_endpoint() -> str:
    """The Hugging Face hub to use: ``$HF_ENDPOINT`` or https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _pick_quant(
    endpoint: str, owner: str, repo: str, revision: str | None, quant: str | None, headers: dict[str, str]
) -> str:
    """The repository's ``.gguf`` file for a quant tag, like llama.cpp's ``-hf owner/repo:QUANT``."""
    quant = quant or DEFAULT_QUANT
    api = f"{endpoint}/api/models/{owner}/{repo}"
    if revision:
        api += f"/revision/{quote(revision, safe='')}"
    listing = get_json(api, headers)
    siblings = listing.get("siblings") if isinstance(listing, dict) else None
    if not isinstance(siblings, list):
        raise HubError(f"{api}: the response has no 'siblings' file list")
    ggufs = [
        name for entry in siblings
        if isinstance(entry, dict) and isinstance(name := entry.get("rfilename"), str)
        and name.lower().endswith(".gguf") and "mmproj" not in name.lower()  # skip vision projectors
    ]
    # The tag must stand alone: Q4_K matches "model-Q4_K.gguf" but not "model-Q4_K_M.gguf" or "IQ4_K".
    tag = re.compile(rf"(?<![a-z0-9]){re.escape(quant.lower())}(?![a-z0-9_])")
    candidates = [name for name in ggufs if tag.search(PurePosixPath(name).name.lower())]
    if not candidates:
        available = ", ".join(sorted(PurePosixPath(name).name for name in ggufs)[:8]) or "none"
        raise HubError(f"{owner}/{repo}: no .gguf file for quant {quant} (available: {available})")
    chosen = min(candidates, key=lambda name: (name.count("/"), len(name), name))
    if (shard := _SPLIT_SHARD.search(chosen)) and int(shard.group(2)) > 1:
        raise HubError(f"{owner}/{repo}: {chosen} is split into {int(shard.group(2))} files, not supported yet")
    return chosen
