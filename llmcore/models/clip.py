"""CLIP vision encoders of llama.cpp's multimodal projector files (``mmproj``, ``general.architecture
= clip``, read by ``tools/mtmd/clip.cpp``): a ViT over an image's patches and the projector that maps
its features into the text model's embedding space.

The ViT (LLaVA's graph in clip.cpp): the patch embedding (a convolution with stride = kernel, here a
product of each patch's pixels with the kernel unrolled as a matrix), the class embedding appended
after the patches, learned positions, a pre-LayerNorm, pre-norm blocks of non-causal attention and an
ungated FFN (GELU, SiLU or quick GELU as the file says), the last block left out unless
``clip.vision.feature_layer`` names the layers whose outputs are stacked; then the patch rows go
through the projector: ``mlp`` (LLaVA 1.5: linear, GELU, linear; Yi-VL's files, which add ``mm.3``, each
linear followed by a LayerNorm: clip.cpp's ``mlp_norm``) or ``ldpv2`` (MobileVLM V2: linear, GELU,
linear, the 24x24 grid 2x2 average-pooled, then a 3x3 depthwise convolution added to it, its PEG) or
``ldp`` (MobileVLM: linear, GELU, linear, then two MobileNetV3 blocks, the second with stride 2).

SigLIP's ViT (clip.cpp's siglip graph: no class embedding, every block run, the post-LayerNorm) feeds
``gemma3`` (Gemma 3: the patch grid average-pooled by ``n_merge`` on each side, RMSNorm with the
soft-embedding weight, then the input projection) or ``idefics3`` (SmolVLM: each n_merge x n_merge
window of patches concatenated into one row, the pixel shuffle, then a linear map) or ``resampler``
(MiniCPM-V: learned queries attending to the patches, whose keys carry 2-D sine-cosine positions).

Qwen2-VL's ViT (clip.cpp's qwen2vl graph, ``qwen2vl_merger``): two patch kernels (its 3-D
convolution's two frames, both given the one image) added, no learned positions but a 2-D rotation
of queries and keys (ggml_rope_multi's vision mode: each patch's row and column), every block run,
the post-LayerNorm; the patches are taken 2x2 block by block, so that each block's four rows, joined,
go through the merger: ``mm.0``, GELU, ``mm.2``. Qwen2.5-VL's (``qwen2.5vl_merger``): the same with RMS
norms, a gated FFN, and all but every n_wa_pattern-th block attending within windows of blocks (the
blocks taken window by window, put back in order after the merger).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmcore.errors import ModelError
from llmcore.gguf import GGMLType
from llmcore.graph.builder import F16, F32, I32, GraphBuilder, RopeParams
from llmcore.graph.ir import Graph, Node
from llmcore.graph.kv_types import CacheConfig
from llmcore.models.base import Architecture, HParams, WeightSpec
from llmcore.models.layers import _project, layer_norm, rms_norm

#: every projector type llama.cpp 0.3.36 names (tools/mtmd/clip-impl.h, PROJECTOR_TYPE_NAMES)
KNOWN_PROJECTORS = (
    "mlp", "ldp", "ldpv2", "resampler", "adapter", "qwen2vl_merger", "qwen2.5vl_merger",
    "qwen3vl_merger", "ling3vl", "step3vl", "gemma3", "gemma3nv", "gemma3na", "gemma4v", "gemma4a", "gemma4uv",
    "gemma4ua", "phi4", "idefics3", "pixtral", "ultravox", "internvl", "llama4", "qwen2a", "qwen3a", "glma",
    "qwen2.5o", "voxtral", "meralion", "musicflamingo", "lfm2", "kimivl", "paddleocr", "lightonocr", "cogvlm",
    "janus_pro", "dots_ocr", "dots3note_v", "dots3note_a", "deepseekocr", "deepseekocr2", "deepseek4v", "lfm2a",
    "glm4v", "glm5v", "youtuvl", "yasa2", "kimik25", "nemotron_v2_vl", "exaone4_5", "hunyuanvl", "minicpmv4_6",
    "granite_speech", "mimovl", "minimax_m3", "granite4_vision", "mimo_audio", "parakeet", "qwen3tts_spkenc",
    "qwen3tts_gen", "pockettts_spkenc", "pockettts_gen", "muse-glimmer",
)
#: the projector types llmcore runs
SUPPORTED_PROJECTORS = ("mlp", "ldp", "ldpv2", "resampler", "gemma3", "idefics3", "qwen2vl_merger", "qwen2.5vl_merger")
#: projectors that read the patch grid in n_merge x n_merge windows
WINDOWED_PROJECTORS = ("gemma3", "idefics3", "ldpv2")
#: projectors behind clip.cpp's SigLIP graph
SIGLIP_PROJECTORS = ("gemma3", "idefics3", "resampler")
#: the width of the resampler's attention heads (clip.cpp's d_head for MiniCPM-V)
RESAMPLER_HEAD_DIM = 128
#: the side of MiniCPM-V's table of learned positions, which any patch grid is bucketed into
RESAMPLER_POSITION_BUCKETS = 70
#: weights clip.cpp multiplies transposed (ggml_cont(ggml_transpose(w))): the graph declares them
#: [n_out, n_in] and the projector loads them transposed
TRANSPOSED_WEIGHTS = frozenset({"mm.input_projection.weight"})

#: clip.cpp's n_merge where the file has no clip.vision.projector.scale_factor (Qwen2-VL's:
#: clip.vision.spatial_merge_size)
DEFAULT_MERGE = {"gemma3": 4, "ldp": 2, "ldpv2": 2, "qwen2vl_merger": 2, "qwen2.5vl_merger": 2}
#: Qwen2-VL's projector: a ViT with 2-D rotary positions whose patches are merged 2x2 into tokens
QWEN2VL = "qwen2vl_merger"
#: Qwen2.5-VL's: the same ViT with RMS norms, a gated FFN and windowed attention in all but every
#: n_wa_pattern-th block
QWEN25VL = "qwen2.5vl_merger"
#: both (clip.cpp's qwen2vl graph)
QWEN_VL = (QWEN2VL, QWEN25VL)
#: Qwen2.5-VL's attention windows in pixels (clip.cpp's default attn_window_size, which its files omit)
QWEN25VL_WINDOW = 112
#: the rotary base of Qwen2-VL's vision encoder (clip.cpp's ggml_rope_multi call)
QWEN2VL_ROPE_BASE = 10000.0
#: the patch grid clip.cpp's MobileVLM projectors are written for (n_patch = 24: 336 pixels in 14s)
MOBILEVLM_GRID = 24

#: the FFN activation clip.cpp picks from clip.use_gelu / clip.use_silu (neither: quick GELU)
FFN_GELU, FFN_SILU, FFN_GELU_QUICK = "gelu", "silu", "gelu_quick"


@dataclass(frozen=True)
class ClipParams:
    """A vision projector file's hyper-parameters (clip.cpp's clip_hparams), named as llama.cpp."""

    projector: str
    n_embd: int
    n_head: int
    n_ff: int
    n_layer: int
    projection_dim: int
    eps: float
    image_size: int
    patch_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    ffn_op: str
    feature_layers: tuple[int, ...]
    grid_pinpoints: tuple[tuple[int, int], ...]  # LLaVA 1.6's candidate resolutions (width, height)
    n_merge: int = 1  # patches pooled or merged per side into one output token (gemma3: 4 unless the file says)
    preproc_image_size: int = 0  # idefics3: the longest side images are resized to before tiling (0: none given)
    minicpmv_version: int = 2  # resampler: MiniCPM-V's version (2: 2.5, 3: 2.6, ...), which sets its slice tokens
    query_num: int = 0  # resampler: its learned queries, the tokens of each image chunk
    n_wa_pattern: int = 0  # qwen2.5vl_merger: every n-th block attends to the whole image, the others in windows

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> ClipParams:
        """Read and check the vision hyper-parameters; a ModelError names the key at fault, and a
        projector type llmcore does not run yet is named as such."""
        if meta.get("general.architecture") != "clip":
            raise ModelError(f"metadata 'general.architecture': {meta.get('general.architecture')!r} is not 'clip' "
                             "(not a multimodal projector file)")
        if not meta.get("clip.has_vision_encoder", False):
            raise ModelError("metadata 'clip.has_vision_encoder' is not true: this projector has no vision encoder "
                             "(audio projectors are not supported yet)")
        projector = meta.get("clip.projector_type") or meta.get("clip.vision.projector_type")
        if not isinstance(projector, str):
            raise ModelError("metadata key clip.projector_type is missing")
        if projector not in KNOWN_PROJECTORS:
            raise ModelError(f"metadata 'clip.projector_type': unknown projector type {projector!r}")
        if projector not in SUPPORTED_PROJECTORS:
            raise ModelError(f"projector type {projector!r} is not supported yet (supported: "
                             f"{', '.join(SUPPORTED_PROJECTORS)})")
        use_gelu, use_silu = bool(meta.get("clip.use_gelu", False)), bool(meta.get("clip.use_silu", False))
        if use_gelu and use_silu:
            raise ModelError("metadata 'clip.use_gelu' and 'clip.use_silu' are both true")
        n_embd = _integer(meta, "clip.vision.embedding_length", 1, 1 << 16)
        n_head = _integer(meta, "clip.vision.attention.head_count", 1, n_embd)
        if n_embd % n_head:
            raise ModelError(f"metadata 'clip.vision.attention.head_count': {n_head} heads do not divide "
                             f"{n_embd} embedding values")
        n_layer = _integer(meta, "clip.vision.block_count", 1, 512)
        image_size = _integer(meta, "clip.vision.image_size", 1, 1 << 14)
        patch_size = _integer(meta, "clip.vision.patch_size", 1, image_size)
        feature_layers = tuple(int(v) for v in meta.get("clip.vision.feature_layer", ()))
        if any(not 0 <= v <= n_layer for v in feature_layers):
            raise ModelError(f"metadata 'clip.vision.feature_layer': {list(feature_layers)} has a layer outside "
                             f"0..{n_layer}")
        pinpoints = [int(v) for v in meta.get("clip.vision.image_grid_pinpoints", ())]
        if len(pinpoints) % 2:
            raise ModelError("metadata 'clip.vision.image_grid_pinpoints' has an odd number of values")
        if any(v <= 0 or v % image_size for v in pinpoints):  # clip.cpp's LLaVA graph takes square tiles only
            raise ModelError(f"metadata 'clip.vision.image_grid_pinpoints': {pinpoints} are not all multiples of "
                             f"the image size {image_size}")
        return cls(
            projector=projector,
            n_embd=n_embd,
            n_head=n_head,
            n_ff=_integer(meta, "clip.vision.feed_forward_length", 1, 1 << 20),
            n_layer=n_layer,
            projection_dim=_integer(meta, "clip.vision.projection_dim", 0, 1 << 20, default=0),
            eps=_number(meta, "clip.vision.attention.layer_norm_epsilon"),
            image_size=image_size,
            patch_size=patch_size,
            image_mean=_triple(meta, "clip.vision.image_mean"),
            image_std=_triple(meta, "clip.vision.image_std"),
            ffn_op=FFN_GELU if use_gelu else FFN_SILU if use_silu else FFN_GELU_QUICK,
            feature_layers=feature_layers,
            grid_pinpoints=tuple(zip(pinpoints[::2], pinpoints[1::2])),
            n_merge=_integer(meta, "clip.vision.spatial_merge_size" if projector in QWEN_VL
                             else "clip.vision.projector.scale_factor", 2 if projector == "idefics3" else 1, 64,
                             default=DEFAULT_MERGE.get(projector, None if projector == "idefics3" else 1)),
            preproc_image_size=_integer(meta, "clip.vision.preproc_image_size", 0, 1 << 16, default=0),
            # clip.cpp: a file without a version is 2, its query count then 96 (64 from version 3 on)
            minicpmv_version=_integer(meta, "clip.minicpmv_version", 0, 1 << 20, default=0) or 2,
            query_num=_integer(meta, "clip.minicpmv_query_num", 0, 1 << 16, default=0)
            or (64 if int(meta.get("clip.minicpmv_version", 0)) in (3, 4, 5, 6, 100045) else 96),
            n_wa_pattern=_integer(meta, "clip.vision.n_wa_pattern", 1, 1 << 10) if projector == QWEN25VL else 0,
        )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def _conv3_inputs(name: str, side: int, stride: int) -> dict[str, np.ndarray]:
    """``{name}.{k}``: for each cell of a 3x3 convolution's output grid (padding 1, ``stride``,
    row-major) the row of its input neighbour at kernel offset k = 3 * ky + kx in a side x side
    grid; side * side (the zero row) outside it."""
    n_out = (side - 1) // stride + 1
    y, x = np.mgrid[0:n_out, 0:n_out] * stride
    feeds = {}
    for ky in range(3):
        for kx in range(3):
            iy, ix = y + ky - 1, x + kx - 1
            inside = (iy >= 0) & (iy < side) & (ix >= 0) & (ix < side)
            feeds[f"{name}.{3 * ky + kx}"] = np.where(inside, iy * side + ix, side * side).reshape(-1).astype(np.int32)
    return feeds


def _row_mean(g: GraphBuilder, x: Node) -> Node:
    """The mean of x's rows, [1, width] (ggml_pool_2d over the whole grid; the rows added pairwise
    here, a different order from ggml's one by one: a few ulps apart)."""
    rows, width = x.shape
    flat, extra = g.reshape(x, (1, rows * width)), None
    while rows > 1:
        half = rows // 2
        if rows % 2:
            last = g.slice(flat, 2 * half * width, rows * width)
            extra = last if extra is None else g.add(extra, last)
        flat = g.add(g.slice(flat, 0, half * width), g.slice(flat, half * width, 2 * half * width))
        rows = half
    total = flat if extra is None else g.add(flat, extra)
    return g.scale(total, 1.0 / x.shape[0], name="mean")


