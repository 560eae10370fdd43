"""Hugging Face checkpoints to GGUF, as llama.cpp's convert_hf_to_gguf.py (0.3.36) converts them.

``convert(directory, output, outtype)`` reads config.json, the safetensors weights (one file or
shards) and the tokenizer, and writes the GGUF with the same keys and tensors as
convert_hf_to_gguf.py: the metadata is collected with gguf-py (its ``Metadata``, ``SpecialVocab``
and key names, the code convert_hf_to_gguf.py itself uses), the tensors are renamed by gguf-py's
tensor name map, rewritten as the architecture needs (``architectures.py``) and converted with
gguf-py's numpy quantizers, one at a time while the file is written: memory holds one tensor, never
the model.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.gguf import GGMLType, GGUFWriter
from llmcore.gguf.types import tensor_bytes
from llmcore.tools.convert.architectures import ARCHITECTURES, Architecture, Checkpoint, TensorStack
from llmcore.tools.convert.safetensors import StoredTensor, checkpoint_tensors

__all__ = ["OUTTYPES", "convert", "supported_architectures"]

#: --outtype -> (llama.cpp's file type, the type of the tensors it quantizes); "auto" picks f16 or bf16
OUTTYPES: dict[str, tuple[gguf.LlamaFileType, GGMLType]] = {
    "f32": (gguf.LlamaFileType.ALL_F32, GGMLType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, GGMLType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, GGMLType.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, GGMLType.Q8_0),
}

_FLOAT_TYPES = (GGMLType.F32, GGMLType.F16, GGMLType.BF16)
#: tensors convert_hf_to_gguf.py drops
_SKIPPED_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
#: tensors it keeps in float32 whatever the outtype, besides 1-D ones and norms (of the architectures here)
_F32_SUFFIXES = ("ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight", "position_embd.weight", "token_types.weight",
                 "ssm_conv1d.weight")


def supported_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


@dataclass(frozen=True)
class _OutputTensor:
    name: str
    type: GGMLType
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]


def convert(directory: str | Path, output: str | Path, outtype: str = "auto",
            on_bytes: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None) -> None:
    """Convert the checkpoint in ``directory`` to the GGUF ``output``. ``on_start`` is told the bytes
    of tensor data to write, ``on_bytes`` the bytes of each tensor once written."""
    directory = Path(directory)
    if outtype != "auto" and outtype not in OUTTYPES:
        raise LLMCoreError(f"--outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}, auto")
    hparams, arch = _load_config(directory)
    ckpt = Checkpoint(directory, hparams)
    ftype, target = OUTTYPES[_auto_outtype(directory) if outtype == "auto" else outtype]
    if (hparams.get("quantization_config") or {}).get("quant_method") == "mxfp4" and target in _FLOAT_TYPES:
        ftype = gguf.LlamaFileType.MOSTLY_MXFP4_MOE  # prepare_metadata's: the experts stay MXFP4

    # collects the keys, writes nothing; LlamaModel's add_bos_token after SpecialVocab's replaces it,
    # GemmaModel's CodeGemma ids have no key in this gguf-py (gguf-py's warnings about that are
    # llama.cpp's business)
    logging.getLogger("gguf.gguf_writer").setLevel(logging.ERROR)
    logging.getLogger("gguf.vocab").setLevel(logging.ERROR)
    kv = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[arch.arch])
    tensors = _output_tensors(ckpt, arch, gguf.get_tensor_name_map(arch.arch, ckpt.block_count), target, kv)
    total = sum(math.prod(t.shape) for t in tensors)
    kv.add_type(gguf.GGUFType.MODEL)
    metadata = gguf.Metadata.load(None, directory, None, total)
    metadata.name = metadata.name or directory.name
    if metadata.size_label is None and total > 0:
        metadata.size_label = gguf.size_label(*_parameter_counts(tensors))
    metadata.set_gguf_meta_model(kv)
    arch.parameters(kv, ckpt, ftype)
    kv.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if not (directory / "tokenizer.json").is_file() and not (directory / "tokenizer.model").is_file():
        raise LLMCoreError(f"{directory}: no tokenizer.json or tokenizer.model")
    arch.vocab(kv, ckpt)

    writer = GGUFWriter(output)
    for key, value in kv.kv_data[0].items():
        writer.add_metadata(key, value.value, value.sub_type if value.type == gguf.GGUFValueType.ARRAY else value.type)
    for tensor in tensors:
        writer.add_lazy_tensor(tensor.name, tensor.type, tensor.shape, tensor.produce)
    if on_start:
        on_start(sum(tensor_bytes(t.type, t.shape) for t in tensors))
    writer.write(on_tensor=on_bytes)


def _load_config(directory: Path) -> tuple[dict[str, Any], Architecture]:
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LLMCoreError(f"{path}: {error.strerror}") from None
    except ValueError as error:
        raise LLMCoreError(f"{path}: not JSON ({error})") from None
    names = config.get("architectures") or []
    if not names or names[0] not in ARCHITECTURES:
        raise LLMCoreError(f"{path}: architecture {names[0] if names else None!r} is not supported; "
                           f"llmcore convert reads {', '.join(supported_architectures())}")
    arch = ARCHITECTURES[names[0]]
    defaults = arch.config_defaults(config)
    hparams = {**defaults, **config}
    if "text_config" in defaults:  # a composite config's text part, built as its config class builds it
        hparams["text_config"] = defaults["text_config"]
    if "text_config" in hparams:  # TextModel: the text part's keys at the root
        hparams |= hparams["text_config"]
    try:
        return arch.hparams(hparams), arch
    except LLMCoreError as error:
        raise LLMCoreError(f"{path}: {error}") from None


def _parameter_counts(tensors: list[_OutputTensor]) -> tuple[int, int, int, int]:
    """GGUFWriter.get_total_parameter_count: all parameters, those outside the experts, those of one
    expert, and the experts' count (averaged over the stacked expert tensors)."""
    total = shared = expert = expert_sum = n_expert_tensors = 0
    for tensor in tensors:
        size = math.prod(tensor.shape)
        if "_exps." in tensor.name and len(tensor.shape) >= 3:
            count = tensor.shape[-2 if ".bias" in tensor.name else -3]
            expert += size // count
            expert_sum += count
            n_expert_tensors += 1
        else:
            shared += size
        total += size
    return total, shared, expert, expert_sum // n_expert_tensors if n_expert_tensors else 0


