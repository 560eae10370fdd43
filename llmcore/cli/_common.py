"""Flags shared by the commands that load a model (run, serve, perplexity, bench), named as in
llama.cpp's tools, and the code that turns them into an ``LLM``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmcore.errors import LLMCoreError
from llmcore.graph.kv_types import DEFAULT_FLASH_ATTN_CLI, KV_CACHE_TYPES, check_cache_type, parse_flash_attn


def add_model_args(parser: argparse.ArgumentParser, *, n_ctx: int = 4096) -> None:
    g = parser.add_argument_group("model and backend")
    g.add_argument("-m", "--model", metavar="FNAME",
                   help="GGUF file, catalog name (smollm2:135m, gemma3:270m), cached model name, URL or "
                   "owner/repo[:QUANT] (default: smollm2:135m, SmolLM2-135M-Instruct)")
    g.add_argument("-c", "--ctx-size", type=_positive_int, default=n_ctx, metavar="N",
                   help=f"size of the context (KV cache cells) (default: {n_ctx})")
    g.add_argument("-b", "--batch-size", type=_positive_int, default=512, metavar="N",
                   help="tokens evaluated per step while reading the prompt (default: 512)")
    g.add_argument("-t", "--threads", type=_positive_int, default=None, metavar="N",
                   help="CPU threads (default: the number of physical cores)")
    g.add_argument("--backend", default="auto", metavar="NAME",
                   help="backend to run on: auto, reference, cpu_simd, vulkan, cuda, ... (default: auto)")
    g.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", default=None, metavar="N",
                   help="layers to offload to an accelerator backend: N, 'auto' or 'all' (default: all)")
    g.add_argument("-sm", "--split-mode", default="layer", metavar="MODE",
                   help="with several devices of the accelerator backend: 'layer' shares the offloaded layers "
                        "among them, 'none' uses only --main-gpu; llama.cpp's 'row' and 'tensor' are not "
                        "supported yet (default: layer)")
    g.add_argument("-ts", "--tensor-split", type=_proportions, default=None, metavar="N0,N1,...",
                   help="the share of the offloaded layers each device takes, e.g. 3,1 (default: by free memory)")
    g.add_argument("-mg", "--main-gpu", type=_non_negative_int, default=0, metavar="INDEX",
                   help="the device for --split-mode none, numbered as `llmcore backends` lists them (default: 0)")
    g.add_argument("-ot", "--override-tensor", action="append", default=[], metavar="REGEX=BACKEND",
                   help="run weights matching REGEX (and the ops reading them) on BACKEND; repeatable")
    g.add_argument("--ray", default=None, metavar="auto|HOST:PORT",
                   help="run layers on the nodes of a Ray cluster (the ray backend plugin): 'auto' is the cluster "
                        "started on this machine, HOST:PORT its head; no other cluster is used (docs/ray.md)")
    g.add_argument("-ctk", "--cache-type-k", dest="cache_type_k", type=_cache_type("-ctk/--cache-type-k"),
                   default="f16", metavar="TYPE",
                   help=f"KV cache data type for K; allowed values: {', '.join(KV_CACHE_TYPES)} (default: f16)")
    g.add_argument("-ctv", "--cache-type-v", dest="cache_type_v", type=_cache_type("-ctv/--cache-type-v"),
                   default="f16", metavar="TYPE",
                   help=f"KV cache data type for V; allowed values: {', '.join(KV_CACHE_TYPES)}; a quantized type "
                        "needs flash attention (default: f16)")
    g.add_argument("-fa", "--flash-attn", dest="flash_attn", type=_flash_attn, default=DEFAULT_FLASH_ATTN_CLI,
                   metavar="on|off|auto",
                   help=f"set Flash Attention use ('on', 'off', or 'auto', default: '{DEFAULT_FLASH_ATTN_CLI}', as "
                        "llama.cpp's); 'auto' turns it on where every layer's backend runs it, as llama.cpp does")
    g.add_argument("--chat-template", metavar="NAME|FILE", default=None,
                   help="chat template: a llama.cpp built-in name, a jinja file, or the model's own (default)")
    g.add_argument("-v", "--verbose", "--log-verbose", action="store_true",
                   help="print the bytes each backend allocated (weights, KV cache, compute buffers)")
    a = parser.add_argument_group("adapters (llama.cpp's GGUF LoRA adapters and control vectors)")
    a.add_argument("--lora", dest="lora", action="extend", type=_files(1.0), default=[], metavar="FNAME",
                   help="path to LoRA adapter (use comma-separated values to load multiple adapters)")
    a.add_argument("--lora-scaled", dest="lora", action="extend", type=_scaled_files("--lora-scaled"),
                   metavar="FNAME:SCALE,...", help="path to LoRA adapter with user defined scaling")
    a.add_argument("--control-vector", dest="control_vectors", action="extend", type=_files(1.0), default=[],
                   metavar="FNAME", help="add a control vector (comma-separated values: several, summed)")
    a.add_argument("--control-vector-scaled", dest="control_vectors", action="extend",
                   type=_scaled_files("--control-vector-scaled"), metavar="FNAME:SCALE,...",
                   help="add a control vector with user defined scaling SCALE")
    a.add_argument("--control-vector-layer-range", type=int, nargs=2, default=None, metavar=("START", "END"),
                   help="layer range to apply the control vector(s) to, start and end inclusive "
                        "(default: every layer but the first)")


def add_context_shift_args(group: argparse._ArgumentGroup) -> None:
    """llama.cpp's --context-shift / --no-context-shift (off by default) and --keep."""
    group.add_argument("--context-shift", action=argparse.BooleanOptionalAction, default=False,
                       help="when the context fills up, drop half of the tokens after --keep and go on "
                            "(default: off: generation stops at a full context)")
    group.add_argument("--keep", type=int, default=0, metavar="N",
                       help="prompt tokens kept (after the BOS) when the context shifts; -1 = the whole prompt "
                            "(default: 0)")


