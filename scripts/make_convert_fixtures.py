"""Make tests/fixtures/convert: tiny Hugging Face checkpoints and what llama.cpp's
convert_hf_to_gguf.py (0.3.36) makes of them.

A checkpoint (``make_checkpoint``) is written without torch, so that tests/test_convert.py can make
the same bytes again: config.json, random weights as safetensors (numpy, a fixed seed; sharded with
model.safetensors.index.json where the case says), and a tokenizer rebuilt with the ``tokenizers``
package from a llama.cpp vocabulary (the default model's, SmolLM2's BPE: tokenizer.json and
tokenizer_config.json with its chat template). ``main`` runs convert_hf_to_gguf.py in
/work/venv-oracle (torch 2.13.0 CPU, transformers 4.57.6, the vendored gguf-py) for every case and
outtype and records in goldens.json the digest of each checkpoint file and, per output, each
metadata value (type and encoded bytes) and each tensor (type, shape, bytes): the outputs
themselves are tens of MiB.

    python scripts/make_convert_fixtures.py [--oracle /work/venv-oracle/bin/python]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "convert"
LLAMA_CPP = Path("/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
OUTTYPES = ("f32", "f16", "bf16", "q8_0")

_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
          "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 49152,
          "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000, "hidden_act": "silu",
          "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}

#: case -> (config.json, the weights' dtype, shards)
CASES: dict[str, tuple[dict, str, int]] = {
    # SmolLM2-shaped: tied embeddings, bf16 weights, one file
    "llama": (_LLAMA, "bfloat16", 1),
    # Mistral-shaped: an output head of its own, f32 weights in two shards, no rope theta in the config
    "mistral": ({**{k: v for k, v in _LLAMA.items() if k != "rope_theta"}, "architectures": ["MistralForCausalLM"],
                 "model_type": "mistral", "tie_word_embeddings": False, "torch_dtype": "float32",
                 "sliding_window": None}, "float32", 2),
    # Qwen2: QKV biases, f16 weights
    "qwen2": ({**_LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "torch_dtype": "float16",
               "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": 32768}, "float16", 1),
}


def _weights(config: dict) -> dict[str, tuple[int, ...]]:
    """HF tensor names and shapes of a llama-like checkpoint of ``config``."""
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head = d // config["num_attention_heads"]
    kv = head * config["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (d, d),
                   p + "self_attn.k_proj.weight": (kv, d), p + "self_attn.v_proj.weight": (kv, d),
                   p + "self_attn.o_proj.weight": (d, d), p + "post_attention_layernorm.weight": (d,),
                   p + "mlp.gate_proj.weight": (ff, d), p + "mlp.up_proj.weight": (ff, d),
                   p + "mlp.down_proj.weight": (d, ff)}
        if config["model_type"] == "qwen2":
            shapes |= {p + "self_attn.q_proj.bias": (d,), p + "self_attn.k_proj.bias": (kv,),
                       p + "self_attn.v_proj.bias": (kv,)}
    shapes["model.norm.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """safetensors' layout: a little-endian u64 header size, the JSON header, the raw data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        if dtype == "bfloat16":  # the top half of each float32, rounded to nearest even
            bits = array.astype(np.float32).view(np.uint32)
            data = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            data = array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def write_tokenizer(directory: Path, vocab_gguf: Path) -> None:
    """SmolLM2's tokenizer as Hugging Face files, rebuilt from its GGUF vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    from llmcore.gguf import GGUFReader

    with GGUFReader(vocab_gguf) as reader:
        meta = reader.metadata
        tokens, types = list(meta["tokenizer.ggml.tokens"]), list(meta["tokenizer.ggml.token_type"])
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        template = meta["tokenizer.chat_template"]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, merges)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == 3])
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
              "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>", "model_max_length": 8192,
              "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False, "chat_template": template}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def make_checkpoint(directory: Path, case: str, vocab_gguf: Path) -> None:
    """Write checkpoint ``case`` into ``directory``."""
    config, dtype, shards = CASES[case]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(sum(map(ord, case)))
    tensors = {name: (rng.standard_normal(shape) * (0.02 if len(shape) > 1 else 1.0) + (len(shape) == 1))
               .astype(np.float32) for name, shape in _weights(config).items()}
    names = list(tensors)
    if shards == 1:
        write_safetensors(directory / "model.safetensors", tensors, dtype)
    else:
        weight_map = {}
        for k in range(shards):
            part = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            chosen = names[k::shards]
            write_safetensors(directory / part, {n: tensors[n] for n in chosen}, dtype)
            weight_map |= dict.fromkeys(chosen, part)
        index = {"metadata": {"total_size": 0}, "weight_map": dict(sorted(weight_map.items()))}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    write_tokenizer(directory, vocab_gguf)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def summarize(path: Path) -> dict:
    """A GGUF's metadata (per key: its value type or array element type, and a digest of the encoded
    key and value) and tensors (name -> type, shape, digest of the bytes), in file order."""
    from llmcore.gguf import GGUFReader
    from llmcore.gguf.writer import encode_metadata

    with GGUFReader(path) as reader:
        metadata = {key: [int(reader.metadata_types[key]), digest(encode_metadata(key, value, reader.metadata_types[key]))]
                    for key, value in reader.metadata.items()}
        tensors = {name: [int(info.type), list(info.shape), digest(np.ascontiguousarray(reader.raw(name)).tobytes())]
                   for name, info in reader.tensors.items()}
    return {"metadata": metadata, "tensors": tensors}


def write_pre_tokenizer_table() -> None:
    """llmcore/tools/convert/pre_tokenizers.py: convert_hf_to_gguf.py's get_vocab_base_pre, as data
    (its check text and, per digest of the check text's token ids, the pre-tokenizer's name; a
    digest listed twice keeps its last name, as the function's ifs do)."""
    import re

    source = (LLAMA_CPP / "conversion" / "base.py").read_text(encoding="utf-8")
    body = source[source.index("def get_vocab_base_pre"):source.index("Marker: End get_vocab_base_pre")]
    pairs = re.findall(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#[^\n]*\n)*\s*res = "([^"]+)"', body)
    check_text = re.search(r"chktxt = ('.*')\n", body).group(1)
    lines = ['"""convert_hf_to_gguf.py\'s BPE pre-tokenizer detection (llama.cpp 0.3.36), generated by',
             'scripts/make_convert_fixtures.py: a tokenizer\'s ids for ``CHECK_TEXT`` (special tokens added),',
             'written as Python prints a list and hashed with sha256, name its pre-tokenizer."""', "",
             f"CHECK_TEXT = {check_text}", "", "#: sha256 of str(ids) -> tokenizer.ggml.pre", "PRE_TOKENIZERS = {"]
    lines += [f'    "{digest}": "{name}",' for digest, name in dict(pairs).items()]
    lines.append("}")
    (ROOT / "llmcore" / "tools" / "convert" / "pre_tokenizers.py").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", default="/work/venv-oracle/bin/python")
    args = parser.parse_args()
    from llmcore.hub.resolve import resolve_model

    write_pre_tokenizer_table()

    vocab = resolve_model(None)
    goldens: dict = {"llama_cpp": "convert_hf_to_gguf.py from llama-cpp-python 0.3.36's source tree, "
                                  "torch 2.13.0+cpu, transformers 4.57.6", "checkpoints": {}, "outputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            directory = Path(tmp) / case
            make_checkpoint(directory, case, vocab)
            goldens["checkpoints"][case] = {p.name: digest(p.read_bytes()) for p in sorted(directory.iterdir())}
            for outtype in OUTTYPES:
                output = Path(tmp) / f"{case}-{outtype}.gguf"
                subprocess.run([args.oracle, str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(directory),
                                "--outfile", str(output), "--outtype", outtype], check=True, capture_output=True)
                goldens["outputs"][f"{case}-{outtype}"] = summarize(output)
                print(case, outtype, len(goldens["outputs"][f"{case}-{outtype}"]["tensors"]), "tensors")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")


if __name__ == "__main__":
    main()
