"""``llmcore serve --slot-save-path``: llama-server's POST /slots/{id}?action=save|restore|erase. A
slot saved, the server restarted and the slot restored continues with the tokens the first server
gave; a state saved from another model is refused. (A tiny random llama: two short server runs.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from llmcore import LLM

FIXTURES = Path(__file__).parent / "fixtures"
BASE = FIXTURES / "adapters" / "base.gguf"
PROMPT = "hello world, the slot remembers this prompt"


def _serve(*args: str):
    from test_server import ServerProcess

    return ServerProcess(BASE, "-c", "256", "-np", "2", "--backend", "cpu_simd", "-fa", "off", *args)


def _complete(http: httpx.Client, **fields) -> dict:
    reply = http.post("/completion", json={"prompt": PROMPT, "n_predict": 12, "temperature": 0, "ignore_eos": True,
                                           "id_slot": 1, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_restored_slot_continues_after_a_restart(tmp_path):
    server = _serve("--slot-save-path", str(tmp_path))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            first = _complete(http)
            saved = http.post("/slots/1?action=save", json={"filename": "one.bin"}).json()
            n_cached = len(first["tokens"]) - 1 + first["tokens_evaluated"]  # the prompt and all but the last token
            assert saved["id_slot"] == 1 and saved["filename"] == "one.bin" and saved["n_saved"] == n_cached
            assert saved["n_written"] == (tmp_path / "one.bin").stat().st_size and "save_ms" in saved["timings"]
            assert http.post("/slots/1?action=erase").json() == {"id_slot": 1, "n_erased": n_cached}
            for bad, status, message in ((("/slots/1?action=save", {"filename": "../x"}), 400, "Invalid filename"),
                                         (("/slots/7?action=save", {"filename": "x"}), 400, "Invalid slot ID"),
                                         (("/slots/1?action=fly", {}), 400, "Invalid action")):
                reply = http.post(bad[0], json=bad[1])
                assert reply.status_code == status and message in reply.text
    finally:
        server.stop()
    LLM(FIXTURES / "arch" / "phi3.gguf", backend="reference", n_ctx=64).save_state(tmp_path / "other.bin")

    server = _serve("--slot-save-path", str(tmp_path))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            restored = http.post("/slots/1?action=restore", json={"filename": "one.bin"}).json()
            assert restored["n_restored"] == n_cached and restored["n_read"] == saved["n_written"]
            again = _complete(http)
            assert again["tokens_cached"] == len(_prompt_tokens()) - 1  # only the prompt's last token is read again
            assert again["tokens"] == first["tokens"]
            refused = http.post("/slots/0?action=restore", json={"filename": "other.bin"})
            assert refused.status_code == 400 and "Unable to restore slot" in refused.text and "model" in refused.text
    finally:
        server.stop()


def _prompt_tokens() -> list[int]:
    from llmcore.tokenizer import Tokenizer

    return Tokenizer.from_gguf(BASE).tokenize(PROMPT)


def test_slot_actions_need_a_save_path():
    server = _serve()
    try:
        reply = httpx.post(f"{server.url}/slots/0?action=erase", timeout=30)
        assert reply.status_code == 501 and "--slot-save-path" in reply.text
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _tests_dir_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
