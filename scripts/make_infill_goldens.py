"""Make the infill goldens of tests/test_infill.py: a tiny random llama whose vocabulary is the
first 512 tokens of llama.cpp's SentencePiece test vocabulary plus Qwen2.5-Coder's FIM tokens
(found by their text, as llama.cpp finds them), and what llama.cpp 0.3.36 makes of infill requests.

    PYTHONPATH=/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        /work/venv-oracle/bin/python scripts/make_infill_goldens.py

llama-server's infill prompt (tools/server/server-common.cpp, format_prompt_infill) is built here
from llama.cpp's own pieces, step for step: its tokenizer (no BOS, no special-token parsing; the
prompt with special tokens parsed) and its FIM token ids (llama_vocab_fim_pre, ...), with the test
server's budget (-c 1024 -b 512, -n -1: llama-server's -b default, 2048, would leave no room for
input_extra in a small context). Then llama.cpp's greedy
tokens after that prompt. Writes tests/fixtures/infill/fim.gguf and goldens.npz: per case its
``<case>.prompt`` tokens and ``<case>.greedy`` 12 tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_goldens import N_VOCAB, VOCAB, TinyModel, llama  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "infill"
FIM_TOKENS = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
N_CTX, N_BATCH = 1024, 512  # the test server's -c (one slot) and -b: room for the extra chunks
N_PREDICT = -1  # llama-server's default -n
#: the requests of tests/test_infill.py (their JSON: input_prefix, input_suffix, input_extra, prompt)
CASES = {
    "plain": {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n    return c\n"},
    "extra": {"input_prefix": "hello ", "input_suffix": " world", "prompt": "the",
              "input_extra": [{"filename": "notes.txt", "text": "hello there world"}, {"text": "more words"}]},
}


def write_model(path: Path) -> None:
    model = TinyModel("llama", seed=2200)
    llama(model)
    rng = np.random.default_rng(2201)
    n = N_VOCAB + len(FIM_TOKENS)
    for name in ("token_embd.weight", "output.weight"):  # rows for the added tokens
        old = model.tensors[name]
        model.tensors[name] = np.concatenate([old, rng.normal(0, old.std(), (len(FIM_TOKENS), old.shape[1]))
                                              .astype(np.float32)])
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama-fim")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key, value in model.metadata.items():
        writer.add_uint32(f"llama.{key}", value) if isinstance(value, int) else writer.add_float32(f"llama.{key}", value)
    reader = gguf.GGUFReader(str(VOCAB))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()[:N_VOCAB] + FIM_TOKENS
    scores = reader.fields["tokenizer.ggml.scores"].contents()[:N_VOCAB] + [0.0] * len(FIM_TOKENS)
    types = reader.fields["tokenizer.ggml.token_type"].contents()[:N_VOCAB] + [3] * len(FIM_TOKENS)  # CONTROL
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    for name, data in model.tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert n == len(tokens)


def infill_prompt(llm, request: dict) -> list[int]:
    """format_prompt_infill with llama.cpp's tokenizer and FIM ids (spm_infill off, llama-server's default)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    fim = {name: getattr(llama_cpp, f"llama_vocab_fim_{name}")(vocab) for name in ("pre", "suf", "mid", "rep", "sep")}

    def tok(text: str, special: bool = False) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=False, special=special) if text else []

    prefix, suffix = tok(request["input_prefix"]), tok(request["input_suffix"])
    prompt = tok(request.get("prompt", ""), special=True)
    extra: list[int] = []
    if fim["rep"] != -1:
        extra += [fim["rep"], *tok("myproject\n")]
    for chunk in request.get("input_extra", []):
        if fim["sep"] != -1:
            extra += [fim["sep"], *tok(chunk.get("filename", "tmp") + "\n")]
        else:
            extra += tok("\n\n--- snippet ---\n\n")
        extra += tok(chunk["text"])
    if fim["sep"] != -1:
        extra += [fim["sep"], *tok("filename\n")]
    n_prefix = min(len(prefix), 3 * (N_BATCH // 4))
    n_suffix = min(len(suffix), max(0, N_BATCH // 4 - (2 + len(prompt))))
    n_extra = min(max(0, N_CTX - N_BATCH - 2 * N_PREDICT), len(extra))
    prefix = [fim["pre"], *prefix[len(prefix) - n_prefix:], *prompt]
    suffix = [fim["suf"], *suffix[:n_suffix]]
    head = ([llama_cpp.llama_vocab_bos(vocab)] if llama_cpp.llama_vocab_get_add_bos(vocab) else []) + prefix
    return (extra[len(extra) - n_extra:] if n_extra else []) + head + suffix + [fim["mid"]]


def main() -> int:
    import llama_cpp

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "fim.gguf"
    write_model(path)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, logits_all=True, verbose=False)
    goldens = {}
    for name, request in CASES.items():
        prompt = infill_prompt(llm, request)
        llm.reset()
        llm.eval(prompt)
        greedy = []
        for _ in range(12):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            greedy.append(token)
            llm.eval([token])
        goldens[f"{name}.prompt"] = np.array(prompt, np.int32)
        goldens[f"{name}.greedy"] = np.array(greedy, np.int32)
        print(name, prompt, greedy)
    np.savez_compressed(OUT / "goldens.npz", requests=json.dumps(CASES), **goldens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
