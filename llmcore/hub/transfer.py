"""HTTP transfers with the standard library: a resumable, checksummed file download and a JSON GET.

A download writes ``<dest>.part``, resumes it with ``Range: bytes=N-`` after a dropped connection
(or in a later process), and only renames it to ``dest`` once its sha256 matches what was expected:
the ``--sha256`` the user gave and/or the hub's ``X-Linked-Etag`` (Hugging Face sends the LFS file's
sha256 there, on the redirect that leads to the CDN).
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

from llmcore.hub.cache import commit, part_path
from llmcore.hub.errors import HubError

RETRIES = 5  # consecutive attempts that add no bytes before giving up
BACKOFF_S = 0.5  # first retry delay, doubled on each consecutive failure
TIMEOUT_S = 30.0  # per socket operation, not the whole transfer
_CHUNK = 1 << 20
_USER_AGENT = "llmcore/0.1"
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class _Truncated(Exception):
    """The server closed the connection before sending the whole body."""


def download(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    headers: dict[str, str] | None = None,
    progress: bool = True,
) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify it, and return its sha256."""
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    linked_sha256: dict[str, str] = {}
    failures = 0
    largest = part.stat().st_size if part.exists() else 0
    with tqdm(
        desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
        disable=None if progress else True,  # None: only on a terminal
    ) as bar:
        while True:
            try:
                _fetch_into(url, part, headers or {}, linked_sha256, bar)
                break
            except urllib.error.HTTPError as error:
                if error.code == 416 and _part_is_complete(part, error.headers):
                    break  # an earlier run fetched every byte but stopped before verifying
                if error.code == 416:  # our part is longer than the file: start over
                    part.unlink(missing_ok=True)
                elif error.code not in _RETRYABLE_STATUS:
                    raise HubError(f"{_redact(url)}: HTTP {error.code} {error.reason}") from None
                reason: object = f"HTTP {error.code}"
            except (_Truncated, OSError, http.client.HTTPException) as error:
                reason = error
            size = part.stat().st_size if part.exists() else 0
            failures = 0 if size > largest else failures + 1
            largest = max(largest, size)
            if failures > RETRIES:
                raise HubError(f"{_redact(url)}: download failed after {RETRIES} retries: {reason}")
            time.sleep(BACKOFF_S * 2 ** max(failures - 1, 0))
    expected = [value for value in (expected_sha256, linked_sha256.get("sha256")) if value]
    return commit(part, dest, expected)


def get_json(url: str, headers: dict[str, str] | None = None) -> object:
    """GET a JSON document; HTTP and network errors become a one-line ``HubError``."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise HubError(f"{_redact(url)}: HTTP {error.code} {error.reason}") from None
    except (OSError, http.client.HTTPException) as error:
        raise HubError(f"{_redact(url)}: {error}") from None
    except ValueError as error:
        raise HubError(f"{_redact(url)}: invalid JSON: {error}") from None


def _fetch_into(url: str, part: Path, headers: dict[str, str], linked_sha256: dict, bar: tqdm) -> None:
    """One attempt: request the bytes after what ``part`` holds and append them to it."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **headers})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    opener = urllib.request.build_opener(_RedirectHandler(linked_sha256))
    with opener.open(request, timeout=TIMEOUT_S) as response:
        _remember_linked_sha256(response.headers, linked_sha256)
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Truncated(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            total = int(match.group(2)) if match.group(2) != "*" else None
        else:  # 200: the server ignored Range, so the body starts at byte 0
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar.reset(total=total)
        bar.update(offset)
        with part.open("ab" if offset else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
            received = out.tell()
    # urllib reports a body cut short as a normal end of data, so compare with the announced size.
    if total is not None and received < total:
        raise _Truncated(f"connection closed after {received} of {total} bytes")


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects, keeping the hub's checksum header and not leaking credentials to a CDN."""

    def __init__(self, linked_sha256: dict) -> None:
        self.linked_sha256 = linked_sha256

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        _remember_linked_sha256(headers, self.linked_sha256)
        redirected = super().redirect_request(req, fp, code, msg, headers, newurl)
        if redirected is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            redirected.remove_header("Authorization")
        return redirected


def _part_is_complete(part: Path, headers) -> bool:  # noqa: ANN001 (email.message.Message)
    total = (headers.get("Content-Range") or "").removeprefix("bytes */")
    return total.isdigit() and part.exists() and part.stat().st_size == int(total)


def _remember_linked_sha256(headers, linked_sha256: dict) -> None:  # noqa: ANN001 (email.message.Message)
    # X-Linked-Etag holds the sha256 only for LFS files; a git blob's etag is a sha1 and is ignored.
    value = (headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
    if _SHA256_HEX.fullmatch(value):
        linked_sha256["sha256"] = value


def _redact(url: str) -> str:
    """The URL without query string or credentials, for error messages."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
