"""The chat page at ``/`` in headless Chromium (Debian's ``chromium``), driven over the DevTools
protocol: a typed message gets a streamed reply, the stop button ends a reply and frees the slot,
and a screenshot of the page is taken."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from test_server import API_KEY, ServerProcess, decoded_until_idle, n_decoded

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
ARTIFACTS = Path(os.environ.get("LLMCORE_TEST_ARTIFACTS", tempfile.gettempdir()))


class DevTools:
    """A minimal Chrome DevTools Protocol client over a hand-written WebSocket (RFC 6455)."""

    def __init__(self, ws_url: str) -> None:
        url = urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self._next_id = 0

    def call(self, method: str, **params) -> dict:
        self._next_id += 1
        self._send(json.dumps({"id": self._next_id, "method": method, "params": params}).encode())
        while True:
            message = json.loads(self._receive())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _send(self, payload: bytes) -> None:
        header = bytes([0x81])  # FIN, text frame
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _receive(self) -> bytes:
        message = b""
        while True:
            first, second = self._exactly(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exactly(8))[0]
            message += self._exactly(n)
            if first & 0x80:  # FIN
                return message

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server(default_model_path):
    proc = ServerProcess(default_model_path, "-np", "2", "-c", "2048", "--api-key", API_KEY)
    yield proc
    proc.stop()


@contextlib.contextmanager
def open_page(url: str) -> Iterator[DevTools]:
    """Headless Chromium showing the chat page at ``url``, with the test's API key typed in."""
    profile = tempfile.mkdtemp(prefix="llmcore-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1000,700", f"{url}/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _devtools_port(browser, profile)
        deadline = time.monotonic() + 60
        targets = []
        while time.monotonic() < deadline and not targets:
            listed = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            targets = [t for t in listed if t["type"] == "page" and t["url"].startswith(url)]
            time.sleep(0.2)
        tools = DevTools(targets[0]["webSocketDebuggerUrl"])
        _wait_for(lambda: _shows_the_chat_page(tools, url), 60)
        tools.evaluate(f"document.getElementById('api-key').value = {json.dumps(API_KEY)}")
        yield tools
        tools.close()
    finally:
        browser.terminate()
        browser.wait(timeout=15)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(server):
    """The page on the module's server, greedy (temperature 0) so that replies can be compared."""
    with open_page(server.url) as tools:
        tools.evaluate("document.getElementById('temperature').value = '0'")
        yield tools


def _devtools_port(browser: subprocess.Popen, profile: str) -> int:
    """Chromium writes the port it picked to DevToolsActivePort in its profile."""
    marker = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if browser.poll() is not None:
            raise RuntimeError(f"chromium exited: {browser.stderr.read()}")
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


def _shows_the_chat_page(tools: DevTools, url: str) -> bool:
    """True once the chat page has loaded. The target is listed under the page's URL while
    about:blank, already complete, is still its document."""
    return tools.evaluate(f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete'"
                          " && document.getElementById('api-key') !== null")


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")


def _send(page: DevTools, text: str, max_tokens: int) -> None:
    page.evaluate(f"document.getElementById('max-tokens').value = '{max_tokens}'")
    page.evaluate(f"document.getElementById('input').value = {json.dumps(text)}")
    page.evaluate("document.getElementById('send').click()")


LAST_REPLY = "[...document.querySelectorAll('.msg.assistant')].at(-1)"


def test_a_typed_message_gets_a_streamed_markdown_reply(page, server, tmp_path):
    _send(page, "Write a short list of three fruits.", max_tokens=40)
    partial: set[str] = set()

    def finished() -> bool:
        state = page.evaluate(f"({{text: {LAST_REPLY}?.textContent || '', streaming: "
                              f"!!{LAST_REPLY}?.classList.contains('streaming')}})")
        if state["streaming"] and state["text"]:
            partial.add(state["text"])
        return bool(state["text"]) and not state["streaming"]

    _wait_for(finished, 120)
    assert partial, "the reply never showed while it was streaming"
    reply = page.evaluate("conversation.at(-1)")
    assert reply["role"] == "assistant"
    # the page showed exactly what the API answers for the same conversation (greedy; the page's request
    # was this fresh server's first, so it read its prompt in one batch: so does this one)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
        expected = http.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "Write a short list of three fruits."}],
            "max_tokens": 40, "temperature": 0, "cache_prompt": False}).json()["choices"][0]["message"]["content"]
    assert reply["content"] == expected
    html = page.evaluate(f"{LAST_REPLY}.innerHTML")
    assert "<script" not in html
    png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    shot = ARTIFACTS / "llmcore-webchat.png"
    shot.write_bytes(png)
    width, height = struct.unpack(">II", png[16:24])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and width >= 500 and height >= 300 and len(png) > 10_000, shot