def add_speculative_args(parser: argparse.ArgumentParser) -> None:
    """llama.cpp 0.3.36's speculative decoding flags (draft-simple and ngram-simple), its defaults."""
    g = parser.add_argument_group("speculative decoding")
    g.add_argument("-md", "--model-draft", "--spec-draft-model", dest="model_draft", metavar="FNAME",
                   help="draft model for speculative decoding (default: unused)")
    g.add_argument("--spec-type", default=None, metavar="none|draft-simple|ngram-simple",
                   help="type of speculative decoding (default: draft-simple with -md, else none)")
    g.add_argument("--spec-draft-n-max", type=_non_negative_int, default=3, metavar="N",
                   help="number of tokens to draft for speculative decoding (default: 3)")
    g.add_argument("--spec-draft-n-min", type=_non_negative_int, default=0, metavar="N",
                   help="minimum number of draft tokens to use for speculative decoding (default: 0)")
    g.add_argument("--spec-draft-p-min", "--draft-p-min", type=float, default=0.0, metavar="P",
                   help="minimum speculative decoding probability (greedy) (default: 0.00)")
    g.add_argument("--spec-ngram-simple-size-n", type=_positive_int, default=12, metavar="N",
                   help="ngram size N for ngram-simple speculative decoding, length of lookup n-gram (default: 12)")
    g.add_argument("--spec-ngram-simple-size-m", type=_positive_int, default=48, metavar="N",
                   help="ngram size M for ngram-simple speculative decoding, length of draft m-gram (default: 48)")


POOLING_TYPES = ("none", "mean", "cls", "last", "rank")


