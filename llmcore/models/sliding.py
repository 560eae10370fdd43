"""Sliding-window attention on some layers and full attention on the others (llama.cpp's iSWA
models: Gemma 2 and 3, gpt-oss), as a mixin placed before the family's base class."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from llmcore.graph.builder import RopeParams
from llmcore.graph.ir import Node
from llmcore.models.base import BatchInputs, HParams, SlidingWindow


class AlternatingWindows:
    """The window (``attention.sliding_window``, else ``default_window``; 0: no layer slides),
    which layers slide (the file's pattern, else all but every ``default_pattern``-th), their mask
    (``kq_mask_swa``) and their rotary settings (``rope.freq_base_swa`` where given)."""

    default_window: ClassVar[int] = 0
    default_pattern: ClassVar[int] = 2
    dense_first: ClassVar[bool] = False  # the pattern's full-attention layer opens each group of layers
    rope: RopeParams

    def set_windows(self, hparams: HParams) -> None:
        """Read the windows from ``hparams``; call from ``__init__`` once ``self.rope`` is set."""
        sliding = hparams.sliding or SlidingWindow(None, None, None)
        self.sliding_window = sliding.size if sliding.size is not None else self.default_window
        self.windowed = sliding.windowed_layers(hparams.n_layer, self.default_pattern, self.dense_first) if self.sliding_window else ()
        self.window_rope = self.sliding_rope(sliding)

    def sliding_rope(self, sliding: SlidingWindow) -> RopeParams:
        """Windowed layers rotate with ``rope.freq_base_swa`` where given, else as the others."""
        return dataclasses.replace(self.rope, freq_base=sliding.rope_freq_base or self.rope.freq_base)

    def layer_rope(self, il: int) -> RopeParams:
        return self.window_rope if self.slides(il) else self.rope

    def layer_kq_mask(self, inp: BatchInputs, il: int) -> Node:
        return inp.kq_mask_swa if self.slides(il) else inp.kq_mask

    def slides(self, il: int) -> bool:
        return bool(self.windowed) and self.windowed[il]