def _auto_outtype(directory: Path) -> str:
    """--outtype auto: bf16 or f16 after the checkpoint's first matrix, f16 for any other type."""
    for stored in checkpoint_tensors(directory):
        if len(stored.shape) >= 2:
            return {"BF16": "bf16"}.get(stored.dtype, "f16")
    return "f16"


def _output_tensors(ckpt: Checkpoint, arch: Architecture, names: gguf.TensorNameMap, target: GGMLType,
                    kv: gguf.GGUFWriter) -> list[_OutputTensor]:
    """Every tensor of the output, in convert_hf_to_gguf.py's order (the architecture's extra ones
    first), with its type; a checkpoint tensor's data is made (read, rewritten, converted) only
    when written."""
    outputs = [_OutputTensor(raw.name, raw.type, raw.shape, raw.produce) for raw in arch.raw_tensors(ckpt)]
    for name, data in arch.extra_tensors(kv, ckpt):
        qtype = _tensor_type(name, data.shape, target, arch)
        outputs.append(_OutputTensor(name, qtype, data.shape,
                                     lambda d=data, q=qtype: gguf.quants.quantize(d, gguf.GGMLQuantizationType(int(q)))))
    stacks = [_Stack(stack, ckpt) for stack in arch.stacks]
    for stored in checkpoint_tensors(ckpt.directory):
        name = _text_model_name(arch.rename(stored.name, ckpt))
        if name is None or name.endswith(_SKIPPED_SUFFIXES) or name in arch.skipped:
            continue
        if (merged := next((m for stack in stacks if (m := stack.add(stored)) is not None), None)) is not None:
            for merged_name, parts in merged:
                new_name = _gguf_name(names, merged_name, ckpt)
                shape = (len(parts), *parts[0].shape)
                qtype = _tensor_type(new_name, shape, target, arch)
                outputs.append(_OutputTensor(new_name, qtype, shape, lambda p=parts, q=qtype: _stacked(p, q)))
            continue
        for part_name, part_shape in arch.split(name, stored.shape, ckpt):
            new_name = _gguf_name(names, part_name, ckpt)
            shape = arch.shape(part_name, part_shape, ckpt)
            qtype = _tensor_type(new_name, shape, target, arch)
            outputs.append(_OutputTensor(new_name, qtype, shape,
                                         lambda s=stored, n=part_name, q=qtype: _converted(s, n, q, ckpt, arch)))
    for stack in stacks:
        stack.check_all_merged()
    return outputs


_MULTIMODAL_PREFIXES = ("mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.", "sound_encoder.",
                        "sound_projection.", "speech_embeddings.")