def add_pooling_arg(group: argparse._ArgumentGroup) -> None:
    """llama.cpp's --pooling: how an embedding model pools its tokens (default: the model's own)."""
    group.add_argument("--pooling", choices=POOLING_TYPES, default=None, metavar="{none,mean,cls,last,rank}",
                       help="pooling type for embeddings: none, mean, cls, last or rank (a reranker's "
                            "classification head); default: the model's pooling_type")


def add_mmproj_arg(parser: argparse.ArgumentParser) -> None:
    """llama.cpp's -mm/--mmproj: a multimodal projector file that lets prompts hold images."""
    parser.add_argument_group("multimodal").add_argument(
        "-mm", "--mmproj", metavar="FNAME",
        help="multimodal projector file (llama.cpp's mmproj GGUF: a CLIP or SigLIP vision encoder; projector types "
             "mlp (LLaVA 1.5 and 1.6, Yi-VL, BakLLaVA...), ldp and ldpv2 (MobileVLM), resampler (MiniCPM-V), gemma3, "
             "idefics3 (SmolVLM), qwen2vl_merger and qwen2.5vl_merger (Qwen2-VL, Qwen2.5-VL))")


def llm_options(args: argparse.Namespace, *, seed: int | None = None) -> dict[str, Any]:
    """The ``LLM`` keywords the flags describe (``serve --replicas`` hands them to each replica)."""
    from llmcore.engine.speculative import DraftParams

    draft = DraftParams(n_max=args.spec_draft_n_max, n_min=args.spec_draft_n_min, p_min=args.spec_draft_p_min,
                        ngram_size_n=args.spec_ngram_simple_size_n, ngram_size_m=args.spec_ngram_simple_size_m
                        ) if hasattr(args, "spec_type") else None
    return dict(model=args.model, backend=args.backend, n_ctx=args.ctx_size, n_batch=args.batch_size,
                n_threads=args.threads, seed=seed, cache_type_k=args.cache_type_k, cache_type_v=args.cache_type_v,
                flash_attn=args.flash_attn, chat_template=args.chat_template,
                n_gpu_layers=args.n_gpu_layers, override_tensor=args.override_tensor, split_mode=args.split_mode,
                tensor_split=args.tensor_split, main_gpu=args.main_gpu,
                embedding=getattr(args, "embedding", False), pooling=getattr(args, "pooling", None),
                lora=args.lora, control_vectors=args.control_vectors,
                control_vector_layer_range=args.control_vector_layer_range,
                draft_model=getattr(args, "model_draft", None), spec_type=getattr(args, "spec_type", None),
                draft=draft, n_seq_max=getattr(args, "parallel", 1), mmproj=getattr(args, "mmproj", None),
                ray=args.ray)


def load_llm(args: argparse.Namespace, *, seed: int | None = None) -> Any:
    """The ``LLM`` the flags describe; says on stderr which backend runs which layers."""
    from llmcore.api import LLM

    llm = LLM(**llm_options(args, seed=seed))
    print(f"llmcore: backend {llm.backend.name} ({llm.backend_reason})", file=sys.stderr)
    for layers, backend in llm.placement:
        print(f"llmcore: {layers} -> {backend}", file=sys.stderr)
    print(f"llmcore: model {llm.model.describe()}", file=sys.stderr)
    if llm.projector is not None:
        print(f"llmcore: mmproj {llm.projector.path.name} (projector {llm.projector.params.projector}, "
              f"{llm.projector.params.image_size}px images)", file=sys.stderr)
    print(f"llmcore: kv cache: {llm.context.kv_cache_line()}; {llm.plan.flash_attn_reason}", file=sys.stderr)
    if args.verbose:  # what each backend's devices are and chose (cpu_simd: its paths timed on this CPU)
        from llmcore.engine.registry import availability

        for backend in llm.plan.backends:
            for device in availability(backend.name).devices:
                print(f"llmcore: {backend.name} device {device.name}: {', '.join(device.features)}", file=sys.stderr)
        print_memory(llm)
    return llm


