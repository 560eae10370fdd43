"""Make the multimodal goldens of tests/test_mtmd.py: tiny random-weight pairs of a text model and a
CLIP vision projector (``mmproj``), PNG images of several sizes and aspect ratios, and what llama.cpp's
mtmd (llama-cpp-python 0.3.36's ``llama_cpp.mtmd_cpp``) computes for them.

    PYTHONPATH=/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        /work/venv-oracle/bin/python scripts/make_mmproj_goldens.py [PROJECTOR...]

Writes into ``tests/fixtures/mtmd/``: ``text.gguf`` (scripts/make_arch_goldens.py's tiny llama) and
``text-gemma3.gguf`` (its tiny Gemma 3), ``mmproj-<projector>.gguf`` (``mlp``: LLaVA 1.5's;
``mlp_norm``: Yi-VL's, an ``mlp`` file with ``mm.1``/``mm.3``/``mm.4``; ``mlp-anyres``: LLaVA 1.6's, an
``mlp`` file with ``image_grid_pinpoints``; ``ldp`` and ``ldpv2``: MobileVLM's and MobileVLM V2's, 48x48 pixels in 2x2 patches; ``resampler``:
MiniCPM-V 2.6's, for text-minicpmv.gguf (a tiny llama 128 wide with MiniCPM-V's slice tokens);
``gemma3``: a SigLIP ViT and
Gemma 3's pooling projector, for text-gemma3.gguf; ``idefics3``: a SigLIP ViT and SmolVLM's pixel
shuffle, for text-smolvlm.gguf, the tiny llama with SmolVLM's image tokens in its vocabulary;
``qwen2vl_merger``: Qwen2-VL's ViT (2-D rotary positions, two patch kernels, 8-pixel patches merged
2x2) for text-qwen2vl.gguf, a tiny qwen2vl with M-RoPE sections 2, 3, 3 and its vision tokens;
``qwen2.5vl_merger``: Qwen2.5-VL's (RMS norms, gated SiLU FFN, 112-pixel attention windows in every
other block) for the same text model),
``<image>.png`` and ``<projector>.npz`` holding, per image, the prompt's
chunks as llama.cpp's ``mtmd_tokenize`` cuts them (``<image>.n_chunks``; chunk i a text chunk's tokens
``<image>.chunk<i>.tokens`` or an image chunk's embeddings, ``mtmd_encode_chunk`` /
``mtmd_get_output_embd``: ``<image>.chunk<i>.embd`` float32 [tokens, n_embd]), the logits of the prompt's last token after
``mtmd_helper_eval_chunks`` (``<image>.logits``), the position it returns (``<image>.n_past``) and 6
greedy tokens after it (``<image>.greedy``).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_arch_goldens  # noqa: E402
from make_arch_goldens import TinyModel, gemma3, llama, qwen2  # noqa: E402

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mtmd"
PROMPT = "USER: <__media__>\nwhat is in the picture? ASSISTANT:"
#: name: (width, height): square, wide, tall, larger than the encoder's input, smaller than a patch row
IMAGES = {"square": (56, 56), "wide": (90, 40), "tall": (33, 80), "large": (200, 150), "small": (9, 7)}
N_GREEDY = 6
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def write_mmproj(path: Path, projector: str, n_text_embd: int, seed: int) -> None:
    """A CLIP ViT of 3 blocks, width 32, 4 heads, 56x56 pixels in 14x14 patches (16 patches and the
    class embedding), pre-LN, quick GELU; the projector maps its features to ``n_text_embd``. For
    ``gemma3`` a SigLIP ViT instead: 96x96 pixels in 8x8 patches (144, no class embedding, 4x4
    average-pooled into 9 tokens: the default scale factor, not written), post-LN, GELU."""
    rng = np.random.default_rng(seed)
    siglip = projector in ("gemma3", "idefics3", "resampler")
    qwen = projector in ("qwen2vl_merger", "qwen2.5vl_merger")
    qwen25 = projector == "qwen2.5vl_merger"  # RMS norms without biases, a gated SiLU FFN, windows
    n_embd, n_ff, n_layer = 32, 64, 3
    # MobileVLM's projectors are written for 24x24 patches; Qwen2-VL's images take any size
    image_size, patch = {"gemma3": (96, 8), "idefics3": (48, 8), "ldp": (48, 2), "ldpv2": (48, 2),
                         "qwen2vl_merger": (64, 8), "qwen2.5vl_merger": (64, 8)}.get(projector, (56, 14))
    tensors: dict[str, np.ndarray] = {}

    def matrix(name: str, n_out: int, n_in: int, bias: bool = True) -> None:
        tensors[f"{name}.weight"] = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)
        if bias:
            tensors[f"{name}.bias"] = (0.1 * rng.normal(size=n_out)).astype(np.float32)

    def norm(name: str, n: int) -> None:
        tensors[f"{name}.weight"] = (1 + 0.1 * rng.normal(size=n)).astype(np.float32)
        if not qwen25:
            tensors[f"{name}.bias"] = (0.1 * rng.normal(size=n)).astype(np.float32)

    # Qwen2-VL's 3-D convolution is stored as two kernels, one per frame
    for name in ("v.patch_embd.weight", "v.patch_embd.weight.1") if qwen else ("v.patch_embd.weight",):
        tensors[name] = rng.normal(0, 1 / np.sqrt(3 * patch * patch), (n_embd, 3, patch, patch)).astype(np.float16)
    if not siglip and not qwen:
        tensors["v.class_embd"] = rng.normal(0, 1, n_embd).astype(np.float32)
    # MiniCPM-V buckets any grid into a 70 x 70 table of positions; Qwen2-VL's are rotary
    n_pos = 70 * 70 if projector == "resampler" else (image_size // patch) ** 2 + (not siglip)
    if not qwen:
        tensors["v.position_embd.weight"] = rng.normal(0, 0.5, (n_pos, n_embd)).astype(np.float32)
    norm("v.post_ln" if siglip or qwen else "v.pre_ln", n_embd)
    for il in range(n_layer):
        p = f"v.blk.{il}"
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            matrix(f"{p}.{name}", n_embd, n_embd)
        norm(f"{p}.ln1", n_embd)
        norm(f"{p}.ln2", n_embd)
        matrix(f"{p}.ffn_up", n_ff, n_embd)
        if qwen25:
            matrix(f"{p}.ffn_gate", n_ff, n_embd)
        matrix(f"{p}.ffn_down", n_embd, n_ff)
    if projector in ("mlp", "mlp-anyres"):
        matrix("mm.0", n_text_embd, n_embd)
        matrix("mm.2", n_text_embd, n_text_embd)
    elif projector == "mlp_norm":
        matrix("mm.0", n_text_embd, n_embd)
        norm("mm.1", n_text_embd)
        matrix("mm.3", n_text_embd, n_text_embd)
        norm("mm.4", n_text_embd)
    elif projector == "gemma3":  # stored [n_embd, text n_embd]: clip.cpp multiplies it transposed
        tensors["mm.input_projection.weight"] = rng.normal(0, 1 / np.sqrt(n_embd), (n_embd, n_text_embd)).astype(np.float32)
        tensors["mm.soft_emb_norm.weight"] = (1 + 0.1 * rng.normal(size=n_embd)).astype(np.float32)
    elif projector == "ldpv2":  # the depthwise kernel in F16, as converted files hold it
        matrix("mm.model.mlp.0", n_text_embd, n_embd)
        matrix("mm.model.mlp.2", n_text_embd, n_text_embd)
        tensors["mm.model.peg.0.weight"] = rng.normal(0, 1 / 3, (1, n_text_embd, 3, 3)).astype(np.float16)
        tensors["mm.model.peg.0.bias"] = (0.1 * rng.normal(size=n_text_embd)).astype(np.float32)
    elif projector == "ldp":  # two MobileNetV3 blocks, squeeze-and-excitation to a quarter of the channels
        matrix("mm.model.mlp.1", n_text_embd, n_embd)
        matrix("mm.model.mlp.3", n_text_embd, n_text_embd)
        for block in (1, 2):
            p = f"mm.model.mb_block.{block}.block"
            tensors[f"{p}.0.0.weight"] = rng.normal(0, 1 / 3, (n_text_embd, 1, 3, 3)).astype(np.float16)
            norm(f"{p}.0.1", n_text_embd)
            matrix(f"{p}.1.fc1", n_text_embd // 4, n_text_embd)
            matrix(f"{p}.1.fc2", n_text_embd, n_text_embd // 4)
            matrix(f"{p}.2.0", n_text_embd, n_text_embd, bias=False)
            norm(f"{p}.2.1", n_text_embd)
    elif projector == "resampler":  # 16 queries, one 128-wide head
        tensors["resampler.query"] = rng.normal(0, 1, (16, n_text_embd)).astype(np.float32)
        tensors["resampler.pos_embed_k"] = rng.normal(0, 1, (16, n_text_embd)).astype(np.float32)  # unused
        matrix("resampler.kv", n_text_embd, n_embd, bias=False)
        for name in ("q", "kv", "post"):
            norm(f"resampler.ln_{name}", n_text_embd)
        for name in ("q", "k", "v", "out"):
            matrix(f"resampler.attn.{name}", n_text_embd, n_text_embd)
        matrix("resampler.proj", n_text_embd, n_text_embd, bias=False)
    elif projector == "idefics3":  # 2x2 windows of patches shuffled into rows of 4 n_embd
        matrix("mm.model.fc", n_text_embd, 4 * n_embd, bias=False)
    elif qwen:  # the merger: each 2x2 block's patches joined, Linear(4 n_embd, 4 n_embd), GELU, Linear
        matrix("mm.0", 4 * n_embd, 4 * n_embd)
        matrix("mm.2", n_text_embd, 4 * n_embd)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name(f"tiny-random-mmproj-{projector}")
    writer.add_bool("clip.has_vision_encoder", True)
    # Yi-VL's mlp_norm is an "mlp" with mm.3 (clip.cpp)
    writer.add_string("clip.projector_type", "mlp" if projector in ("mlp_norm", "mlp-anyres") else projector)
    writer.add_bool("clip.use_gelu", siglip)
    if qwen25:  # SiLU; every second block attends to the whole image, the others in 112-pixel windows
        writer.add_bool("clip.use_silu", True)
        writer.add_uint32("clip.vision.n_wa_pattern", 2)
    for key, value in {"embedding_length": n_embd, "feed_forward_length": n_ff, "block_count": n_layer,
                       "attention.head_count": 4, "image_size": image_size, "patch_size": patch,
                       "projection_dim": n_text_embd}.items():
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6 if qwen else 1e-5)
    writer.add_array("clip.vision.image_mean", IMAGE_MEAN)
    if projector == "mlp-anyres":  # LLaVA 1.6's candidate resolutions (width, height), tiles of 56
        writer.add_array("clip.vision.image_grid_pinpoints", [112, 56, 56, 112, 112, 112])
    if projector == "resampler":  # MiniCPM-V 2.6's slice tokens
        writer.add_int32("clip.minicpmv_version", 3)
        writer.add_uint32("clip.minicpmv_query_num", 16)
    if projector == "idefics3":  # tiles of 48 pixels (6x6 patches, 9 tokens) from images resized to 96
        writer.add_uint32("clip.vision.projector.scale_factor", 2)
        writer.add_uint32("clip.vision.preproc_image_size", 96)
    writer.add_array("clip.vision.image_std", IMAGE_STD)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_image(path: Path, width: int, height: int, seed: int) -> None:
    """A smooth random picture (gradients and blobs, so resizing has something to blend) as PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.3, 2).tolist() + [rng.uniform(0, 6)]
        channels.append(127.5 + 127.5 * np.sin(fx * x + fy * y + phase))
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)


