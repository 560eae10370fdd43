"""Image encoding speed against llama.cpp's mtmd, interleaved, median of N: one 336x336 picture
through a random projector file shaped as LLaVA 1.5's (CLIP ViT-L/14 at 336 pixels: width 1024,
16 heads, FFN 4096, quick GELU, F16 matrices; ``--layers`` of its 24 blocks) and the ``mlp``
projector to tests/fixtures/mtmd/text.gguf's width.

    .venv/bin/python scripts/bench_mmproj.py [--layers 24] [-r 5] [-t 2]

llmcore's time is ``Projector.encode`` on ``cpu_simd`` (its plan compiled by a first encode);
llama.cpp's is ``mtmd_encode_chunk`` of llama-cpp-python 0.3.36 (``--oracle-python``, after a
first encode), each repetition in a fresh process, loading excluded on both sides.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "tests" / "fixtures" / "mtmd" / "text.gguf"
N_EMBD, N_HEAD, N_FF, IMAGE_SIZE, PATCH = 1024, 16, 4096, 336, 14


def write_mmproj(path: Path, n_layer: int, n_text_embd: int) -> None:
    from llmcore.gguf import GGUFWriter

    rng = np.random.default_rng(0)
    writer = GGUFWriter(str(path), "clip")
    for key, value in {"clip.has_vision_encoder": True, "clip.projector_type": "mlp", "clip.use_gelu": False}.items():
        writer.add_metadata(key, value)
    for key, value in {"embedding_length": N_EMBD, "feed_forward_length": N_FF, "block_count": n_layer,
                       "attention.head_count": N_HEAD, "image_size": IMAGE_SIZE, "patch_size": PATCH,
                       "projection_dim": n_text_embd}.items():
        writer.add_metadata(f"clip.vision.{key}", np.uint32(value))
    writer.add_metadata("clip.vision.attention.layer_norm_epsilon", np.float32(1e-5))
    writer.add_metadata("clip.vision.image_mean", [np.float32(0.48145466), np.float32(0.4578275), np.float32(0.40821073)])
    writer.add_metadata("clip.vision.image_std", [np.float32(0.26862954), np.float32(0.26130258), np.float32(0.27577711)])

    def matrix(name: str, n_out: int, n_in: int) -> None:
        writer.add_tensor(f"{name}.weight", rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float16))
        writer.add_tensor(f"{name}.bias", (0.1 * rng.normal(size=n_out)).astype(np.float32))

    def norm(name: str) -> None:
        writer.add_tensor(f"{name}.weight", (1 + 0.1 * rng.normal(size=N_EMBD)).astype(np.float32))
        writer.add_tensor(f"{name}.bias", (0.1 * rng.normal(size=N_EMBD)).astype(np.float32))

    n_patches = (IMAGE_SIZE // PATCH) ** 2
    writer.add_tensor("v.patch_embd.weight", rng.normal(0, 0.05, (N_EMBD, 3, PATCH, PATCH)).astype(np.float16))
    writer.add_tensor("v.class_embd", rng.normal(0, 1, N_EMBD).astype(np.float32))
    writer.add_tensor("v.position_embd.weight", rng.normal(0, 0.5, (n_patches + 1, N_EMBD)).astype(np.float32))
    norm("v.pre_ln")
    for il in range(n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            matrix(f"v.blk.{il}.{name}", N_EMBD, N_EMBD)
        norm(f"v.blk.{il}.ln1")
        norm(f"v.blk.{il}.ln2")
        matrix(f"v.blk.{il}.ffn_up", N_FF, N_EMBD)
        matrix(f"v.blk.{il}.ffn_down", N_EMBD, N_FF)
    matrix("mm.0", n_text_embd, N_EMBD)
    matrix("mm.2", n_text_embd, n_text_embd)
    writer.write()


def write_image(path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8), "RGB").save(path)


def llama_cpp_seconds(mmproj: Path, image: Path, threads: int) -> tuple[float, float]:
    """Run in the oracle's Python: load, encode once, time a second encode (wall and CPU seconds)."""
    import ctypes

    import llama_cpp
    from llama_cpp import mtmd_cpp as mtmd

    model = llama_cpp.llama_model_load_from_file(str(TEXT).encode(), llama_cpp.llama_model_default_params())
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings = False, threads, False
    ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), model, params)
    bitmap = mtmd.mtmd_helper_bitmap_init_from_file(ctx, str(image).encode(), False)
    text = mtmd.mtmd_input_text()
    prompt = b"<__media__>"
    text.text, text.text_len, text.add_special, text.parse_special = prompt, len(prompt), False, True
    chunks = mtmd.mtmd_input_chunks_init()
    assert mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) == 0
    every = [mtmd.mtmd_input_chunks_get(chunks, i) for i in range(mtmd.mtmd_input_chunks_size(chunks))]
    chunk = next(c for c in every if mtmd.mtmd_input_chunk_get_type(c) != mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT)
    assert mtmd.mtmd_encode_chunk(ctx, chunk) == 0
    started, cpu = time.perf_counter(), time.process_time()
    assert mtmd.mtmd_encode_chunk(ctx, chunk) == 0
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("-r", "--repetitions", type=int, default=5)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("--oracle-python", default="/work/venv-oracle/bin/python")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--llama-side", nargs=2, metavar=("MMPROJ", "IMAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.llama_side:
        print(*llama_cpp_seconds(Path(args.llama_side[0]), Path(args.llama_side[1]), args.threads))
        return 0
    from llmcore import LLM
    from llmcore.engine import mtmd
    from llmcore.media import image as images

    mmproj, image = args.dir / f"bench-mmproj-{args.layers}.gguf", args.dir / "bench-mmproj-336.png"
    llm = LLM(TEXT, backend="cpu_simd", n_threads=args.threads, n_ctx=1024)
    if not mmproj.exists():
        write_mmproj(mmproj, args.layers, llm.model.hparams.n_embd)
    write_image(image)
    llm = LLM(TEXT, backend="cpu_simd", n_threads=args.threads, n_ctx=1024, mmproj=mmproj)
    chunk = next(c for c in mtmd.tokenize(llm.tokenizer, llm.projector, "<__media__>", [images.load_image(image)],
                                          add_special=False) if isinstance(c, mtmd.ImageChunk))
    llm.projector.encode(chunk)  # compiles the plan
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(args.repetitions):
        chunk.embd = None
        started, cpu = time.perf_counter(), time.process_time()
        llm.projector.encode(chunk)
        ours.append(time.perf_counter() - started)
        ours_cpu.append(time.process_time() - cpu)
        run = subprocess.run([args.oracle_python, __file__, "-t", str(args.threads), "--llama-side", str(mmproj),
                              str(image)], capture_output=True, text=True, check=True)
        wall, cpu_s = (float(v) for v in run.stdout.strip().splitlines()[-1].split())
        theirs.append(wall)
        theirs_cpu.append(cpu_s)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"encode 336x336, {args.layers} blocks, {args.threads} threads: llmcore cpu_simd {a * 1e3:.0f} ms, "
          f"llama.cpp {b * 1e3:.0f} ms, ratio (llama.cpp time / ours) {b / a:.2f}; CPU time (all threads) "
          f"{statistics.median(ours_cpu) * 1e3:.0f} ms vs {statistics.median(theirs_cpu) * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
