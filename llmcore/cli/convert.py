"""``llmcore convert HF_DIR OUT.gguf --outtype f16``: llama.cpp's convert_hf_to_gguf.py."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a Hugging Face checkpoint to GGUF (convert_hf_to_gguf.py)",
        description="Convert the Hugging Face checkpoint in HF_DIR (config.json, safetensors weights in one "
        "file or shards, tokenizer.json or tokenizer.model, tokenizer_config.json) to OUT.gguf with the keys and tensors "
        "llama.cpp's convert_hf_to_gguf.py writes. Architectures: LlamaForCausalLM (SmolLM2, Llama), "
        "MistralForCausalLM, MixtralForCausalLM, Qwen2ForCausalLM, Qwen2MoeForCausalLM, Qwen3ForCausalLM, "
        "Qwen3MoeForCausalLM, Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration (text), "
        "SmolLM3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM (text), Phi3ForCausalLM, "
        "PhiForCausalLM, StableLmForCausalLM, Starcoder2ForCausalLM, GPTBigCodeForCausalLM, Olmo2ForCausalLM, "
        "OlmoForCausalLM, OlmoeForCausalLM, GPT2LMHeadModel, GPTNeoXForCausalLM, BloomForCausalLM, "
        "FalconForCausalLM, MPTForCausalLM, CohereForCausalLM, Glm4ForCausalLM, DeepseekV2ForCausalLM, "
        "InternLM2ForCausalLM, GptOssForCausalLM (MXFP4 or unquantized), DbrxForCausalLM, SeedOssForCausalLM, "
        "Ernie4_5ForCausalLM, ExaoneForCausalLM, OrionForCausalLM, MambaForCausalLM, Mamba2ForCausalLM; "
        "encoders and rerankers: BertModel, BertForSequenceClassification, RobertaModel, "
        "RobertaForSequenceClassification, NomicBertModel, JinaBertModel, ModernBertModel, "
        "ModernBertForSequenceClassification; BPE tokenizer.json, SentencePiece tokenizer.model or WordPiece "
        "vocabularies.")
    p.add_argument("model", metavar="HF_DIR", help="the checkpoint's directory")
    p.add_argument("outfile", metavar="OUT.gguf", help="the GGUF file to write")
    p.add_argument("--outtype", choices=("f32", "f16", "bf16", "q8_0", "auto"), default="auto",
                   help="type of the weight matrices (1-D tensors and norms stay f32; q8_0 falls back to f16 "
                   "where 32 does not divide the rows); auto: bf16 for a bf16 checkpoint, else f16 (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from llmcore.tools.convert import convert

    bar = None

    def start(total: int) -> None:
        nonlocal bar
        if not args.no_progress:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="convert", file=sys.stderr)

    try:
        convert(args.model, args.outfile, args.outtype, on_bytes=lambda n: bar and bar.update(n), on_start=start)
    finally:
        if bar is not None:
            bar.close()
    print(f"convert: wrote {args.outfile}", file=sys.stderr)
    return 0