def oracle(text_path: Path, mmproj_path: Path, image_path: Path) -> dict[str, np.ndarray]:
    import llama_cpp
    from llama_cpp import mtmd_cpp as mtmd

    model = llama_cpp.llama_model_load_from_file(str(text_path).encode(), llama_cpp.llama_model_default_params())
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch, cparams.n_threads = 256, 256, 256, 2
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings = False, 2, False
    mctx = mtmd.mtmd_init_from_file(str(mmproj_path).encode(), model, params)
    assert mctx, "mtmd_init_from_file failed"
    bitmap = mtmd.mtmd_helper_bitmap_init_from_file(mctx, str(image_path).encode(), False)
    text = mtmd.mtmd_input_text()
    prompt = PROMPT.encode()
    text.text, text.text_len, text.add_special, text.parse_special = prompt, len(prompt), True, True
    chunks = mtmd.mtmd_input_chunks_init()
    bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
    assert mtmd.mtmd_tokenize(mctx, chunks, ctypes.byref(text), bitmaps, 1) == 0
    n_embd = llama_cpp.llama_model_n_embd(model)
    out: dict[str, np.ndarray] = {"n_chunks": np.array(mtmd.mtmd_input_chunks_size(chunks), np.int32)}
    for i in range(mtmd.mtmd_input_chunks_size(chunks)):
        chunk = mtmd.mtmd_input_chunks_get(chunks, i)
        if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
            n = ctypes.c_size_t()
            ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
            out[f"chunk{i}.tokens"] = np.array(ids[: n.value], np.int32)
        else:
            n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            assert mtmd.mtmd_encode_chunk(mctx, chunk) == 0
            embd = mtmd.mtmd_get_output_embd(mctx)
            out[f"chunk{i}.embd"] = np.ctypeslib.as_array(embd, shape=(n_tokens * n_embd,)).reshape(n_tokens, n_embd).copy()
    n_past = llama_cpp.llama_pos(0)
    assert mtmd.mtmd_helper_eval_chunks(mctx, ctx, chunks, 0, 0, 256, True, ctypes.byref(n_past)) == 0
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
    out["logits"] = logits
    greedy, pos = [], n_past.value
    for _ in range(N_GREEDY):
        token = int(np.argmax(logits))
        greedy.append(token)
        batch = llama_cpp.llama_batch_get_one((llama_cpp.llama_token * 1)(token), 1)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        pos += 1
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
    out["greedy"] = np.array(greedy, np.int32)
    out["n_past"] = np.array(n_past.value, np.int32)  # the text's next position (M-RoPE: images take fewer)
    mtmd.mtmd_input_chunks_free(chunks)
    mtmd.mtmd_bitmap_free(bitmap)
    mtmd.mtmd_free(mctx)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return out