def _integer(meta: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = meta.get(key, default)
    if value is None:
        raise ModelError(f"metadata key {key} is missing")
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ModelError(f"metadata '{key}': {value!r} is not an integer")
    if not low <= int(value) <= high:
        raise ModelError(f"metadata '{key}': {int(value)} is outside {low}..{high}")
    return int(value)


def _number(meta: Mapping[str, Any], key: str) -> float:
    value = meta.get(key)
    if value is None:
        raise ModelError(f"metadata key {key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ModelError(f"metadata '{key}': {value!r} is not a number")
    number = float(value)
    if not (math.isfinite(number) and 0 < number < 1):
        raise ModelError(f"metadata '{key}': {number!r} is not a finite value in (0, 1)")
    return number


def _triple(meta: Mapping[str, Any], key: str) -> tuple[float, float, float]:
    values = meta.get(key)
    if values is None or len(values) < 3:
        raise ModelError(f"metadata '{key}': three values (red, green, blue) are needed")
    triple = tuple(float(v) for v in values[:3])
    if not all(math.isfinite(v) for v in triple) or (key.endswith("std") and min(triple) <= 0):
        raise ModelError(f"metadata '{key}': {list(triple)} are not usable values")
    return triple  # type: ignore[return-value]


class ClipVision(Architecture):
    """The vision encoder and projector of one image size (``n_x`` by ``n_y`` patches). Attention is
    computed as clip.cpp does on a CPU: flash attention over keys and values cast to f16 (its cache
    cells here, a scratch cache per layer and image size)."""

    names = ()  # opened through llmcore.engine.mtmd, never as a text model
    encoder_only = True

    def __init__(self, params: ClipParams, weights: Mapping[str, WeightSpec], n_x: int, n_y: int) -> None:
        self.params = params
        self.n_x, self.n_y = n_x, n_y
        self.n_patches = n_x * n_y
        self.has_class = "v.class_embd" in weights
        self.n_pos = self.n_patches + self.has_class
        self.siglip = params.projector in SIGLIP_PROJECTORS
        if params.projector == "gemma3" and (n_x != n_y or n_x % params.n_merge):
            raise ModelError(f"gemma3's pooling needs a square grid of patches divisible by {params.n_merge} "
                             f"per side, not {n_x}x{n_y}")
        if params.projector in ("ldp", "ldpv2") and not n_x == n_y == MOBILEVLM_GRID:
            raise ModelError(f"{params.projector} is written for {MOBILEVLM_GRID}x{MOBILEVLM_GRID} patches (clip.cpp's n_patch), "
                             f"not {n_x}x{n_y}")
        if params.projector in QWEN_VL and (params.n_merge != 2 or n_x % 2 or n_y % 2 or params.head_dim % 4):
            raise ModelError(f"{params.projector} merges 2x2 patches of heads divisible by 4 (clip.cpp's graph), not "
                             f"{n_x}x{n_y} patches, spatial merge {params.n_merge}, heads of {params.head_dim}")
        if params.projector == "idefics3" and (n_x % params.n_merge or n_y % params.n_merge):
            raise ModelError(f"idefics3's pixel shuffle needs a grid of patches divisible by {params.n_merge} "
                             f"per side, not {n_x}x{n_y}")
        hparams = HParams(arch="clip", n_layer=params.n_layer, n_embd=params.n_embd, n_head=params.n_head,
                          n_head_kv=params.n_head, head_dim=params.head_dim, n_ff=params.n_ff, n_vocab=1,
                          n_ctx_train=self.n_pos, norm_eps=params.eps, rope=RopeParams(n_rot=2), causal=False)
        super().__init__(hparams, weights, self.n_pos, CacheConfig(F16, F16, flash_attn=True))
        self.ffn_names = self._ffn_names()

    def _ffn_names(self) -> dict[int, tuple[str, str]]:
        """Each block's (up, down) FFN tensors; older converters swapped the names, which clip.cpp
        recognises by ffn_down's input width being the embedding's."""
        names = {}
        for il in range(self.params.n_layer):
            up, down = f"v.blk.{il}.ffn_up", f"v.blk.{il}.ffn_down"
            spec = self.weights.get(f"{down}.weight")
            swapped = spec is not None and spec.shape[-1] == self.params.n_embd and f"{up}.weight" in self.weights
            names[il] = (down, up) if swapped else (up, down)
        return names

    @property
    def n_output_tokens(self) -> int:
        if self.params.projector == "resampler":
            return self.params.query_num
        return self.n_patches // self.params.n_merge ** 2

    def image_inputs(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs for an image's ``patches`` (:func:`llmcore.media.image.patches`)."""
        if self.params.projector in QWEN_VL:
            return self._qwen2vl_inputs(patches)
        feeds = {
            "patches": patches,
            "positions": np.arange(self.n_pos, dtype=np.int32),
            "kv_cells": np.arange(self.n_pos, dtype=np.int32),
            "kq_mask": np.zeros((self.n_pos, self.n_pos), np.float32),
            # clip.cpp skips row 0 when there is a class embedding (which sits last)
            "patch_rows": np.arange(self.n_patches, dtype=np.int32) + self.has_class,
        }
        projector = self.params.projector
        if projector in WINDOWED_PROJECTORS:
            feeds.update(self._window_inputs())
        if projector == "ldpv2":
            feeds.update(_conv3_inputs("peg", self.n_x // self.params.n_merge, 1))
            feeds["zero_row"] = np.zeros((1, self.weights["mm.model.peg.0.bias"].shape[-1]), np.float32)
        if projector == "resampler":
            feeds["positions"] = self._bucket_positions()
            feeds["resampler_pos"] = self._resampler_positions()
            feeds["resampler_mask"] = np.zeros((self.params.query_num, self.n_pos), np.float32)
        if projector == "ldp":
            channels = self.weights["mm.model.mlp.3.bias"].shape[-1]
            feeds.update(_conv3_inputs("block1", self.n_x, 1))
            feeds.update(_conv3_inputs("block2", self.n_x, 2))
            feeds["zero_row"] = np.zeros((1, channels), np.float32)
            feeds["threes"] = np.full(channels, 3.0, np.float32)
            feeds["sixes"] = np.full(channels, 6.0, np.float32)
        return feeds

    def _qwen2vl_inputs(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """Qwen2-VL's inputs: the patches 2x2 block by block (blocks row-major, each block's patches
        row by row: clip.cpp's permutation after the patch embedding) and their rotary positions
        [4, n], row, column, row, column (clip.cpp's M-RoPE positions of the vision encoder)."""
        y, x = np.mgrid[0:self.n_y, 0:self.n_x]
        order = lambda grid: grid.reshape(self.n_y // 2, 2, self.n_x // 2, 2).transpose(0, 2, 1, 3).reshape(-1)  # noqa: E731
        rows, cols = order(y), order(x)
        feeds = {"kv_cells": np.arange(self.n_pos, dtype=np.int32),
                 "kq_mask": np.zeros((self.n_pos, self.n_pos), np.float32),
                 "patch_rows": np.arange(self.n_patches, dtype=np.int32)}
        if self.params.n_wa_pattern:  # the blocks window by window, as clip.cpp's inv_window_idx takes them
            window_idx, inverse, feeds["window_mask"] = self._windows_of_blocks()
            patch_of = (4 * inverse[:, None] + np.arange(4)).reshape(-1)
            rows, cols = rows[patch_of], cols[patch_of]
            feeds["window_idx"] = window_idx
        feeds["patches"] = np.ascontiguousarray(patches[rows * self.n_x + cols])
        feeds["positions"] = np.stack([rows, cols, rows, cols]).astype(np.int32)
        return feeds

    def _windows_of_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Qwen2.5-VL's attention windows (clip.cpp): the 2x2 blocks in windows of 112 pixels' worth
        of blocks per side, row-major, the last ones cut short. Returns each block's place in window
        order (window_idx), the block at each place (inv_window_idx) and the mask [patches, patches]
        that lets a patch see its own window's patches only."""
        p = self.params
        pw, ph, side = self.n_x // 2, self.n_y // 2, QWEN25VL_WINDOW // p.patch_size // 2
        window_idx = np.empty(pw * ph, np.int32)
        mask = np.full((self.n_pos, self.n_pos), -np.inf, np.float32)
        place = 0
        for y in range(0, ph, side):
            for x in range(0, pw, side):
                first = place
                for dy in range(min(side, ph - y)):
                    for dx in range(min(side, pw - x)):
                        window_idx[(y + dy) * pw + x + dx] = place
                        place += 1
                mask[4 * first:4 * place, 4 * first:4 * place] = 0.0
        return window_idx, np.argsort(window_idx).astype(np.int32), mask

    def _bucket_positions(self) -> np.ndarray:
        """MiniCPM-V's rows of the learned position table: each patch's row and column scaled into
        the 70 x 70 table (floor(70 i / n))."""
        buckets = RESAMPLER_POSITION_BUCKETS
        rows = np.floor(buckets * np.arange(self.n_y) / self.n_y).astype(np.int32)
        cols = np.floor(buckets * np.arange(self.n_x) / self.n_x).astype(np.int32)
        return (rows[:, None] * buckets + cols[None, :]).reshape(-1).astype(np.int32)

    def _resampler_positions(self) -> np.ndarray:
        """The resampler keys' 2-D positions, [patches, width]: sin and cos of each patch's column
        times omega, then of its row (omega_i = 1 / 10000^(i / (width / 4)), in float32 as clip.cpp)."""
        width = self.weights["resampler.proj.weight"].shape[-1]
        quarter = width // 4
        omega = np.array([1.0 / np.power(np.float32(10000.0), np.float32(i) / np.float32(quarter))
                          for i in range(quarter)], np.float32)
        index = np.arange(self.n_pos)
        theta_w = (index % self.n_x).astype(np.float32)[:, None] * omega
        theta_h = (index // self.n_x).astype(np.float32)[:, None] * omega
        return np.concatenate([np.sin(theta_w), np.cos(theta_w), np.sin(theta_h), np.cos(theta_h)], axis=1,
                              dtype=np.float32)

    def _window_inputs(self) -> dict[str, np.ndarray]:
        """``window.{dy}.{dx}``: for each output token (row-major over the merged grid) the patch at
        offset (dy, dx) of its n_merge x n_merge window."""
        k = self.params.n_merge
        oy, ox = np.mgrid[0:self.n_y // k, 0:self.n_x // k]
        return {f"window.{dy}.{dx}": ((oy * k + dy) * self.n_x + ox * k + dx).reshape(-1).astype(np.int32)
                for dy in range(k) for dx in range(k)}

    def _windows(self, g: GraphBuilder, x: Node) -> list[Node]:
        """The patches at each offset of the n_merge x n_merge windows, [output tokens, n_embd] each,
        offsets row by row."""
        k = self.params.n_merge
        return [g.get_rows(x, g.input(f"window.{dy}.{dx}", (self.n_output_tokens,), I32), name=f"window.{dy}.{dx}")
                for dy in range(k) for dx in range(k)]

    def build_image_graph(self) -> Graph:
        """The encoder's graph: inputs ``patches`` (f32 [n_patches, 3 * patch * patch], each row a
        patch's normalized pixels channel by channel, row by row), ``positions`` and ``patch_rows``
        (the rows that leave the ViT), ``kv_cells`` and ``kq_mask`` (every cell visible); output
        ``embd`` [tokens, the text model's n_embd]."""
        p = self.params
        g = GraphBuilder(self.n_pos, self.n_patches)
        g.layer = -1
        pixels = g.input("patches", (self.n_patches, 3 * p.patch_size * p.patch_size), F32)
        positions = g.input("positions", (4, self.n_pos) if p.projector in QWEN_VL else (self.n_pos,), I32)
        cells = g.input("kv_cells", (self.n_pos,), I32)
        mask = g.input("kq_mask", (self.n_pos, self.n_pos), F32)
        # the convolution's kernel as a matrix: ggml's im2col rounds the pixels to f16 and the
        # product rounds the kernel too, which an F16 weight in a product does here
        kernel = self.weights.get("v.patch_embd.weight")
        if kernel is None or kernel.shape[-3:] != (3, p.patch_size, p.patch_size):
            raise ModelError(f"tensor v.patch_embd.weight: a [n_embd, 3, {p.patch_size}, {p.patch_size}] kernel is needed")
        x = g.mul_mat(g.weight("v.patch_embd.weight", (kernel.shape[0], 3 * p.patch_size ** 2), GGMLType.F16), pixels,
                      name="patch_embd")
        if p.projector in QWEN_VL:  # the second frame's kernel, given the same image (clip.cpp's still image)
            x = g.add(x, g.mul_mat(g.weight("v.patch_embd.weight.1", (kernel.shape[0], 3 * p.patch_size ** 2),
                                            GGMLType.F16), pixels, name="patch_embd.1"))
        if self.has("v.patch_embd.bias"):
            x = g.add(x, self.w(g, "v.patch_embd.bias"))
        if self.has_class:  # appended after the patches, as clip.cpp's ggml_concat on the rows
            flat = g.concat(g.reshape(x, (1, self.n_patches * p.n_embd)),
                            self.w_vector_as_row(g, "v.class_embd"))
            x = g.reshape(flat, (self.n_pos, p.n_embd))
        if p.projector not in QWEN_VL:  # whose positions rotate queries and keys instead
            x = g.add(x, g.get_rows(self.w(g, "v.position_embd.weight"), positions, name="pos_embd"))
        if self.has("v.pre_ln.weight"):
            x = self.norm(g, x, "v.pre_ln")
        features = p.feature_layers
        # LLaVA's graph leaves the last block out unless feature layers are named; SigLIP's runs them all
        n_run = p.n_layer if self.siglip or p.projector in QWEN_VL else max(features) if features else p.n_layer - 1
        # Qwen2.5-VL: all but every n_wa_pattern-th block attend within windows of patches only
        window_mask = g.input("window_mask", (self.n_pos, self.n_pos), F32) if p.n_wa_pattern else None
        stack = []
        for il in range(n_run):
            g.layer = il
            if il in features:  # 0 is the encoder's input
                stack.append(x)
            windowed = window_mask is not None and (il + 1) % p.n_wa_pattern != 0
            x = g.add(self.attention(g, self.norm(g, x, f"v.blk.{il}.ln1"), cells, window_mask if windowed else mask,
                                     il, positions), x)
            x = g.add(x, self.ffn(g, self.norm(g, x, f"v.blk.{il}.ln2"), il))
        g.layer = p.n_layer
        if self.has("v.post_ln.weight"):
            x = self.norm(g, x, "v.post_ln")
        if n_run in features:
            stack.append(x)
        for i, feature in enumerate(stack):
            x = feature if i == 0 else g.concat(x, feature)
        x = g.get_rows(x, g.input("patch_rows", (self.n_patches,), I32), name="patch_rows")
        return g.build({"embd": self.projector(g, x)})

    def attention(self, g: GraphBuilder, x: Node, cells: Node, mask: Node, il: int, positions: Node) -> Node:
        p, prefix, n = self.params, f"v.blk.{il}", x.shape[0]
        q, k, v = (self.linear(g, x, f"{prefix}.attn_{name}") for name in "qkv")
        if p.projector in QWEN_VL:  # rows and columns rotate a quarter of the head's angles each
            rope = RopeParams(n_rot=p.head_dim // 2, neox=True, freq_base=QWEN2VL_ROPE_BASE, n_ctx_orig=32768)
            sections = (p.head_dim // 4,) * 4
            q, k = (g.reshape(g.rope_multi(g.reshape(t, (n, p.n_head, p.head_dim)), positions, rope, sections,
                                           vision=True, name=f"v.{name}_rope.{il}"), (n, p.n_embd))
                    for t, name in ((q, "q"), (k, "k")))
        caches = [g.cache(f"v.cache_{kind}.{il}@{self.n_pos}", (self.n_pos, p.n_embd), F16) for kind in "kv"]
        k_all = g.kv_store(caches[0], k, cells, name=f"v.k_store.{il}")
        v_all = g.kv_store(caches[1], v, cells, name=f"v.v_store.{il}")
        out = g.attention(g.reshape(q, (n, p.n_head, p.head_dim)), k_all, v_all, mask, 1.0 / math.sqrt(p.head_dim),
                          name=f"v.attn.{il}", flash=True)
        return self.linear(g, out, f"{prefix}.attn_out")

    def norm(self, g: GraphBuilder, x: Node, name: str) -> Node:
        """The encoder's norm ``name``: RMSNorm in Qwen2.5-VL's (clip.cpp's NORM_TYPE_RMS), else
        LayerNorm; each with its bias where the file has one."""
        if self.params.projector != QWEN25VL:
            return layer_norm(g, self, x, name)
        y = rms_norm(g, self, x, f"{name}.weight")
        return g.add(y, self.w(g, f"{name}.bias")) if self.has(f"{name}.bias") else y

    def ffn(self, g: GraphBuilder, x: Node, il: int) -> Node:
        """up, the activation, down; with an ``ffn_gate`` (Qwen2.5-VL) the activation of the gate
        times up (clip.cpp's build_ffn: ggml_swiglu_split, ggml_geglu_split)."""
        up, down = self.ffn_names[il]
        h = self.linear(g, x, up)
        act = self.params.ffn_op
        gate = f"v.blk.{il}.ffn_gate"
        if self.has(f"{gate}.weight"):
            if act == FFN_GELU_QUICK:
                raise ModelError(f"tensor {gate}.weight: a gated FFN with quick GELU is not supported yet")
            g_h = self.linear(g, x, gate)
            return self.linear(g, g.swiglu(g_h, h) if act == FFN_SILU else g.geglu(g_h, h), down)
        h = g.gelu(h) if act == FFN_GELU else g.silu(h) if act == FFN_SILU else g.gelu_quick(h)
        return self.linear(g, h, down)

    def projector(self, g: GraphBuilder, x: Node) -> Node:
        if self.params.projector == "gemma3":
            return self.gemma3_projector(g, x)
        if self.params.projector == "idefics3":
            return self.idefics3_projector(g, x)
        if self.params.projector == "ldpv2":
            return self.ldpv2_projector(g, x)
        if self.params.projector == "ldp":
            return self.ldp_projector(g, x)
        if self.params.projector == "resampler":
            return self.resampler_projector(g, x)
        if self.params.projector in QWEN_VL:
            return self.qwen2vl_projector(g, x)
        return self.llava_projector(g, x)

    def qwen2vl_projector(self, g: GraphBuilder, x: Node) -> Node:
        """Qwen2-VL's merger: each 2x2 block's four patch rows (consecutive: the patches come block
        by block) joined into one, then ``mm.0``, GELU, ``mm.2``; Qwen2.5-VL's blocks, which came
        window by window, then go back to row-major order (input ``window_idx``)."""
        n, width = x.shape
        x = g.reshape(x, (n // 4, 4 * width))
        x = self.linear(g, g.gelu(self.linear(g, x, "mm.0")), "mm.2")
        if self.params.n_wa_pattern:
            x = g.get_rows(x, g.input("window_idx", (n // 4,), I32), name="window_idx")
        return x

    def resampler_projector(self, g: GraphBuilder, x: Node) -> Node:
        """MiniCPM-V's: the learned queries (``resampler.query``, LayerNorm ``ln_q``) attend, in heads
        of 128, to the patches projected by ``resampler.kv`` (LayerNorm ``ln_kv``: the values; plus the
        2-D positions, input ``resampler_pos``: the keys); then LayerNorm ``ln_post`` and
        ``resampler.proj``. Keys and values are rounded to f16 as flash attention does."""
        query = self.weights.get("resampler.query")
        if query is None or query.shape[0] != self.params.query_num:
            raise ModelError(f"tensor resampler.query: {self.params.query_num} queries are needed")
        width = query.shape[-1]
        if width % RESAMPLER_HEAD_DIM:
            raise ModelError(f"tensor resampler.query: its width {width} is not a multiple of the resampler's "
                             f"{RESAMPLER_HEAD_DIM}-wide heads")
        n_head, n = width // RESAMPLER_HEAD_DIM, x.shape[0]
        q = layer_norm(g, self, self.w(g, "resampler.query"), "resampler.ln_q")
        v = layer_norm(g, self, g.mul_mat(self.w(g, "resampler.kv.weight"), x), "resampler.ln_kv")
        k = g.add(v, g.input("resampler_pos", (n, width), F32))
        q, k, v = (self.linear(g, t, f"resampler.attn.{name}") for t, name in ((q, "q"), (k, "k"), (v, "v")))
        cells = g.input("kv_cells", (self.n_pos,), I32)
        caches = [g.cache(f"resampler.cache_{kind}@{self.n_pos}", (self.n_pos, width), F16) for kind in "kv"]
        out = g.attention(g.reshape(q, (self.params.query_num, n_head, RESAMPLER_HEAD_DIM)),
                          g.kv_store(caches[0], k, cells, name="resampler.k_store"),
                          g.kv_store(caches[1], v, cells, name="resampler.v_store"),
                          g.input("resampler_mask", (self.params.query_num, self.n_pos), F32),
                          1.0 / math.sqrt(RESAMPLER_HEAD_DIM), name="resampler.attn", flash=True)
        out = layer_norm(g, self, self.linear(g, out, "resampler.attn.out"), "resampler.ln_post")
        return g.mul_mat(self.w(g, "resampler.proj.weight"), out, name="resampler.proj")

    def ldp_projector(self, g: GraphBuilder, x: Node) -> Node:
        """MobileVLM's: ``mm.model.mlp.1``, GELU, ``mm.model.mlp.3``, then two MobileNetV3 blocks
        (``mm.model.mb_block.{1,2}``): a 3x3 depthwise convolution (stride 1, then 2: the 24x24 grid
        becomes 12x12), LayerNorm, hardswish, squeeze-and-excitation (the grid's mean through fc1,
        ReLU, fc2, hardsigmoid, scaling each channel), a pointwise product and LayerNorm; the first
        block adds its input."""
        x = self.linear(g, g.gelu(self.linear(g, x, "mm.model.mlp.1")), "mm.model.mlp.3")
        x = g.add(x, self._mobilenet_block(g, x, 1))
        return self._mobilenet_block(g, x, 2)

    def _mobilenet_block(self, g: GraphBuilder, x: Node, index: int) -> Node:
        """Block ``index`` (its depthwise convolution's stride) of MobileVLM's projector."""
        prefix = f"mm.model.mb_block.{index}.block"
        h = self._depthwise_conv3(g, x, f"{prefix}.0.0.weight", f"block{index}", stride=index)
        h = self._hardswish(g, layer_norm(g, self, h, f"{prefix}.0.1"))
        squeezed = self._hardsigmoid(g, self.linear(g, g.clamp(self.linear(g, _row_mean(g, h), f"{prefix}.1.fc1"),
                                                               0.0, math.inf), f"{prefix}.1.fc2"))
        h = g.mul(h, g.reshape(squeezed, squeezed.shape[-1:]))
        return layer_norm(g, self, g.mul_mat(self.w(g, f"{prefix}.2.0.weight"), h), f"{prefix}.2.1")

    def _hardsigmoid(self, g: GraphBuilder, x: Node) -> Node:
        """ggml's min(1, max(0, (x + 3) / 6)), the 3 and 6 from the inputs ``threes`` and ``sixes``."""
        width = x.shape[-1]
        shifted = g.add(x, g.input("threes", (width,), F32))
        return g.clamp(g.div(shifted, g.input("sixes", (width,), F32)), 0.0, 1.0)

    def _hardswish(self, g: GraphBuilder, x: Node) -> Node:
        return g.mul(x, self._hardsigmoid(g, x))

    def ldpv2_projector(self, g: GraphBuilder, x: Node) -> Node:
        """MobileVLM V2's: ``mm.model.mlp.0``, GELU, ``mm.model.mlp.2``; the 24x24 grid 2x2
        average-pooled (as gemma3's pooling); then the PEG: a 3x3 depthwise convolution of the
        pooled grid (``mm.model.peg.0``, zero-padded), its bias, and the pooled grid added."""
        x = self.linear(g, g.gelu(self.linear(g, x, "mm.model.mlp.0")), "mm.model.mlp.2")
        pooled = self._window_mean(g, x)
        conv = self._depthwise_conv3(g, pooled, "mm.model.peg.0.weight", "peg")
        return g.add(g.add(conv, self.w(g, "mm.model.peg.0.bias")), pooled)

    def _depthwise_conv3(self, g: GraphBuilder, x: Node, weight: str, taps: str, stride: int = 1) -> Node:
        """ggml_conv_2d_dw (3x3, padding 1, ``stride``) of x [side * side, channels], rows row-major
        over the grid: each output cell's 9 input neighbours (the inputs ``{taps}.{k}``, see
        :func:`_conv3_inputs`; the row past the input for the zero padding, input
        ``zero_row``) laid out as im2col does, [cells, channels, 9], and each channel's 9 kernel
        values multiplied with them (an F16 kernel rounds them to f16, as im2col's F16 copy does)."""
        n, channels = x.shape
        spec = self.weights.get(weight)
        if spec is None or spec.shape[-2:] != (3, 3) or math.prod(spec.shape[:-2]) != channels:
            raise ModelError(f"tensor {weight}: a [{channels}, 3, 3] depthwise kernel is needed")
        padded = g.concat(g.reshape(x, (1, n * channels)), g.input("zero_row", (1, channels), F32))
        padded = g.reshape(padded, (n + 1, channels))
        n_out = ((math.isqrt(n) - 1) // stride + 1) ** 2
        cols = None
        for k in range(9):
            ids = g.input(f"{taps}.{k}", (n_out,), I32)
            tap = g.reshape(g.get_rows(padded, ids, name=f"{taps}.{k}"), (n_out, channels, 1))
            cols = tap if cols is None else g.concat(cols, tap)
        out = g.mul_mat_heads(g.weight(weight, (channels, 1, 9), spec.type), cols, name=f"{taps}.conv")
        return g.reshape(out, (n_out, channels))

    def _window_mean(self, g: GraphBuilder, x: Node) -> Node:
        """Each n_merge x n_merge window of patches averaged as ggml_pool_2d does: its rows added in
        order from 0, then divided by their count (here a scale: exact for a power-of-two window,
        gemma3's 4 x 4 and MobileVLM's 2 x 2)."""
        windows = self._windows(g, x)
        total = windows[0]
        for window in windows[1:]:
            total = g.add(total, window)
        return g.scale(total, 1.0 / len(windows), name="pool")

    def idefics3_projector(self, g: GraphBuilder, x: Node) -> Node:
        """SmolVLM's: clip.cpp's build_patch_merge_permute (each output row the window's patches
        joined, row by row within the window), then ``mm.model.fc`` without a bias."""
        windows = self._windows(g, x)
        merged = windows[0]
        for window in windows[1:]:
            merged = g.concat(merged, window)
        return g.mul_mat(self.w(g, "mm.model.fc.weight"), merged, name="mm.model.fc")

    def gemma3_projector(self, g: GraphBuilder, x: Node) -> Node:
        """Gemma 3's: each n_merge x n_merge window of patches averaged, RMSNorm times
        ``mm.soft_emb_norm``, then the input projection (stored [n_embd, text n_embd], multiplied
        transposed)."""
        p = self.params
        x = g.mul(g.rms_norm(self._window_mean(g, x), p.eps), self.w(g, "mm.soft_emb_norm.weight"))
        spec = self.weights.get("mm.input_projection.weight")
        if spec is None or len(spec.shape) != 2 or spec.shape[0] != p.n_embd:
            raise ModelError(f"tensor mm.input_projection.weight: a [{p.n_embd}, text n_embd] matrix is needed")
        return g.mul_mat(g.weight("mm.input_projection.weight", spec.shape[::-1], spec.type), x, name="mm.input_projection")

    def llava_projector(self, g: GraphBuilder, x: Node) -> Node:
        """LLaVA's projectors: ``mlp`` mm.0, GELU, mm.2 (absent in some files); ``mlp_norm`` (Yi-VL)
        mm.0, LayerNorm mm.1, GELU, mm.3, LayerNorm mm.4. The LayerNorms use the encoder's eps."""
        if self.has("mm.3.weight"):  # clip.cpp's mlp_norm: an mlp file with mm.3 is Yi-VL's
            x = layer_norm(g, self, self.linear(g, x, "mm.0"), "mm.1")
            return layer_norm(g, self, self.linear(g, g.gelu(x), "mm.3"), "mm.4")
        x = g.gelu(self.linear(g, x, "mm.0"))
        return self.linear(g, x, "mm.2") if self.has("mm.2.weight") else x

    def linear(self, g: GraphBuilder, x: Node, name: str) -> Node:
        """``name.weight`` times x plus ``name.bias`` where the file has one."""
        return _project(g, self, x, name)
