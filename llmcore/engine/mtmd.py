"""Images in prompts, as llama.cpp's ``mtmd`` (tools/mtmd) puts them there: a projector file
(``mmproj``) opened beside the text model, a prompt cut into chunks at its media markers, each
image preprocessed and encoded into embeddings that take the place of tokens in the text model's
batches.

``Projector`` opens the file and encodes images on the text context's backends, through the
scheduler like any graph; ``tokenize`` cuts a prompt into :class:`TextChunk` and :class:`ImageChunk`
as ``mtmd_tokenize`` does; ``prompt_ids`` gives a chunked prompt one id per position (an image's
positions a value derived from its pixels) so that a KV cache can tell what it already holds.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmcore.engine.batch import Batch
from llmcore.engine.context import Context
from llmcore.errors import LLMCoreError, ModelError
from llmcore.gguf import GGMLType, GGUFReader, dequantize
from llmcore.graph.backend import Backend, WeightData
from llmcore.graph.ir import Node, Op
from llmcore.graph.placement import LayerPlacement
from llmcore.graph.scheduler import CompiledGraph, assign
from llmcore.media import image as images
from llmcore.models import WeightSpec
from llmcore.models.clip import QWEN2VL, QWEN25VL, QWEN_VL, TRANSPOSED_WEIGHTS, ClipParams, ClipVision
from llmcore.tokenizer import Tokenizer

#: llama.cpp's default media marker (mtmd_default_marker)
MEDIA_MARKER = "<__media__>"
#: clip.cpp's padding color of LLaVA's square images
LLAVA_PAD_COLOR = (122, 116, 104)
#: the text around each image's embeddings (mtmd's img_beg, img_end), by projector type
IMAGE_MARKERS = {"gemma3": ("<start_of_image>", "<end_of_image>"), QWEN2VL: ("<|vision_start|>", "<|vision_end|>"),
                 QWEN25VL: ("<|vision_start|>", "<|vision_end|>")}
#: projectors whose images the text model reads with non-causal attention (mtmd_decode_use_non_causal)
NON_CAUSAL_PROJECTORS = ("gemma3",)
#: projectors whose images the text model places with M-RoPE positions (mtmd_decode_use_mrope)
MROPE_PROJECTORS = QWEN_VL
#: Qwen2-VL's bounds on an image's tokens (clip.cpp's set_limit_image_tokens(8, 4096))
QWEN2VL_MIN_TOKENS, QWEN2VL_MAX_TOKENS = 8, 4096


@dataclass
class TextChunk:
    tokens: list[int]


@dataclass
class ImageChunk:
    """An image's place in a prompt: its pixels prepared for the encoder, the number of positions
    its embeddings take, and a digest of the pixels that names it in a KV cache."""

    pixels: np.ndarray  # float32 [height, width, 3], normalized
    n_tokens: int
    digest: bytes
    embd: np.ndarray | None = field(default=None, repr=False)  # float32 [n_tokens, n_embd] once encoded


Chunk = TextChunk | ImageChunk


@dataclass(frozen=True)
class TokenPieces:
    """Tokens named by their exact text (mtmd's lookup_token: the first token whose piece, specials
    rendered, is that text), not tokenized."""

    texts: tuple[str, ...]


#: an image's share of a prompt: its chunks, text tokenized with specials parsed, and tokens by piece
ImagePart = ImageChunk | str | TokenPieces


class Projector:
    """A vision projector file (``mmproj``) for ``text_n_embd``-wide text embeddings, encoding on
    ``placement``'s backends (the text model's first layer's backend, and its fallbacks)."""

    def __init__(self, path: str | Path, text_n_embd: int, placement: LayerPlacement) -> None:
        self.path = Path(path)
        self.reader = GGUFReader(self.path)
        try:
            self.params = ClipParams.from_metadata(self.reader.metadata)
            self.weight_specs = {name: WeightSpec(t.shape, t.type) for name, t in self.reader.tensors.items()}
            side = self.params.image_size // self.params.patch_size
            self._check(ClipVision(self.params, self.weight_specs, side, side), text_n_embd)
        except ModelError as error:
            self.reader.close()
            raise ModelError(f"{self.path}: {error}") from None
        self.placement = placement
        self.backend: Backend = placement.backends.get(0, placement.cpu)
        self._plans: dict[tuple[int, int], CompiledGraph] = {}
        self._loaded: set[tuple[int, str]] = set()

    def _check(self, encoder: ClipVision, text_n_embd: int) -> None:
        graph = encoder.build_image_graph()
        n_out = graph.outputs["embd"].shape[-1]
        if n_out != text_n_embd:
            raise ModelError(f"the projector gives embeddings of {n_out} values; the text model's are {text_n_embd} "
                             "(an mmproj file made for another model)")
        for node in graph.nodes:
            if node.op is Op.WEIGHT and node.name not in self.reader.tensors:
                raise ModelError(f"tensor {node.name} is missing from the projector file")

    # -- images -----------------------------------------------------------------------------------

    @property
    def non_causal(self) -> bool:
        """Whether the text model reads an image's positions with attention in both directions
        (mtmd_decode_use_non_causal: Gemma 3)."""
        return self.params.projector in NON_CAUSAL_PROJECTORS

    @property
    def mrope(self) -> bool:
        """Whether the text model places an image's tokens at 2-D M-RoPE positions
        (mtmd_decode_use_mrope: Qwen2-VL)."""
        return self.params.projector in MROPE_PROJECTORS

    def mrope_positions(self, chunk: ImageChunk, start: int) -> np.ndarray:
        """int32 [4, n]: an image chunk's M-RoPE positions from rotary time ``start``
        (mtmd_image_tokens_get_decoder_pos, as set_position_mrope_2d lays them out): every token at
        time ``start``, then its row and column in the merged grid, each from ``start``, and 0."""
        n_x, n_y = self.token_grid(chunk)
        index = np.arange(n_x * n_y)
        return np.stack([np.full_like(index, start), start + index // n_x, start + index % n_x,
                         np.zeros_like(index)]).astype(np.int32)

    def token_grid(self, chunk: ImageChunk) -> tuple[int, int]:
        """The columns and rows of an image chunk's tokens (clip_n_output_tokens_x / _y)."""
        p = self.params
        width, height = chunk.pixels.shape[1::-1]
        return width // (p.patch_size * p.n_merge), height // (p.patch_size * p.n_merge)

    def image_parts(self, pixels: np.ndarray) -> list[ImagePart]:
        """What takes an image's place in a prompt, as mtmd_tokenize's add_media lays it out: the
        encoder's inputs as image chunks, with the text around them (img_beg and img_end; SmolVLM's
        tile and overview tokens)."""
        p = self.params
        digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).digest()
        if p.projector == "idefics3":
            return self._idefics3_parts(pixels, digest)
        if p.projector == "resampler":
            return self._minicpmv_parts(pixels, digest)
        if p.grid_pinpoints:
            return self._any_resolution_parts(pixels, digest)
        if p.projector in QWEN_VL:  # any size, aligned to the merged patches (mtmd's dyn_size preprocessor)
            align = p.patch_size * p.n_merge
            width, height = preserved_ratio_size(pixels.shape[1], pixels.shape[0], align, QWEN2VL_MIN_TOKENS * align ** 2,
                                                 QWEN2VL_MAX_TOKENS * align ** 2)
            fitted = images.fit(pixels, width, height, images.Resize.BICUBIC, images.Pad.CEIL)
        elif p.projector == "gemma3":
            fitted = images.fit(pixels, p.image_size, p.image_size, images.Resize.BILINEAR, images.Pad.CEIL)
        else:  # LLaVA's square on its gray
            fitted = images.fit(pixels, p.image_size, p.image_size, images.Resize.BICUBIC, images.Pad.CEIL,
                                LLAVA_PAD_COLOR)
        begin, end = IMAGE_MARKERS.get(p.projector, ("", ""))
        return [part for part in (begin, self._chunk(fitted, digest), end) if part != ""]

    def _any_resolution_parts(self, pixels: np.ndarray, digest: bytes) -> list[ImagePart]:
        """LLaVA 1.6's tiling as mtmd 0.3.36 does it (its llava_uhd preprocessor with pinpoints): an
        image within image_size on both sides is one chunk, stretched to the square; a larger one is
        fitted into the best candidate resolution (bicubic, centered on black), cut into
        image_size tiles, row by row, then followed by the whole stretched to the square (the
        overview); no text or newline embeddings between them."""
        p, bicubic, size = self.params, images.Resize.BICUBIC, self.params.image_size
        height, width = pixels.shape[:2]
        overview = images.fit(pixels, size, size, bicubic, images.Pad.NONE)
        if width <= size and height <= size:
            return [self._chunk(overview, digest)]
        best_w, best_h = best_resolution(width, height, p.grid_pinpoints)
        refined = images.fit(pixels, best_w, best_h, bicubic, images.Pad.CEIL)
        tiles = [refined[y:y + size, x:x + size] for y in range(0, best_h, size) for x in range(0, best_w, size)]
        return [*(self._chunk(tile, digest, i) for i, tile in enumerate(tiles)), self._chunk(overview, digest, len(tiles))]

    def _minicpmv_parts(self, pixels: np.ndarray, digest: bytes) -> list[ImagePart]:
        """MiniCPM-V's slicing (mtmd's llava_uhd preprocessor without pinpoints, bicubic): an image
        within image_size on both sides is one chunk stretched to the square; a larger one an
        overview (resized to about image_size^2 pixels keeping its aspect ratio, sides multiples of
        the patch) and the slices of the best grid (at most 9) of the image fitted, on black, into
        the grid's refined size. Laid out as ``<image>`` overview ``</image>``, then for version 2
        (MiniCPM-Llama3-V 2.5) ``<slice>`` and each slice in ``<image>``...``</image>``, rows ended by a
        newline, ``</slice>``; from version 3 on each slice in ``<slice>``...``</slice>``."""
        p, bicubic, size = self.params, images.Resize.BICUBIC, self.params.image_size
        height, width = pixels.shape[:2]
        layout = uhd_layout(width, height, size, p.patch_size)
        if layout is None:
            chunks = [self._chunk(images.fit(pixels, size, size, bicubic, images.Pad.NONE), digest)]
        else:
            (ov_w, ov_h), (ref_w, ref_h), (grid_x, grid_y) = layout
            refined = images.fit(pixels, ref_w, ref_h, bicubic, images.Pad.CEIL)
            tile_w, tile_h = ref_w // grid_x, ref_h // grid_y
            chunks = [self._chunk(images.fit(pixels, ov_w, ov_h, bicubic, images.Pad.NONE), digest)]
            chunks += [self._chunk(refined[y * tile_h:(y + 1) * tile_h, x * tile_w:(x + 1) * tile_w], digest,
                                   1 + y * grid_x + x) for y in range(grid_y) for x in range(grid_x)]
        image, end_image = TokenPieces(("<image>",)), TokenPieces(("</image>",))
        parts: list[ImagePart] = [image, chunks[0], end_image]
        if layout is None:
            return parts
        version_2 = p.minicpmv_version == 2
        begin, end = (image, end_image) if version_2 else (TokenPieces(("<slice>",)), TokenPieces(("</slice>",)))
        if version_2:
            parts.append(TokenPieces(("<slice>",)))
        for y in range(grid_y):
            for x in range(grid_x):
                parts += [begin, chunks[1 + y * grid_x + x], end]
            if y != grid_y - 1:
                parts.append(TokenPieces(("\n",)))
        if version_2:
            parts.append(TokenPieces(("</slice>",)))
        return parts

    def _idefics3_parts(self, pixels: np.ndarray, digest: bytes) -> list[ImagePart]:
        """SmolVLM's tiling (mtmd's idefics3 preprocessor, Lanczos throughout): the image resized so
        its longer side is preproc_image_size (the other side rounded down, then up to even), then
        stretched to whole tiles of image_size; each tile preceded by its row and column, rows ended
        by a newline, then the whole resized down to one tile as the overview."""
        p, lanczos, tile = self.params, images.Resize.LANCZOS, self.params.image_size
        if p.preproc_image_size <= 0:
            raise LLMCoreError(f"{self.path}: an idefics3 file without clip.vision.preproc_image_size (an older "
                               "conversion) is not supported yet")
        height, width = pixels.shape[:2]
        longest, aspect = p.preproc_image_size, width / height
        if width >= height:
            size_w, size_h = longest, int(longest / aspect)
            size_h += size_h % 2
        else:
            size_w, size_h = int(longest * aspect), longest
            size_w += size_w % 2
        grid_x, grid_y = -(-size_w // tile), -(-size_h // tile)
        resized = images.fit(pixels, size_w, size_h, lanczos, images.Pad.NONE)
        refined = images.fit(resized, grid_x * tile, grid_y * tile, lanczos, images.Pad.NONE)
        parts: list[ImagePart] = []
        for y in range(grid_y):
            for x in range(grid_x):
                parts.append(f"<fake_token_around_image><row_{y + 1}_col_{x + 1}>")
                parts.append(self._chunk(refined[y * tile:(y + 1) * tile, x * tile:(x + 1) * tile], digest,
                                         y * grid_x + x))
            if y != grid_y - 1:
                parts.append(TokenPieces(("\n",)))
        overview = images.fit(refined, tile, tile, lanczos, images.Pad.NONE)
        return [*parts, TokenPieces(("\n\n", "<fake_token_around_image>", "<global-img>")),
                self._chunk(overview, digest, grid_x * grid_y), TokenPieces(("<fake_token_around_image>",))]

    def _chunk(self, pixels: np.ndarray, digest: bytes, index: int = 0) -> ImageChunk:
        """uint8 ``pixels`` of the encoder's input size, normalized, as image chunk ``index`` of the
        image named by ``digest``."""
        p = self.params
        prepared = images.normalize(pixels, p.image_mean, p.image_std)
        n_x, n_y = (s // p.patch_size for s in prepared.shape[1::-1])
        name = digest if index == 0 else hashlib.sha256(digest + index.to_bytes(4, "little")).digest()
        return ImageChunk(prepared, self._encoder(n_x, n_y).n_output_tokens, name)

    def _encoder(self, n_x: int, n_y: int) -> ClipVision:
        return ClipVision(self.params, self.weight_specs, n_x, n_y)

    def encode(self, chunk: ImageChunk) -> np.ndarray:
        """The image's embeddings, float32 [n_tokens, text n_embd] (kept on the chunk)."""
        if chunk.embd is None:
            p = self.params
            n_x, n_y = (s // p.patch_size for s in chunk.pixels.shape[1::-1])
            encoder = self._encoder(n_x, n_y)
            plan = self._compiled(encoder)
            feeds = encoder.image_inputs(images.patches(chunk.pixels, p.patch_size))
            chunk.embd = plan.run(feeds, encoder.n_pos)["embd"]
        return chunk.embd

    def _compiled(self, encoder: ClipVision) -> CompiledGraph:
        key = (encoder.n_x, encoder.n_y)
        if key not in self._plans:
            graph = encoder.build_image_graph()
            place = lambda node: self.backend  # noqa: E731  (the whole encoder on one backend)
            fallbacks = self.placement.fallbacks
            by_backend: dict[int, tuple[Backend, list[WeightData]]] = {}
            for node in graph.nodes:
                for src in node.srcs:
                    if src.op is Op.WEIGHT:
                        backend = assign(node, place, fallbacks)
                        if (id(backend), src.name) not in self._loaded:
                            self._loaded.add((id(backend), src.name))
                            by_backend.setdefault(id(backend), (backend, []))[1].append(self._weight_data(src))
            for backend, weights in by_backend.values():
                backend.load_weights(weights)
            self._plans[key] = CompiledGraph(graph, place, fallbacks)
        return self._plans[key]

    def _weight_data(self, node: Node) -> WeightData:
        info = self.reader.tensors[node.name]
        raw = self.reader.raw(node.name)
        if node.name in TRANSPOSED_WEIGHTS:
            if info.type not in (GGMLType.F32, GGMLType.F16):
                raise ModelError(f"{self.path}: tensor {node.name} is {info.type.name}; F32 or F16 is needed")
            data = np.ascontiguousarray(raw.reshape(info.shape).T)
            return WeightData(node.name, info.type, node.shape, data)
        if node.dtype != info.type:  # the patch kernel, which ggml's convolution multiplies in f16
            raw = dequantize(raw, info.type, info.shape).astype(np.float16)
            return WeightData(node.name, GGMLType.F16, node.shape, raw.reshape(node.shape))
        return WeightData(node.name, info.type, node.shape, raw.reshape(node.shape) if raw.ndim != len(node.shape)
                          and info.type in (GGMLType.F32, GGMLType.F16) else raw)

    def close(self) -> None:
        self.reader.close()


def tokenize(tokenizer: Tokenizer, projector: Projector | None, text: str, pictures: Sequence[np.ndarray], *,
             add_special: bool = True, parse_special: bool = True, marker: str = MEDIA_MARKER) -> list[Chunk]:
    """``text`` cut at each ``marker`` into chunks as mtmd_tokenize cuts it: each piece of text
    tokenized alone (no BOS, specials parsed), the i-th marker replaced by picture i's parts
    (:meth:`Projector.image_parts`, their text tokenized alone, specials parsed), and the BOS
    put at the start of the first text chunk (or in a chunk of its own before an image)."""
    parts = text.split(marker)
    if len(parts) - 1 != len(pictures):
        raise LLMCoreError(f"the prompt has {len(parts) - 1} media markers ({marker}) for {len(pictures)} images")
    if pictures and projector is None:
        raise LLMCoreError("this model cannot take images: no multimodal projector is loaded (--mmproj)")
    chunks: list[Chunk] = []

    def add_text(text: str, parse: bool) -> None:
        tokens = tokenizer.tokenize(text, add_special=False, parse_special=parse) if text else []
        if tokens:
            if chunks and isinstance(chunks[-1], TextChunk):
                chunks[-1].tokens.extend(tokens)
            else:
                chunks.append(TextChunk(tokens))

    for i, part in enumerate(parts):
        add_text(part, parse_special)
        if i < len(pictures):
            for piece in projector.image_parts(pictures[i]):
                if isinstance(piece, str):
                    add_text(piece, True)
                elif isinstance(piece, TokenPieces):
                    tokens = [lookup_token(tokenizer, text) for text in piece.texts]
                    if chunks and isinstance(chunks[-1], TextChunk):
                        chunks[-1].tokens.extend(tokens)
                    else:
                        chunks.append(TextChunk(tokens))
                else:
                    chunks.append(piece)
    if add_special and tokenizer.add_bos and tokenizer.bos_id is not None:
        if chunks and isinstance(chunks[0], TextChunk):
            chunks[0].tokens.insert(0, tokenizer.bos_id)
        else:
            chunks.insert(0, TextChunk([tokenizer.bos_id]))
    if add_special and tokenizer.add_eos and tokenizer.eos_id is not None:
        if chunks and isinstance(chunks[-1], TextChunk):
            chunks[-1].tokens.append(tokenizer.eos_id)
        else:
            chunks.append(TextChunk([tokenizer.eos_id]))
    return chunks


def preserved_ratio_size(width: int, height: int, align: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """mtmd's calc_size_preserved_ratio (without a longest edge), in float32 as its C++: each side
    rounded to a multiple of ``align``; scaled down (rounding down) where the area exceeds
    ``max_pixels``, else up (rounding up) where it is under ``min_pixels``. (width, height)."""
    f32 = np.float32

    def by_factor(x: np.float32, rounding) -> int:
        return int(rounding(f32(x) / f32(align))) * align

    def nearest(x: np.float32) -> float:  # std::round: halves away from zero (x is positive)
        return math.floor(float(x) + 0.5)

    w_bar, h_bar = max(align, by_factor(f32(width), nearest)), max(align, by_factor(f32(height), nearest))
    if h_bar * w_bar > max_pixels:
        beta = np.sqrt(f32(height) * f32(width) / f32(max_pixels), dtype=np.float32)
        h_bar = max(align, by_factor(f32(height) / beta, math.floor))
        w_bar = max(align, by_factor(f32(width) / beta, math.floor))
    elif h_bar * w_bar < min_pixels:
        beta = np.sqrt(f32(min_pixels) / (f32(height) * f32(width)), dtype=np.float32)
        h_bar = by_factor(f32(height) * beta, math.ceil)
        w_bar = by_factor(f32(width) * beta, math.ceil)
    return w_bar, h_bar


def best_resolution(width: int, height: int, candidates: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """mtmd's select_best_resolution: the candidate (width, height) the image, scaled to fit it,
    keeps the most of its pixels in, the least wasted area breaking ties, the first kept on a tie."""
    best, best_effective, best_wasted = candidates[0], 0, 1 << 62
    for cand_w, cand_h in candidates:
        scale = min(np.float32(cand_w) / np.float32(width), np.float32(cand_h) / np.float32(height))
        fitted = int(np.float32(width) * scale) * int(np.float32(height) * scale)
        effective = min(fitted, width * height)
        wasted = cand_w * cand_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (cand_w, cand_h), effective, wasted
    return best


def uhd_layout(width: int, height: int, size: int, patch: int
               ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """mtmd's llava_uhd slice instructions without pinpoints (MiniCPM-V), in float32 as its C++:
    None for an image within ``size`` on both sides; else the overview's size, the refined size and
    the grid (columns, rows), each (width, height)."""
    if width <= size and height <= size:
        return None
    f32 = np.float32
    log_ratio = float(np.log(f32(width) / f32(height)))
    multiple = int(min(np.ceil(f32(width) * f32(height) / f32(size * size)), MAX_SLICES))
    candidates = [(m, n // m) for n in (multiple - 1, multiple, multiple + 1) if n != 1 and n <= MAX_SLICES
                  for m in range(1, n + 1) if n % m == 0]
    grid, best_error = (1, 1), np.inf
    for cols, rows in candidates:
        error = float(f32(abs(log_ratio - np.log(cols / rows))))
        if error < best_error:
            grid, best_error = (cols, rows), error
    overview = _best_resize(width, height, size, patch, upscale=False)
    tile = _best_resize(_ensure_divide(width, grid[0]) // grid[0], _ensure_divide(height, grid[1]) // grid[1],
                        size, patch, upscale=True)
    return overview, (tile[0] * grid[0], tile[1] * grid[1]), grid


#: the most slices mtmd cuts a MiniCPM-V image into
MAX_SLICES = 9


def _best_resize(width: int, height: int, size: int, patch: int, upscale: bool) -> tuple[int, int]:
    """llava_uhd's get_best_resize: about size^2 pixels keeping the aspect ratio (where larger, or
    ``upscale``), each side rounded to a multiple of ``patch``."""
    if width * height > size * size or upscale:
        ratio = np.float32(width) / np.float32(height)
        height = int(np.float32(size) / np.sqrt(ratio))
        width = int(np.float32(height) * ratio)
    return _ensure_divide(width, patch), _ensure_divide(height, patch)


def _ensure_divide(length: int, patch: int) -> int:
    """llava_uhd's ensure_divide: ``length`` rounded (halves away from zero, as std::round) to a
    multiple of ``patch``, at least ``patch``."""
    quotient = float(np.float32(length) / np.float32(patch))  # positive: floor(q + 0.5) in double is std::round
    return max(int(math.floor(quotient + 0.5)) * patch, patch)


def lookup_token(tokenizer: Tokenizer, text: str) -> int:
    """The first token whose piece (specials rendered) is ``text``, as mtmd's lookup_token; a
    vocabulary without one is refused by name (llama.cpp would pass an invalid token on)."""
    known = _LOOKED_UP.setdefault(tokenizer, {})
    if text not in known:
        wanted = text.encode()
        found = next((i for i in range(tokenizer.n_vocab) if tokenizer.token_to_piece(i, special=True) == wanted), None)
        if found is None:
            raise LLMCoreError(f"the vocabulary has no token {text!r}, which this projector puts around images")
        known[text] = found
    return known[text]


#: lookup_token's answers per tokenizer: a vocabulary is scanned once per text
_LOOKED_UP: weakref.WeakKeyDictionary[Tokenizer, dict[str, int]] = weakref.WeakKeyDictionary()


def prompt_ids(chunks: Sequence[Chunk]) -> list[int]:
    """One id per position: a text chunk's tokens, an image's positions a negative value derived from
    its pixels (so two prompts share a cached prefix only where they hold the same images)."""
    ids: list[int] = []
    for chunk in chunks:
        if isinstance(chunk, TextChunk):
            ids.extend(chunk.tokens)
        else:
            ids.extend([-1 - int.from_bytes(chunk.digest[:4], "little") % (1 << 30)] * chunk.n_tokens)
    return ids


def image_spans(chunks: Sequence[Chunk]) -> list[tuple[int, ImageChunk]]:
    """Each image chunk with the position it starts at."""
    spans, position = [], 0
    for chunk in chunks:
        if isinstance(chunk, ImageChunk):
            spans.append((position, chunk))
            position += chunk.n_tokens
        else:
            position += len(chunk.tokens)
    return spans


def cached_prefix(chunks: Sequence[Chunk], keep: int) -> int:
    """``keep`` cached positions cut back to the start of an image they end inside: an image's
    embeddings are decoded whole (llama.cpp never splits an image chunk across a cache boundary)."""
    for start, chunk in image_spans(chunks):
        if start < keep < start + chunk.n_tokens:
            return start
    return keep


def eval_chunks(context: Context, projector: Projector | None, chunks: Sequence[Chunk], keep: int = 0,
                seq_id: int = 0) -> np.ndarray:
    """Decode the positions from ``keep`` on of a chunked prompt into ``seq_id`` (as
    mtmd_helper_eval_chunks: text as tokens, each image's embeddings as one batch of embeddings,
    split by the context's n_batch) and return the logits of its last position."""
    position, logits = 0, None
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        if isinstance(chunk, TextChunk):
            end = position + len(chunk.tokens)
            if end > keep:
                start = max(keep, position)
                batch = Batch.for_sequence(chunk.tokens[start - position:], start, seq_id)
                batch.logits &= last
                out = context.decode(batch)
        else:
            end = position + chunk.n_tokens
            if end > keep:
                out = decode_image(context, projector, chunk, position, seq_id, last)
        if last and end > keep:
            logits = out[-1]
        position = end
    if logits is None:
        raise LLMCoreError("the prompt is empty")
    return logits


def decode_image(context: Context, projector: Projector | None, chunk: ImageChunk, start: int, seq_id: int,
                 last_logits: bool) -> np.ndarray:
    """Encode ``chunk`` and decode its embeddings at positions from ``start`` of ``seq_id``
    (mtmd_helper_decode_image_chunk: split by the context's n_batch, attention non-causal where the
    projector's model wants it); the logits of its last position where ``last_logits``."""
    if projector is None:
        raise LLMCoreError("this model cannot take images: no multimodal projector is loaded (--mmproj)")
    rope = None
    if projector.mrope:
        if context.arch.n_pos_per_embd == 1:
            raise LLMCoreError(f"the {projector.params.projector} projector places images at M-RoPE positions: it goes "
                               f"with a qwen2vl text model, not {context.model.hparams.arch}")
        rope = projector.mrope_positions(chunk, context.cells.rope_start(seq_id, start))
    batch = Batch.for_embeddings(projector.encode(chunk), start, seq_id, last_logits=last_logits, rope_positions=rope)
    return context.decode(batch, causal_attn=not projector.non_causal)