def print_memory(llm: Any) -> None:
    """Each backend's allocated bytes on stderr (the KV cache and compute buffers appear once the
    first step has compiled its plan)."""
    for name, used in llm.memory_used().items():
        parts = ", ".join(f"{kind} {size / 2**20:.2f} MiB" for kind, size in used.items())
        print(f"llmcore: {name} allocated {parts}", file=sys.stderr)


def _files(scale: float):
    """--lora / --control-vector: comma-separated files, each at ``scale``."""
    def parse(text: str) -> list[tuple[str, float]]:
        return [(item, scale) for item in text.split(",") if item]
    return parse


def _scaled_files(flag: str):
    """--lora-scaled / --control-vector-scaled: comma-separated FNAME:SCALE items."""
    def parse(text: str) -> list[tuple[str, float]]:
        items = []
        for item in text.split(","):
            path, _, scale = item.rpartition(":")
            try:
                items.append((path, float(scale)))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{item!r}: the format is FNAME:SCALE") from None
            if not path:
                raise argparse.ArgumentTypeError(f"{item!r}: the format is FNAME:SCALE")
        return items
    return parse


def _cache_type(flag: str):
    def parse(text: str) -> str:
        try:
            return check_cache_type(text, flag)
        except LLMCoreError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{flag}: ")) from None
    return parse


def _flash_attn(text: str) -> str:
    try:
        return parse_flash_attn(text)
    except LLMCoreError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("-fa/--flash-attn: ")) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _proportions(text: str) -> list[float]:
    """llama.cpp's --tensor-split: proportions separated by commas (or slashes)."""
    try:
        values = [float(part) for part in text.replace("/", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes numbers separated by commas, e.g. 3,1; got {text!r}") from None
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError(f"proportions must be non-negative with a positive sum, got {text!r}")
    return values


def print_timings(llm, timings=None) -> None:
    """llama.cpp's perf lines on stderr, for the last generation or the given ``timings``."""
    t = llm.last.timings if timings is None else timings
    lines = [
        f"load time = {llm.load_ms:10.2f} ms",
        f"prompt eval time = {t.prompt_ms:10.2f} ms / {t.prompt_n:5d} tokens ({_per(t.prompt_ms, t.prompt_n)})",
        f"eval time = {t.predicted_ms:10.2f} ms / {t.predicted_n:5d} runs   ({_per(t.predicted_ms, t.predicted_n)})",
        f"total time = {llm.load_ms + t.prompt_ms + t.predicted_ms:10.2f} ms / {t.prompt_n + t.predicted_n:5d} tokens",
    ]
    if t.draft_n:  # llama-server's line
        lines.append(f"draft acceptance rate = {t.draft_n_accepted / t.draft_n:0.5f} ({t.draft_n_accepted:5d} accepted / "
                     f"{t.draft_n:5d} generated)")
    for line in lines:
        print(f"llmcore_perf: {line:>}", file=sys.stderr)


MIN_CHECKED_TOKENS = 32  # fewer decoded tokens time the sampler and start-up more than the model


def check_plan_speed(llm) -> None:
    """After a generation long enough to time, have the next plan measure the backends'
    calibrations again if the decode speed it reached is over 1.3x ``llmcore plan``'s or under half
    of it (and say so)."""
    from llmcore.engine.plan import Speed

    t = llm.last.timings
    if t.predicted_n < MIN_CHECKED_TOKENS or t.predicted_ms <= 0:
        return
    if llm.plan.speed_missed(Speed(0.0, 1e3 * t.predicted_n / t.predicted_ms, llm.plan.n_batch)):
        print("llmcore: decode speed far from the plan's calibrated estimate: the next plan measures "
              "the calibration again", file=sys.stderr)


def _per(ms: float, n: int) -> str:
    if not n or not ms:
        return "      n/a ms per token,       n/a tokens per second"
    return f"{ms / n:8.2f} ms per token, {1e3 * n / ms:8.2f} tokens per second"
