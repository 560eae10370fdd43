#!/usr/bin/env python
"""Bounded load on ``llmcore serve`` over loopback: a fixed number of clients send a mix of requests
(chat and completions, streamed and not, logprobs, early disconnects, malformed bodies, and issue 15's
attacks: oversized chunked bodies, rule-chain grammars, deep nesting, a thousand DRY breakers, extreme
sampling values, huge detokenize requests) for a fixed time. Passes when no response has a 5xx status
and no request a transport error, and the server's RSS stays within 10% of its value after warm-up.

    python scripts/soak_server.py                      # 10 minutes, -np 4, 6 clients, default model
    python scripts/soak_server.py --duration 60 --clients 3
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PROMPTS = ["Tell me about the moon.", "What is 17 * 3?", "Write a limerick about a cat.", "Explain recursion.",
           "List three rivers.", "Why is the sky blue?", "Translate 'good morning' to French.", "Say hi."]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str, Path]:
    log = Path(tempfile.mkstemp(prefix="llmcore-soak-", suffix=".log")[1])
    command = [sys.executable, "-m", "llmcore", "serve", "--port", "0", "-np", str(args.parallel),
               "-c", str(args.ctx_size), "--backend", args.backend, "--metrics"]
    if args.model:
        command += ["-m", args.model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "API at http://" in line:
                return process, line.split("API at ", 1)[1].rstrip("/"), log
        if process.poll() is not None:
            sys.exit(f"llmcore serve exited:\n{log.read_text()}")
        time.sleep(0.2)
    process.kill()
    sys.exit("llmcore serve did not start")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Client(threading.Thread):
    """Sends random requests until ``stop_at``, counting the statuses it gets."""

    def __init__(self, url: str, seed: int, stop_at: float, statuses: collections.Counter, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=300)
        self.rng = random.Random(seed)
        self.stop_at = stop_at
        self.statuses = statuses
        self.lock = lock
        self.failures: list[str] = []

    def run(self) -> None:
        actions = [self.chat, self.chat_stream, self.completion, self.native_stream, self.disconnect,
                   self.malformed, self.invalid, self.tokenize, self.metrics, self.attack]
        weights = [4, 4, 3, 2, 2, 1, 1, 1, 1, 2]
        while time.monotonic() < self.stop_at:
            action = self.rng.choices(actions, weights)[0]
            try:
                status = action()
            except (httpx.HTTPError, OSError) as error:
                status = f"transport error: {type(error).__name__}"
                self.failures.append(f"{action.__name__}: {error!r}")
            with self.lock:
                self.statuses[status] += 1

    def _sampling(self) -> dict:
        if self.rng.random() < 0.5:
            return {"temperature": 0}
        return {"temperature": self.rng.uniform(0.2, 1.5), "top_k": self.rng.choice([0, 20, 40]),
                "top_p": self.rng.choice([0.9, 1.0]), "seed": self.rng.randrange(1000),
                "repeat_penalty": self.rng.choice([1.0, 1.1])}

    def _messages(self) -> list[dict]:
        return [{"role": "user", "content": self.rng.choice(PROMPTS)}]

    def chat(self) -> int:
        body = {"messages": self._messages(), "max_tokens": self.rng.randint(1, 48), **self._sampling()}
        if self.rng.random() < 0.3:
            body |= {"logprobs": True, "top_logprobs": self.rng.randint(0, 5)}
        return self.http.post("/v1/chat/completions", json=body).status_code

    def chat_stream(self) -> int:
        body = {"messages": self._messages(), "max_tokens": self.rng.randint(1, 48), "stream": True, **self._sampling()}
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            for _ in response.iter_lines():
                pass
            return response.status_code

    def completion(self) -> int:
        body = {"prompt": self.rng.choice(PROMPTS), "max_tokens": self.rng.randint(1, 48),
                "logprobs": self.rng.choice([None, 2]), "stop": self.rng.choice([None, ["."], ["\n", " the"]]),
                **self._sampling()}
        return self.http.post("/v1/completions", json=body).status_code

    def native_stream(self) -> int:
        body = {"prompt": self.rng.choice(PROMPTS), "n_predict": self.rng.randint(1, 32), "stream": True,
                "n_probs": self.rng.choice([0, 3]), **self._sampling()}
        with self.http.stream("POST", "/completion", json=body) as response:
            for _ in response.iter_lines():
                pass
            return response.status_code

    def disconnect(self) -> int:
        """A client that reads a few chunks of a long reply and hangs up."""
        body = {"messages": self._messages(), "max_tokens": 400, "stream": True, "ignore_eos": True}
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            for n, _ in enumerate(response.iter_lines()):
                if n >= self.rng.randint(1, 10):
                    break
            return response.status_code

    def malformed(self) -> int:
        content = self.rng.choice([b'{"messages": [', b"null", b"\xff\xfe", b'{"prompt": 1e999999}', b"[]"])
        return self.http.post(self.rng.choice(["/v1/chat/completions", "/v1/completions", "/completion"]),
                              content=content, headers={"Content-Type": "application/json"}).status_code

    def invalid(self) -> int:
        body = self.rng.choice([{"messages": "hi"}, {"messages": [{"role": "user"}], "max_tokens": -5, "n": 3},
                                {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
                                {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
                                {"messages": [{"role": "user", "content": "x " * 5000}]}])
        return self.http.post("/v1/chat/completions", json=body).status_code

    def attack(self) -> int:
        """One of the attacks issue 15 found to stall or break the server; each must get a 4xx (or run)."""
        prompt = {"prompt": "Hi", "n_predict": 4}
        kind = self.rng.randrange(6)
        if kind == 0:
            return self.oversized_chunked_body()
        if kind == 1:
            n = self.rng.choice([300, 5000, 20000])
            chain = "root ::= r0\n" + "".join(f"r{i} ::= r{i + 1}\n" for i in range(n)) + f'r{n} ::= "x"\n'
            return self.http.post("/completion", json=prompt | {"grammar": chain}).status_code
        if kind == 2:
            return self.http.post("/completion", json=prompt | {"grammar": "root ::= " + "(" * 1000 + '"x"' + ")" * 1000}).status_code
        if kind == 3:
            breakers = [f"b{i}" for i in range(1000)]
            return self.http.post("/completion", json=prompt | {"dry_multiplier": 0.8, "dry_sequence_breakers": breakers}).status_code
        if kind == 4:
            extreme = self.rng.choice([{"seed": -5}, {"dynatemp_range": 1e308}, {"logit_bias": [["²", 1]]},
                                       {"temperature": 1e-300}, {"repeat_penalty": 0}, {"logit_bias": {"1": "Infinity"}}])
            return self.http.post("/completion", json=prompt | extreme).status_code
        return self.http.post("/detokenize", json={"tokens": [1] * self.rng.choice([1000, 2_000_000])}).status_code

    def oversized_chunked_body(self) -> int:
        """40 MiB in 1 MiB chunks, never announced by Content-Length, over a raw socket: the server
        answers 413 before the body ends and closes, which an HTTP client that reads only after
        sending would report as a dropped connection; this one reads between chunks."""
        url = httpx.URL(str(self.http.base_url))
        with socket.create_connection((url.host, url.port), timeout=60) as sock:
            sock.sendall(b"POST /completion HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"100000\r\n" + b"x" * 2**20 + b"\r\n"
            for _ in range(40):
                if select.select([sock], [], [], 0)[0]:
                    break
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                sock.sendall(b"0\r\n\r\n")
            status_line = sock.makefile("rb").readline()
        if not status_line.startswith(b"HTTP/1.1 "):
            raise httpx.RemoteProtocolError(f"no status line after an oversized chunked body: {status_line!r}")
        return int(status_line.split()[1])

    def tokenize(self) -> int:
        return self.http.post("/tokenize", json={"content": self.rng.choice(PROMPTS), "with_pieces": True}).status_code

    def metrics(self) -> int:
        return self.http.get(self.rng.choice(["/metrics", "/slots", "/props", "/health"])).status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default: 600)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the RSS baseline is taken (default: 60)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients (default: 6)")
    parser.add_argument("--parallel", type=int, default=4, help="server slots, -np (default: 4)")
    parser.add_argument("--ctx-size", type=int, default=4096, help="server context, -c (default: 4096)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", default=None, help="GGUF path (default: the default model)")
    args = parser.parse_args()

    process, url, log = start_server(args)
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    try:
        start = time.monotonic()
        clients = [Client(url, seed, start + args.duration, statuses, lock) for seed in range(args.clients)]
        for client in clients:
            client.start()
        baseline = peak = None
        while any(c.is_alive() for c in clients):
            time.sleep(5)
            elapsed = time.monotonic() - start
            rss = rss_bytes(process.pid)
            if baseline is None and elapsed >= args.warmup:
                baseline = rss
            if baseline is not None:
                peak = max(peak or 0, rss)
            with lock:
                done = sum(statuses.values())
            print(f"{elapsed:6.0f} s  rss {rss / 2**20:7.1f} MiB  requests {done}", flush=True)
        failures = [f for c in clients for f in c.failures]
    finally:
        process.terminate()
        process.wait(timeout=30)
    server_errors = {s: n for s, n in statuses.items() if not isinstance(s, int) or s >= 500}
    print("statuses:", dict(sorted(statuses.items(), key=str)))
    growth = peak / baseline - 1 if baseline else float("nan")
    print(f"rss after warm-up {baseline / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB ({100 * growth:+.1f}%)")
    ok = not server_errors and not failures and growth <= 0.10
    if not ok:
        print("FAILED:", json.dumps({"5xx or transport errors": server_errors, "failures": failures[:10]}, default=str))
        print(log.read_text()[-4000:])
    log.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
