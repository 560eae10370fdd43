"""``llmcore plan``: where each layer would run, the memory each backend would allocate and the
expected speeds, before any weight is loaded (the same plan ``run`` executes)."""

from __future__ import annotations

import argparse
import json

from llmcore.cli._common import add_model_args

_MIB = 2**20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="show placement, memory and expected speed before loading",
                              description="Layers to backends, bytes per backend (weights, KV cache, compute "
                                          "buffers) and expected prompt and decode tokens/s from each backend's "
                                          "calibrated speed, without loading the weights. The calibration "
                                          "(a few seconds) is timed at first use and cached per backend, its "
                                          "kernels, threads and CPU model; a run or `llmcore bench` that "
                                          "measures a prompt or decode speed over 1.3x the estimate has "
                                          "that speed's figures timed again (best of both kept), one under "
                                          "half of it all of them afresh.")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmcore.hub import resolve_model
    from llmcore.engine.model import Model
    from llmcore.engine.plan import Plan

    from llmcore.engine.registry import configure_backend

    model = Model(resolve_model(args.model))
    if args.ray is not None:
        configure_backend("ray", args.ray)
    plan = Plan.build(model, args.backend, n_gpu_layers=args.n_gpu_layers, override_tensor=args.override_tensor,
                      split_mode=args.split_mode, tensor_split=args.tensor_split, main_gpu=args.main_gpu,
                      n_ctx=args.ctx_size, n_batch=args.batch_size, cache_type_k=args.cache_type_k,
                      cache_type_v=args.cache_type_v, flash_attn=args.flash_attn, n_threads=args.threads)
    memory = plan.memory()
    fallbacks = plan.fallbacks()
    speed = plan.speed()
    if args.json:
        print(json.dumps({
            "model": str(model.path),
            "backend": plan.backend.name,
            "backend_reason": plan.backend_reason,
            "n_ctx": plan.n_ctx, "n_batch": plan.n_batch, "cache_type_k": plan.cache.type_k,
            "cache_type_v": plan.cache.type_v, "flash_attn": plan.cache.flash_attn,
            "layers": [{"layers": layers, "backend": name} for layers, name in plan.placement.describe()],
            "reasons": plan.layer_reasons,
            "fallbacks": fallbacks,
            "memory": {name: m.as_dict() for name, m in memory.items()},
            "expected": {"prompt_tokens_per_s": speed.prompt_tokens_per_s, "n_prompt": speed.n_prompt,
                         "decode_tokens_per_s": speed.decode_tokens_per_s,
                         "decode_s_by_backend": speed.decode_s_by_backend},
        }, indent=2))
        return 0
    print(f"model: {model.describe()}")
    print(f"context {plan.n_ctx} cells ({plan.cache.describe()}; {plan.flash_attn_reason}), batch {plan.n_batch}")
    print("\nlayers:")
    for layers, name in plan.placement.describe():
        print(f"  {layers:24} -> {name}")
    print("\nwhy:")
    for name, why in plan.layer_reasons.items():
        print(f"  {name}: {why}")
    for move, ops in fallbacks.items():
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1]))
        print(f"  {move}: ops it does not support run on the CPU backend ({listed})"
              if move.endswith(f" -> {plan.placement.cpu.name}") else
              f"  {move}: ops it does not support run on the reference backend, the last resort ({listed})")
    print(f"\n{'backend':10} {'weights':>12} {'kv':>12} {'compute':>12} {'total':>12} {'decode ms/token':>15}")
    for name, m in memory.items():
        print(f"{name:10} {m.weights / _MIB:8.2f} MiB {m.kv / _MIB:8.2f} MiB {m.compute / _MIB:8.2f} MiB "
              f"{m.total / _MIB:8.2f} MiB {1e3 * speed.decode_s_by_backend[name]:12.2f} ms")
    print(f"\nexpected: prompt {speed.prompt_tokens_per_s:.1f} tokens/s (pp{speed.n_prompt}), "
          f"decode {speed.decode_tokens_per_s:.1f} tokens/s (tg{speed.n_gen})")
    return 0
