"""``llmcore serve`` under hostile or unlucky traffic (issue 15): bodies that are too large or never
finish, tokenizer calls big enough to stall the event loop, signals during generation, and the
endpoints llama-server keeps behind a flag or a key. Time bounds are generous: the measured
times are far below them."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from test_server import ServerProcess

API_KEY = "hardening-key-7d1e"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(default_model_path):
    proc = ServerProcess(default_model_path, "-np", "2", "-c", "1024", "--body-timeout", "2", "--api-key", API_KEY)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        yield c


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _send_chunked(sock: socket.socket, total: int, chunk: int = MiB) -> None:
    """Sends ``total`` bytes as chunks until done or the server closes the connection."""
    piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    try:
        for _ in range(total // chunk):
            sock.sendall(piece)
        sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server answered and closed: the point of the test
        pass


def _status_and_body(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise AssertionError(f"connection closed after {data!r}")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), json.loads(rest[:length])


@pytest.mark.parametrize("also_content_length", [False, True], ids=["chunked", "chunked+content-length"])
def test_a_chunked_body_over_the_limit_gets_413_at_once_without_memory_growth(server, also_content_length):
    rss_before = _rss_bytes(server.process.pid)
    sock = _connect(server.url)
    declared = "Content-Length: 20\r\n" if also_content_length else ""
    sock.sendall(f"POST /tokenize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                 f"Content-Type: application/json\r\n{declared}Transfer-Encoding: chunked\r\n\r\n".encode())
    start = time.monotonic()
    sender = threading.Thread(target=_send_chunked, args=(sock, 200 * MiB), daemon=True)
    sender.start()
    status, body = _status_and_body(sock)
    elapsed = time.monotonic() - start
    sock.close()
    sender.join(timeout=30)
    assert status == 413, body
    assert body["error"]["code"] == 413 and "--max-body" in body["error"]["message"]
    assert elapsed < 3.0  # measured about 0.1 s
    assert _rss_bytes(server.process.pid) - rss_before < 80 * MiB  # the limit is 32 MiB; before the fix: +700 MB


def test_a_body_that_never_finishes_gets_408_and_is_closed(server):
    sock = _connect(server.url)
    sock.sendall(f"POST /tokenize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"content\":".encode())
    start = time.monotonic()
    status, body = _status_and_body(sock)
    assert status == 408 and "--body-timeout" in body["error"]["message"]
    assert 1.5 < time.monotonic() - start < 10  # --body-timeout 2
    assert sock.recv(1) == b""  # the connection is closed, not left for the rest of the body
    sock.close()


@pytest.mark.parametrize("first_request", [False, True], ids=["new connection", "after a response"])
def test_headers_that_never_finish_are_closed(server, first_request):
    sock = _connect(server.url)
    if first_request:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status_and_body(sock) == (200, {"status": "ok"})
    sock.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    assert sock.recv(1) == b""  # before the fix: held open for good
    assert time.monotonic() - start < 10  # --body-timeout 2
    sock.close()


def test_max_body_is_settable_and_a_body_within_it_is_served(default_model_path):
    proc = ServerProcess(default_model_path, "--max-body", "1000")
    try:
        small = httpx.post(f"{proc.url}/tokenize", json={"content": "x" * 900}, timeout=60)
        assert small.status_code == 200
        large = httpx.post(f"{proc.url}/tokenize", json={"content": "x" * 1000}, timeout=60)
        assert large.status_code == 413 and "1000 bytes" in large.json()["error"]["message"]
        chunked = httpx.post(f"{proc.url}/tokenize", content=iter([b'{"content": "', b"x" * 1000, b'"}']), timeout=60)
        assert chunked.status_code == 413
    finally:
        proc.stop()


def _worst_health_latency(url: str, busy: threading.Thread) -> float:
    """The slowest /health answer while ``busy`` runs."""
    worst = 0.0
    with httpx.Client(base_url=url, timeout=60) as client:
        busy.start()
        while busy.is_alive():
            start = time.monotonic()
            assert client.get("/health").status_code == 200
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.02)
    busy.join()
    return worst


def test_detokenize_and_tokenize_with_pieces_do_not_stall_the_server(server, http):
    answers: list[httpx.Response] = []
    ids = [i % 40000 + 100 for i in range(1024 * 1024)]
    detokenize = threading.Thread(target=lambda: answers.append(http.post("/detokenize", json={"tokens": ids})))
    assert _worst_health_latency(server.url, detokenize) < 0.5  # before the fix: stalled while it ran
    text = "The quick brown fox jumps over the lazy dog. " * 90000  # 4 MB, about a million tokens
    tokenize = threading.Thread(target=lambda: answers.append(
        http.post("/tokenize", json={"content": text, "with_pieces": True})))
    assert _worst_health_latency(server.url, tokenize) < 0.5
    assert [a.status_code for a in answers] == [200, 200]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/detokenize", {"tokens": [1] * (1024 * 1024 + 1)}, "tokens"),
    ("/tokenize", {"content": "x" * (4 * MiB + 1), "with_pieces": True}, "content"),
])
def test_tokenizer_calls_are_bounded_and_name_the_field(http, path, body, field):
    answer = http.post(path, json=body)
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["param"] == field and f"'{field}'" in error["message"]


def test_metrics_are_off_unless_asked_for_as_in_llama_server(http):
    answer = http.get("/metrics")
    assert answer.status_code == 501
    message = "This server does not support metrics endpoint. Start it with `--metrics`"  # llama-server's words
    assert answer.json()["error"] == {"message": message, "type": "not_supported_error", "param": None, "code": 501}


def test_props_and_its_model_path_need_the_key_when_one_is_set(server, http):
    assert httpx.get(f"{server.url}/props", timeout=60).status_code == 401
    assert http.get("/props").json()["model_path"].endswith(".gguf")


def _stream_lines(url: str, out: list[str], started: threading.Event) -> None:
    body = {"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 5000,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line:
                out.append(line)
                started.set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_generation_ends_every_request_cleanly_and_exits_0(default_model_path, sig):
    proc = ServerProcess(default_model_path, "-np", "5", "-c", "2560")
    streams = [[] for _ in range(4)]
    started = [threading.Event() for _ in streams]
    threads = [threading.Thread(target=_stream_lines, args=(proc.url, lines, event))
               for lines, event in zip(streams, started)]
    waiting: list[httpx.Response] = []
    threads.append(threading.Thread(target=lambda: waiting.append(httpx.post(
        f"{proc.url}/v1/completions", json={"prompt": "Once", "max_tokens": 5000, "ignore_eos": True}, timeout=60))))
    try:
        for thread in threads:
            thread.start()
        assert all(event.wait(60) for event in started)
        time.sleep(0.5)  # the non-streaming request is generating too
        start = time.monotonic()
        proc.process.send_signal(sig)
        code = proc.process.wait(timeout=30)
        elapsed = time.monotonic() - start
        for thread in threads:
            thread.join(timeout=30)
        log = proc.log()
    finally:
        proc.stop()
    assert code == 0 and elapsed < 5.0, log  # before the fix: -15/130 after the 5 s grace
    assert "Traceback" not in log and "Error" not in log, log
    for lines in streams:  # each stream ends with a final chunk, then [DONE]
        assert lines[-1] == "data: [DONE]"
        final = json.loads(lines[-2].removeprefix("data: "))
        assert final["choices"][0]["finish_reason"] == "length"
    assert waiting[0].status_code == 503
    assert waiting[0].json()["error"]["message"] == "the server is shutting down"
