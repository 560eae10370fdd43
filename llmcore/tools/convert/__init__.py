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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from llmcore.errors import LLMCoreError
from llmcore.gguf import GGMLType, GGUFWriter
from llmcore.gguf.types import tensor_bytes
from llmcore.tools.convert.architectures import ARCHITECTURES, Architecture
from llmcore.tools.convert.safetensors import StoredTensor, checkpoint_tensors
from llmcore.tools.convert.vocab import add_gpt2_vocab, tokenizer_config

__all__ = ["OUTTYPES", "convert", "supported_architectures"]

#: --outtype -> (llama.cpp's file type, the type of the tensors it quantizes)
OUTTYPES: dict[str, tuple[gguf.LlamaFileType, GGMLType]] = {
    "f32": (gguf.LlamaFileType.ALL_F32, GGMLType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, GGMLType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, GGMLType.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, GGMLType.Q8_0),
}

#: tensors convert_hf_to_gguf.py drops
_SKIPPED_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
#: tensors it keeps in float32 whatever the outtype, besides 1-D ones and norms (of the architectures here)
_F32_SUFFIXES = ("ffn_gate_inp.weight", "position_embd.weight", "token_types.weight")


def supported_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


@dataclass(frozen=True)
class _OutputTensor:
    name: str
    type: GGMLType
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray]


def convert(directory: str | Path, output: str | Path, outtype: str = "f16",
            on_bytes: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None) -> None:
    """Convert the checkpoint in ``directory`` to the GGUF ``output``. ``on_start`` is told the bytes
    of tensor data to write, ``on_bytes`` the bytes of each tensor once written."""
    directory = Path(directory)
    if outtype not in OUTTYPES:
        raise LLMCoreError(f"--outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    ftype, target = OUTTYPES[outtype]
    hparams, arch = _load_config(directory)
    n_layer = hparams["num_hidden_layers"]
    tensors = _output_tensors(directory, hparams, arch, gguf.get_tensor_name_map(arch.arch, n_layer), target)

    # collects the keys, writes nothing; LlamaModel's add_bos_token after SpecialVocab's replaces it
    # (gguf-py's warning about that is llama.cpp's business)
    logging.getLogger("gguf.gguf_writer").setLevel(logging.ERROR)
    kv = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[arch.arch])
    total = sum(math.prod(t.shape) for t in tensors)
    kv.add_type(gguf.GGUFType.MODEL)
    metadata = gguf.Metadata.load(None, directory, None, total)
    metadata.name = metadata.name or directory.name
    if metadata.size_label is None and total > 0:
        metadata.size_label = gguf.size_label(total, total, 0, 0)
    metadata.set_gguf_meta_model(kv)
    _add_text_parameters(kv, hparams, ftype)
    arch.parameters(kv, hparams)
    kv.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocab(kv, directory, hparams, arch)

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
    return {**arch.config_defaults(config), **config}, arch


def _output_tensors(directory: Path, hparams: dict[str, Any], arch: Architecture, names: gguf.TensorNameMap,
                    target: GGMLType) -> list[_OutputTensor]:
    """Every tensor of the output, in convert_hf_to_gguf.py's order, with its type; its data is made
    (read, rewritten, converted) only when written."""
    outputs = []
    for stored in checkpoint_tensors(directory):
        if stored.name.endswith(_SKIPPED_SUFFIXES):
            continue
        new_name = names.get_name(stored.name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise LLMCoreError(f"{directory}: cannot map tensor {stored.name!r} to a GGUF name")
        qtype = _tensor_type(new_name, stored.shape, target)
        outputs.append(_OutputTensor(new_name, qtype, stored.shape,
                                     lambda s=stored, q=qtype: _converted(s, q, hparams, arch)))
    return outputs


def _tensor_type(name: str, shape: tuple[int, ...], target: GGMLType) -> GGMLType:
    """prepare_tensors' choice: 1-D tensors, norms and a few others in F32, the rest in the
    outtype's type, F16 where a quantized type's blocks do not divide the rows."""
    if len(shape) <= 1 or name.endswith(("_norm.weight", *_F32_SUFFIXES)) or not name.endswith(".weight"):
        return GGMLType.F32
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(target))][0]
    return target if shape[-1] % block == 0 else GGMLType.F16


def _converted(stored: StoredTensor, qtype: GGMLType, hparams: dict[str, Any], arch: Architecture) -> np.ndarray:
    data = stored.load()
    if stored.dtype == "BF16":  # torch's bfloat16 -> float32: the bits in the upper half
        data = (data.astype(np.uint32) << 16).view(np.float32)
    elif stored.dtype not in ("F16", "F32"):
        data = data.astype(np.float32)
    data = arch.rewrite(stored.name, np.asarray(data), hparams)
    return gguf.quants.quantize(np.ascontiguousarray(data), gguf.GGMLQuantizationType(int(qtype)))


def _add_text_parameters(kv: gguf.GGUFWriter, hparams: dict[str, Any], ftype: gguf.LlamaFileType) -> None:
    """TextModel.set_gguf_parameters, for the keys of the architectures llmcore converts."""
    kv.add_block_count(hparams["num_hidden_layers"])
    if (n_ctx := hparams.get("max_position_embeddings")) is not None:
        kv.add_context_length(n_ctx)
    kv.add_embedding_length(hparams["hidden_size"])
    if (n_ff := hparams.get("intermediate_size")) is not None:
        kv.add_feed_forward_length(n_ff)
    kv.add_head_count(hparams["num_attention_heads"])
    if (n_head_kv := hparams.get("num_key_value_heads")) is not None:
        kv.add_head_count_kv(n_head_kv)
    rope = hparams.get("rope_parameters", hparams.get("rope_scaling")) or {}
    rope_type = rope.get("rope_type", rope.get("type"))
    if rope_type == "linear" and rope.get("factor") is not None:
        kv.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        kv.add_rope_scaling_factor(rope["factor"])
    elif rope_type == "yarn" and rope.get("factor") is not None:
        kv.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        kv.add_rope_scaling_factor(rope["factor"])
        kv.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    if (theta := rope.get("rope_theta", hparams.get("rope_theta"))) is not None:
        kv.add_rope_freq_base(theta)
    if (eps := hparams.get("rms_norm_eps")) is not None:
        kv.add_layer_norm_rms_eps(eps)
    if (head_dim := hparams.get("head_dim")) is not None:
        kv.add_key_length(head_dim)
        kv.add_value_length(head_dim)
    kv.add_file_type(ftype)


def _add_vocab(kv: gguf.GGUFWriter, directory: Path, hparams: dict[str, Any], arch: Architecture) -> None:
    if (directory / "tokenizer.model").is_file():
        raise LLMCoreError(f"{directory}: SentencePiece tokenizers (tokenizer.model) are not supported yet")
    if not (directory / "tokenizer.json").is_file():
        raise LLMCoreError(f"{directory}: no tokenizer.json")
    if arch.llama_vocab and (prefix := tokenizer_config(directory).get("add_prefix_space")) is not None:
        kv.add_add_space_prefix(prefix)
    add_gpt2_vocab(kv, directory, hparams.get("vocab_size"))
    if arch.llama_vocab and hparams.get("vocab_size", 32000) == 49152:
        kv.add_add_bos_token(False)