def test_markdown_is_rendered_and_html_is_escaped(page):
    html = page.evaluate("Markdown.render('**bold** <img src=x onerror=alert(1)> `a<b`\\n\\n- one\\n- two\\n\\n"
                         "[x](javascript:alert(1)) [ok](https://example.org/?a=1&b=2)')")
    assert "<strong>bold</strong>" in html and "<ul><li>one</li><li>two</li></ul>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<code>a&lt;b</code>" in html
    assert 'href="javascript' not in html and '<a href="https://example.org/?a=1&amp;b=2"' in html


def test_stop_button_ends_the_reply_and_frees_the_slot(page, server):
    _send(page, "Tell me a very long story about a dragon.", max_tokens=2000)
    _wait_for(lambda: bool(page.evaluate(f"{LAST_REPLY}?.textContent")), 120)
    assert page.evaluate("!document.getElementById('stop').hidden")
    page.evaluate("document.getElementById('stop').click()")
    _wait_for(lambda: page.evaluate("document.getElementById('status').textContent") == "stopped", 10)
    assert page.evaluate("document.getElementById('stop').hidden")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        left_at = n_decoded(http)
        assert decoded_until_idle(http) < left_at + 100, "the slot kept generating after Stop"


def _unreadable(text: str) -> list[str]:
    """Characters a reader cannot read: U+FFFD, control characters other than line breaks and tabs,
    surrogates, private-use and unassigned code points."""
    return [c for c in text if c == "\ufffd" or (unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\n\t")]


def _reply_at_the_pages_defaults(page: DevTools, text: str) -> str:
    """Clear the conversation, send ``text`` with the page's own settings (temperature 0.8, 512
    tokens) and wait for the whole reply; its text as the page shows it."""
    page.evaluate("document.getElementById('clear').click()")
    for field in ("temperature", "max-tokens"):
        page.evaluate(f"(e => e.value = e.defaultValue)(document.getElementById('{field}'))")
    page.evaluate(f"document.getElementById('input').value = {json.dumps(text)}")
    page.evaluate("document.getElementById('send').click()")
    _wait_for(lambda: bool(page.evaluate(f"{LAST_REPLY}?.textContent")) and page.evaluate(
        f"!{LAST_REPLY}.classList.contains('streaming')"), 300)
    return page.evaluate(f"{LAST_REPLY}.textContent")


def test_a_reply_cut_inside_a_character_shows_no_replacement_character(default_model_path):
    """Issue 15's garbage reply: a reply of emoji cut in half by the 512-token limit; the half
    character used to be shown as U+FFFD. The server's default grammar allows only emoji, and at the
    page's defaults seed 297 (llama.cpp's random stream) writes 512 tokens of them, the last emoji
    left without its last byte."""
    server = ServerProcess(default_model_path, "--api-key", API_KEY, "--seed", "297", "-fa", "off",
                           "--grammar", "root ::= [\U0001F600-\U0001F64F]+")
    try:
        with open_page(server.url) as page:
            reply = _reply_at_the_pages_defaults(page, "Say hi.")
            assert page.evaluate("document.getElementById('status').textContent").startswith("512 tokens")
    finally:
        server.stop()
    assert reply.startswith("😅😆😍") and not _unreadable(reply), reply[-20:]


def test_twenty_replies_at_the_pages_defaults_are_readable(page):
    try:
        for run in range(20):
            reply = _reply_at_the_pages_defaults(page, "Say hi.")
            assert reply.strip() and not _unreadable(reply), (run, reply)
    finally:
        page.evaluate("document.getElementById('clear').click()")
        page.evaluate("document.getElementById('temperature').value = '0'")
