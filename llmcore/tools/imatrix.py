"""Importance matrices exactly as llama.cpp's ``llama-imatrix`` (tools/imatrix/imatrix.cpp) makes them.

The text is tokenized once (with BOS as the model says) and cut into chunks of ``n_ctx`` tokens; each
chunk is evaluated from an empty cache with its first token replaced by BOS (when the model adds
one), ``n_batch // n_ctx`` chunks at a time as parallel sequences, every token's logits requested.
For every weight matrix multiplication of a layer (``blk.*``, and ``output.weight`` with
``process_output``) over 16 rows or more, the squares of the activations that multiply the weight
are summed per column, row after row in float32, and the rows counted. The perplexity of each
chunk's second half is printed as it goes. The sums are written as llama-imatrix's GGUF (or legacy)
file every ``output_frequency`` chunks and at the end.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.engine.kv_cache import RANGE_ALIGNMENT
from llmcore.errors import LLMCoreError
from llmcore.gguf.imatrix import ImatrixFile, read_imatrix, write_imatrix_gguf, write_imatrix_legacy
from llmcore.tools.perplexity import log_softmax_at

#: llama-imatrix ignores multiplications of fewer rows ("why are small batches ignored (<16 tokens)?")
MIN_ROWS = 16


@dataclass
class ImatrixOptions:
    """llama-imatrix's parameters, with its defaults."""

    out_file: str = "imatrix.gguf"  # -o
    output_format: str | None = None  # --output-format: "gguf" or "dat"; None: GGUF, warning on another suffix
    n_ctx: int = 512  # -c: tokens per chunk
    n_batch: int = 2048  # -b
    n_ubatch: int = 512  # -ub
    n_chunks: int = -1  # --chunks: at most this many (-1: all)
    from_chunk: int = 0  # --chunk: skip this many first
    compute_ppl: bool = True  # --ppl / --no-ppl
    process_output: bool = False  # --process-output
    parse_special: bool = False  # --parse-special
    output_frequency: int = 10  # -ofreq: save every N chunks
    save_frequency: int = 0  # --save-frequency: also keep a copy FILE.at_N every N chunks
    dataset: str = ""  # the text file's name (-f), recorded in the output
    in_files: list[str] = field(default_factory=list)  # --in-file: matrices to start from

    @property
    def legacy(self) -> bool:
        return self.output_format == "dat"

    @property
    def n_seq(self) -> int:
        """Chunks evaluated together, as parallel sequences."""
        return max(1, self.n_batch // self.n_ctx)

    @property
    def context_size(self) -> int:
        """The KV cells a context needs: a chunk, or with parallel sequences a range of cells of
        each's own (as llama.cpp's per-sequence caches; ranges start at multiples of 64 cells)."""
        if self.n_seq == 1:
            return self.n_ctx
        return self.n_seq * -(-self.n_ctx // RANGE_ALIGNMENT) * RANGE_ALIGNMENT


@dataclass
class _Stats:
    values: np.ndarray  # float32 [matrices * columns]: sums of squared activations
    counts: np.ndarray  # int64 [matrices]: rows summed


class ImatrixCollector:
    """llama-imatrix's ``IMatrixCollector``: the per-tensor sums, the chunk count, the saves.
    ``chunk_size`` is the tokens of one chunk (``-c``); ``log`` takes warnings."""

    def __init__(self, options: ImatrixOptions, chunk_size: int, log: Callable[[str], None] = print) -> None:
        self.options = options
        self.chunk_size = chunk_size
        self.log = log
        self.stats: dict[str, _Stats] = {}
        self.datasets: list[str] = []
        self.last_chunk = 0

    def wants(self, tensor: str, rows: int) -> bool:
        """Whether llama-imatrix collects a multiplication by ``tensor`` over ``rows`` rows."""
        return rows >= MIN_ROWS and (tensor.startswith("blk.") or
                                     (self.options.process_output and tensor == "output.weight"))

    def collect(self, tensor: str, activations: np.ndarray, ubatch_rows: int | None = None) -> None:
        """Add one dense multiplication's activations (float32 [rows, columns]), part of a
        micro-batch of ``ubatch_rows`` (default: these rows), whose size decides whether llama-imatrix
        looks at it. Sums grow row after row, so a micro-batch's rows may come in parts."""
        rows, columns = activations.shape
        if not self.wants(tensor, rows if ubatch_rows is None else ubatch_rows):
            return
        entry = self.stats.get(tensor)
        if entry is not None and len(entry.counts) > 1 and (entry.counts == entry.counts[0]).all():
            entry.counts = entry.counts[:1]  # one count per dense tensor, as after merging old files
        if entry is None:
            entry = self.stats[tensor] = _Stats(np.zeros(columns, np.float32), np.zeros(1, np.int64))
        elif len(entry.values) != columns:
            raise LLMCoreError(f"inconsistent size for {tensor} ({len(entry.values)} vs {columns})")
        # float32, one row after another, as ggml's loop adds them
        squares = np.square(activations, dtype=np.float32)
        entry.values = np.add.reduce(np.concatenate([entry.values[None], squares]), axis=0)
        if not np.isfinite(entry.values).all():
            raise LLMCoreError(f"non-finite values detected in {tensor}")
        for i in range(len(entry.counts)):
            entry.counts[i] += rows
            self._count_chunks(int(entry.counts[i]))

    def _count_chunks(self, count: int) -> None:
        n_chunk = count // self.chunk_size
        if n_chunk <= self.last_chunk:
            return
        step = n_chunk - self.last_chunk
        self.last_chunk = n_chunk
        if (self.last_chunk % self.options.output_frequency) // step == 0:
            self.save()
        if self.options.save_frequency > 0 and (self.last_chunk % self.options.save_frequency) // step == 0:
            self.save(self.last_chunk)

    def load(self, path: str) -> None:
        """Add a saved matrix (``--in-file``), as llama-imatrix's ``load_imatrix``: a legacy file's
        mean squares are turned back into sums of ``chunk_size`` rows per call."""
        stored = read_imatrix(path)
        for name, (sums, counts) in stored.entries.items():
            entry = self.stats.get(name)
            if stored.legacy:
                if entry is None:
                    entry = self.stats[name] = _Stats(np.zeros(len(sums), np.float32), np.zeros(1, np.int64))
                entry.values = entry.values + sums * np.float32(self.chunk_size)
                entry.counts = entry.counts + int(counts[0]) * self.chunk_size
                continue
            if entry is None:
                entry = self.stats[name] = _Stats(np.zeros(len(sums), np.float32), np.zeros(len(counts), np.int64))
            elif len(sums) != len(entry.values):
                raise LLMCoreError(f"{path}: mismatched sums size for {name}: {len(sums)} != {len(entry.values)}")
            elif len(entry.counts) == 1 and len(counts) > 1:
                entry.counts = np.full(len(counts), entry.counts[0], np.int64)
            elif len(counts) != len(entry.counts):
                raise LLMCoreError(f"{path}: mismatched counts size for {name}: {len(counts)} != {len(entry.counts)}")
            entry.values = entry.values + sums
            entry.counts = entry.counts + counts
        self.datasets += stored.datasets
        largest = max((int(c) for entry in self.stats.values() for c in entry.counts), default=0)
        self.last_chunk = largest // self.chunk_size

    def imatrix(self) -> ImatrixFile:
        datasets = self.datasets + ([self.options.dataset] if self.options.dataset else [])
        entries = {name: (entry.values, entry.counts) for name, entry in self.stats.items()}
        return ImatrixFile(entries, datasets, self.last_chunk, self.chunk_size, legacy=self.options.legacy)

    def save(self, n_chunk: int = -1) -> None:
        """Write the matrix to the output file (``FILE.at_N`` for a copy after N chunks)."""
        path = self.options.out_file
        if self.options.output_format is None and not path.endswith(".gguf"):
            self.log("warning: saving imatrix using GGUF format with a different suffix than .gguf; "
                     "for the previous imatrix format, use --output-format dat")
        if n_chunk > 0:
            path += f".at_{n_chunk}"
        for name, entry in sorted(self.stats.items()):
            zeros = int((entry.counts == 0).sum())
            if zeros:
                self.log(f"warning: entry '{name:>40}' has partial data "
                         f"({100.0 * (len(entry.counts) - zeros) / len(entry.counts):.2f}%)")
        if self.options.legacy:
            for name in write_imatrix_legacy(path, self.imatrix()):
                self.log(f"warning: entry '{name:>40}' has no data - skipping")
        else:
            write_imatrix_gguf(path, self.imatrix())


@dataclass
class ImatrixRun:
    chunk_ppls: list[float]  # the running perplexity after each chunk (empty without ppl)
    ppl: float | None
    uncertainty: float | None


def compute_imatrix(llm, text: str, collector: ImatrixCollector,
                    on_chunk: Callable[[int, float], None] | None = None) -> ImatrixRun:
    """Evaluate ``text`` chunk by chunk as llama-imatrix does, feeding ``collector``. ``llm``'s
    context must hold ``n_batch // n_ctx`` chunks (at least one)."""
    options = collector.options
    n_ctx = options.n_ctx
    tokens = llm.tokenize(text, add_special=True, parse_special=options.parse_special)
    if options.from_chunk > 0:
        if (options.from_chunk + 2) * n_ctx >= len(tokens):
            raise LLMCoreError(f"there will be not enough tokens left after removing {options.from_chunk} chunks")
        tokens = tokens[options.from_chunk * n_ctx:]
    if len(tokens) < 2 * n_ctx:
        raise LLMCoreError(f"you need at least {2 * n_ctx} tokens for a context of {n_ctx} tokens; "
                           f"the data file you provided tokenizes to only {len(tokens)} tokens")
    n_seq = options.n_seq
    n_batch = min(options.n_batch, n_seq * n_ctx)
    if not (n_batch < n_ctx or n_batch % n_ctx == 0):
        raise LLMCoreError(f"-b {options.n_batch} must be below -c {n_ctx} or a multiple of it")
    if llm.n_ctx < options.context_size:
        raise LLMCoreError(f"the context holds {llm.n_ctx} cells; {n_seq} chunks of {n_ctx} need {options.context_size}")
    if n_seq > 1:  # each sequence in cells of its own, so that each computes what it would alone
        llm.context.cells.partition(n_seq)
    n_ubatch = min(options.n_ubatch, n_batch)
    n_chunk_max = len(tokens) // n_ctx
    n_chunk = n_chunk_max if options.n_chunks < 0 else min(options.n_chunks, n_chunk_max)
    first = n_ctx // 2
    add_bos = llm.tokenizer.add_bos
    nll = nll2 = 0.0
    count = 0
    ppls: list[float] = []

    ubatch_rows = 0
    llm.context.observe_mul_mat_inputs(lambda tensor, x: collector.collect(tensor, x, ubatch_rows))
    try:
        for i in range(0, n_chunk, n_seq):
            n_seq_batch = min(n_seq, n_chunk - i)
            llm.reset()
            logprobs = np.zeros((n_seq_batch, n_ctx), np.float64)
            for j in range(0, n_ctx, n_batch):
                size = min(n_ctx - j, n_batch)
                chunks = [list(tokens[(i + s) * n_ctx + j:(i + s) * n_ctx + j + size]) for s in range(n_seq_batch)]
                if add_bos and j == 0:
                    for chunk in chunks:
                        chunk[0] = llm.tokenizer.bos_id
                for ubatch in _equal_split(chunks, j, n_ubatch):
                    # llama.cpp's per-sequence caches run each sequence's attention on its own
                    # (ggml picks its flash attention path by the queries of one sequence): so does
                    # this, one sequence's part of the micro-batch after another
                    ubatch_rows = len(ubatch)
                    for part in _by_sequence(ubatch):
                        logits = llm.context.decode(part, n_batch=len(part))
                        if options.compute_ppl:
                            _score(logits, part, tokens, i, n_ctx, first, logprobs)
            if options.compute_ppl:
                for s in range(n_seq_batch):
                    scored = logprobs[s, first:n_ctx - 1]
                    nll -= float(scored.sum())
                    nll2 += float(np.square(scored).sum())
                    count += len(scored)
                    ppls.append(math.exp(nll / count))
                    if on_chunk:
                        on_chunk(i + s + 1, ppls[-1])
    finally:
        llm.context.observe_mul_mat_inputs(None)
    if not options.compute_ppl:
        return ImatrixRun(ppls, None, None)
    mean, mean2 = nll / count, nll2 / count
    var = mean2 - mean * mean
    ppl = math.exp(mean)
    return ImatrixRun(ppls, ppl, math.sqrt(var / (count - 1)) * ppl if var > 0 else None)


def _equal_split(chunks: list[list[int]], start_pos: int, n_ubatch: int) -> list[Batch]:
    """The micro-batches llama.cpp makes of one batch of equally long sequences: one sequence's
    tokens in runs of ``n_ubatch`` (``split_simple``); several, as ``split_equal`` does for its
    per-sequence caches, the same number of tokens from each, sequence after sequence."""
    per_seq = max(1, n_ubatch // len(chunks))
    ubatches = []
    for offset in range(0, len(chunks[0]), per_seq):
        ids, positions, seqs = [], [], []
        for seq, chunk in enumerate(chunks):
            part = chunk[offset:offset + per_seq]
            ids += part
            positions += range(start_pos + offset, start_pos + offset + len(part))
            seqs += [seq] * len(part)
        ubatches.append(Batch(ids, positions, seqs, np.ones(len(ids), bool)))
    return ubatches


def _by_sequence(ubatch: Batch) -> list[Batch]:
    """The consecutive runs of one sequence's tokens in ``ubatch``."""
    cuts = [0, *(np.flatnonzero(np.diff(ubatch.seq_ids)) + 1), len(ubatch)]
    return [ubatch.slice(start, stop) for start, stop in zip(cuts, cuts[1:])]


def _score(logits: np.ndarray, ubatch: Batch, tokens: list[int], first_chunk: int, n_ctx: int, first: int,
           logprobs: np.ndarray) -> None:
    """log p(next token) for the rows of ``ubatch`` that llama-imatrix scores (positions ``first``
    to ``n_ctx - 2`` of each chunk), into ``logprobs[sequence, position]``."""
    rows = np.flatnonzero((ubatch.positions >= first) & (ubatch.positions < n_ctx - 1))
    if not len(rows):
        return
    seqs, positions = ubatch.seq_ids[rows], ubatch.positions[rows]
    targets = np.asarray(tokens, np.int64)[(first_chunk + seqs) * n_ctx + positions + 1]
    logprobs[seqs, positions] = log_softmax_at(logits[rows], targets)


def run_imatrix(llm, text: str | None, options: ImatrixOptions, log: Callable[[str], None] | None = None,
                on_chunk: Callable[[int, float], None] | None = None) -> ImatrixRun | None:
    """llama-imatrix's main: load ``--in-file`` matrices, collect over ``text`` (None: only combine
    the loaded ones, with ``llm`` None) and save the result."""
    log = log or (lambda line: print(line, file=sys.stderr))
    collector = ImatrixCollector(options, options.n_ctx, log)
    for path in options.in_files:
        log(f"loading imatrix from '{path}'")
        collector.load(path)
    result = None
    if text is not None:
        result = compute_imatrix(llm, text, collector, on_chunk)
    elif not options.in_files:
        raise LLMCoreError("no prompt provided (-f) and no precomputed matrices (--in-file) to combine")
    collector.save()
    return result