def gemma3_text(m: TinyModel) -> None:
    """make_arch_goldens' tiny Gemma 3 with a window of 40 positions: both of its layers slide, and
    the image (positions 22 to 30) reaches the prompt's last token (70) through them."""
    gemma3(m)
    m.metadata["attention.sliding_window"] = 40


#: tokens that mtmd looks up by their text (SmolVLM's, MiniCPM-V's), in place of the tiny vocabulary's last
#: ones (type 1: normal, 3: control)
QWEN2VL_TOKENS = {510: ("<|vision_start|>", 3), 511: ("<|vision_end|>", 3)}
SMOLVLM_TOKENS = {509: ("\n\n", 1), 510: ("<fake_token_around_image>", 3), 511: ("<global-img>", 3)}
MINICPMV_TOKENS = {508: ("<image>", 3), 509: ("</image>", 3), 510: ("<slice>", 3), 511: ("</slice>", 3)}


class _VocabWithTokens:
    """A GGUF writer whose token list and types get ``replacements`` ({id: (text, type)}) on their way."""

    def __init__(self, writer: gguf.GGUFWriter, replacements: dict[int, tuple[str, int]]) -> None:
        self._writer, self._replacements = writer, replacements

    def add_token_list(self, tokens: list) -> None:
        tokens = list(tokens)
        for i, (text, _) in self._replacements.items():
            tokens[i] = text
        self._writer.add_token_list(tokens)

    def add_token_types(self, types: list) -> None:
        types = list(types)
        for i, (_, kind) in self._replacements.items():
            types[i] = kind
        self._writer.add_token_types(types)

    def __getattr__(self, name: str):
        return getattr(self._writer, name)


