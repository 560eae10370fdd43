"""Counters of the server's work, rendered as Prometheus text with llama-server's metric names."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Metrics:
    prompt_tokens_total: int = 0
    prompt_seconds_total: float = 0.0
    tokens_predicted_total: int = 0
    tokens_predicted_seconds_total: float = 0.0
    n_decode_total: int = 0
    n_busy_slots_total: int = 0  # summed over decode steps: the mean batch occupancy is this / n_decode_total
    requests_finished_total: int = 0
    requests_failed_total: int = 0

    def add_run(self, prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float) -> None:
        self.prompt_tokens_total += prompt_n
        self.prompt_seconds_total += prompt_ms / 1e3
        self.tokens_predicted_total += predicted_n
        self.tokens_predicted_seconds_total += predicted_ms / 1e3
        self.requests_finished_total += 1

    def add_step(self, n_busy_slots: int) -> None:
        self.n_decode_total += 1
        self.n_busy_slots_total += n_busy_slots

    def add(self, other: Metrics) -> None:
        """Count ``other``'s work too (``serve --replicas`` sums its replicas')."""
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def render(self, *, requests_processing: int, requests_deferred: int, kv_cache_tokens: int,
               kv_cache_size: int) -> str:
        """The Prometheus text exposition of every metric (``/metrics``)."""
        rows = [
            ("counter", "prompt_tokens_total", "Number of prompt tokens processed.", self.prompt_tokens_total),
            ("counter", "prompt_seconds_total", "Prompt process time", self.prompt_seconds_total),
            ("counter", "tokens_predicted_total", "Number of generation tokens processed.", self.tokens_predicted_total),
            ("counter", "tokens_predicted_seconds_total", "Predict process time", self.tokens_predicted_seconds_total),
            ("counter", "n_decode_total", "Total number of llama_decode() calls", self.n_decode_total),
            ("gauge", "n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call",
             self.n_busy_slots_total / self.n_decode_total if self.n_decode_total else 0.0),
            ("counter", "requests_finished_total", "Requests that ended normally.", self.requests_finished_total),
            ("counter", "requests_failed_total", "Requests that failed inside the engine.", self.requests_failed_total),
            ("gauge", "prompt_tokens_seconds", "Average prompt throughput in tokens/s.",
             _rate(self.prompt_tokens_total, self.prompt_seconds_total)),
            ("gauge", "predicted_tokens_seconds", "Average generation throughput in tokens/s.",
             _rate(self.tokens_predicted_total, self.tokens_predicted_seconds_total)),
            ("gauge", "kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.",
             kv_cache_tokens / kv_cache_size if kv_cache_size else 0.0),
            ("gauge", "kv_cache_tokens", "KV-cache tokens.", kv_cache_tokens),
            ("gauge", "requests_processing", "Number of requests processing.", requests_processing),
            ("gauge", "requests_deferred", "Number of requests deferred.", requests_deferred),
        ]
        lines = []
        for kind, name, help_text, value in rows:
            lines += [f"# HELP llamacpp:{name} {help_text}", f"# TYPE llamacpp:{name} {kind}",
                      f"llamacpp:{name} {value}"]
        return "\n".join(lines) + "\n"


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds else 0.0