_MULTIMODAL_PARTS = ("visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.", "code2wav.",
                     "projector.", "pre_mm_projector_norm", "image_newline", "view_seperator", "patch_embed",
                     "patch_embedding", "patch_merger.", "patch_merge_mlp.", "model.connector.")


def _text_model_name(name: str | None) -> str | None:
    """TextModel.filter_tensors and ModelBase's, after the model class's own: multimodal tensors
    dropped (a vision-language checkpoint's text model is converted alone), ``language_model.``
    dropped from names."""
    if name is None or name.startswith(_MULTIMODAL_PREFIXES) or any(part in name for part in _MULTIMODAL_PARTS):
        return None
    if name.endswith("e_score_correction_bias"):
        name = name.replace("e_score_correction_bias", "e_score_correction.bias")
    return name.replace("language_model.", "")


def _gguf_name(names: gguf.TensorNameMap, name: str, ckpt: Checkpoint) -> str:
    new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
    if new_name is None:
        raise LLMCoreError(f"{ckpt.directory}: cannot map tensor {name!r} to a GGUF name")
    return new_name


class _Stack:
    """The tensors of one stack read so far, per layer, until a layer has all of them (the model
    class's _experts, StableLM's _q_norms)."""

    def __init__(self, stack: TensorStack, ckpt: Checkpoint) -> None:
        self.stack, self.ckpt = stack, ckpt
        self.pattern = re.compile(stack.pattern)
        self.count = ckpt.find(*stack.count_keys)
        self.pending: dict[int, dict[tuple[str, int], StoredTensor]] = {}

    def add(self, stored: StoredTensor) -> list[tuple[str, list[StoredTensor]]] | None:
        """None for a tensor that is not this stack's; else the stacked tensors (HF name, parts in
        index order) the layer is now complete with, or none yet."""
        match = self.pattern.fullmatch(stored.name)
        if match is None:
            return None
        bid, index, kind = int(match["bid"]), int(match["xid"]), match["kind"]
        layer = self.pending.setdefault(bid, {})
        layer[(kind, index)] = stored
        if len(layer) < self.count * len(self.stack.kinds):
            return []
        try:
            merged = [(self.stack.merged_name.format(bid=bid, kind=kind),
                       [layer.pop((kind, x)) for x in range(self.count)]) for kind in self.stack.kinds]
        except KeyError as missing:
            raise LLMCoreError(f"{self.ckpt.directory}: layer {bid} lacks tensor {missing} to stack") from None
        return merged

    def check_all_merged(self) -> None:
        if left := [t.name for layer in self.pending.values() for t in layer.values()]:
            raise LLMCoreError(f"{self.ckpt.directory}: tensors of incomplete stacks: {', '.join(left[:4])}")


def _tensor_type(name: str, shape: tuple[int, ...], target: GGMLType, arch: Architecture) -> GGMLType:
    """prepare_tensors' choice: 1-D tensors, norms and a few others in F32 (unless the model class
    quantizes every matrix), the rest in the outtype's type, F16 where a quantized type's blocks do
    not divide the rows."""
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return GGMLType.F32
    if not arch.quantize_every_matrix and (name.endswith(_F32_SUFFIXES) or not name.endswith(".weight")):
        return GGMLType.F32
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(target))][0]
    return target if shape[-1] % block == 0 else GGMLType.F16


def _float_data(stored: StoredTensor) -> np.ndarray:
    """The tensor as prepare_tensors hands it on: f16 and f32 as stored, other types as float32."""
    data = stored.load()
    if stored.dtype == "BF16":  # torch's bfloat16 -> float32: the bits in the upper half
        return (data.astype(np.uint32) << 16).view(np.float32)
    if stored.dtype not in ("F16", "F32"):
        return data.astype(np.float32)
    return np.asarray(data)


def _converted(stored: StoredTensor, name: str, qtype: GGMLType, ckpt: Checkpoint, arch: Architecture) -> np.ndarray:
    data = arch.rewrite(name, _float_data(stored), ckpt)
    return gguf.quants.quantize(np.ascontiguousarray(data), gguf.GGMLQuantizationType(int(qtype)))


def _stacked(parts: list[StoredTensor], qtype: GGMLType) -> np.ndarray:
    """torch.stack of the parts (f16 stays f16 when all are)."""
    data = np.stack([_float_data(part) for part in parts])
    return gguf.quants.quantize(data, gguf.GGMLQuantizationType(int(qtype)))