def with_tokens(replacements: dict[int, tuple[str, int]], base=llama):
    """A text-model builder: make_arch_goldens' tiny ``base`` (llama), written with ``replacements``
    in its vocabulary."""

    def build(m: TinyModel) -> None:
        base(m)
        write = m.write

        def write_with_tokens(path: Path) -> None:
            add_vocab = make_arch_goldens._add_vocab
            make_arch_goldens._add_vocab = lambda writer: add_vocab(_VocabWithTokens(writer, replacements))
            try:
                write(path)
            finally:
                make_arch_goldens._add_vocab = add_vocab

        m.write = write_with_tokens

    return build


def qwen2vl_text(m: TinyModel) -> None:
    """make_arch_goldens' tiny Qwen2 as a qwen2vl: M-RoPE over its 8 angles in sections of 2 (time),
    3 (height) and 3 (width), as Qwen2-VL's 16, 24, 24 of 64."""
    qwen2(m)
    m.metadata["rope.dimension_sections"] = [2, 3, 3, 0]


#: each projector with the text model it pairs with (its file in OUT_DIR and its builder)
PAIRS = {"mlp": ("text.gguf", "llama", llama), "mlp_norm": ("text.gguf", "llama", llama),
         "gemma3": ("text-gemma3.gguf", "gemma3", gemma3_text),
         "idefics3": ("text-smolvlm.gguf", "llama", with_tokens(SMOLVLM_TOKENS)), "mlp-anyres": ("text.gguf", "llama", llama),
         "ldpv2": ("text.gguf", "llama", llama), "ldp": ("text.gguf", "llama", llama),
         "resampler": ("text-minicpmv.gguf", "llama", with_tokens(MINICPMV_TOKENS)),
         "qwen2vl_merger": ("text-qwen2vl.gguf", "qwen2vl", with_tokens(QWEN2VL_TOKENS, qwen2vl_text)),
         "qwen2.5vl_merger": ("text-qwen2vl.gguf", "qwen2vl", with_tokens(QWEN2VL_TOKENS, qwen2vl_text))}
#: text models wider than TinyModel's default: MiniCPM-V's resampler has heads of 128
TEXT_WIDTH = {"text-minicpmv.gguf": 128}


def main(argv: list[str]) -> int:
    """Every pair's files, or with projector names as arguments those pairs' alone."""
    unknown = [name for name in argv if name not in PAIRS]
    if unknown:
        raise SystemExit(f"unknown projectors {unknown} (known: {', '.join(PAIRS)})")
    pairs = {name: PAIRS[name] for name in argv} if argv else PAIRS
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    n_text_embd = {}
    for file, arch, build in {pair[0]: pair for pair in pairs.values()}.values():
        width = TEXT_WIDTH.get(file, 64)
        text = TinyModel(arch, seed=2200, n_embd=width, head_dim=width // 4, n_ff=2 * width)
        build(text)
        text.write(OUT_DIR / file)
        n_text_embd[file] = text.n_embd
    for i, (name, (width, height)) in enumerate(IMAGES.items()):
        if not argv or not (OUT_DIR / f"{name}.png").exists():  # the images every pair's goldens share
            write_image(OUT_DIR / f"{name}.png", width, height, seed=2210 + i)
    for j, (projector, (file, _, _)) in enumerate(PAIRS.items()):
        if projector not in pairs:
            continue
        text_path = OUT_DIR / file
        mmproj_path = OUT_DIR / f"mmproj-{projector}.gguf"
        write_mmproj(mmproj_path, projector, n_text_embd[file], seed=2220 + j)
        goldens = {}
        for name in IMAGES:
            for key, value in oracle(text_path, mmproj_path, OUT_DIR / f"{name}.png").items():
                goldens[f"{name}.{key}"] = value
        np.savez_compressed(OUT_DIR / f"{projector}.npz", prompt=PROMPT, **goldens)
        print(f"{projector}: " + ", ".join(f"{n} {goldens[f'{n}.n_chunks']} chunks, greedy {goldens[f'{n}.greedy'].tolist()}"
                                           for n in IMAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
