"""``llmcore embedding -m MODEL -p TEXT``: embeddings of one or more texts, printed as llama.cpp's
llama-embedding prints them (its flags and output formats).

The prompt holds one text per ``--embd-separator`` (a newline by default); all of them are
decoded together, a sequence each. With ``--pooling rank`` (a reranker) each text is a query and a
document separated by ``--cls-separator`` (a tab), and the scores are printed.
"""

from __future__ import annotations

import argparse
import sys

from llmcore.cli._common import add_model_args, add_pooling_arg, load_llm
from llmcore.errors import LLMCoreError

OUTPUT_FORMATS = ("", "array", "json", "json+", "raw")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("embedding", help="embeddings of texts (llama-embedding)",
                              description="Compute the embeddings of texts, one per --embd-separator, in one "
                                          "batch (like llama.cpp's llama-embedding).")
    add_model_args(p, n_ctx=512)
    g = p.add_argument_group("embedding")
    source = g.add_mutually_exclusive_group(required=True)
    source.add_argument("-p", "--prompt", metavar="TEXT", help="the texts, separated by --embd-separator")
    source.add_argument("-f", "--file", metavar="FNAME", help="read the texts from a file")
    add_pooling_arg(g)
    g.add_argument("--embd-normalize", type=int, default=2, metavar="N",
                   help="normalisation for embeddings (-1=none, 0=max absolute int16, 1=taxicab, 2=euclidean, "
                        ">2=p-norm) (default: 2)")
    g.add_argument("--embd-output-format", choices=OUTPUT_FORMATS, default="", metavar="FORMAT",
                   help="empty = default, \"array\" = [[],[]...], \"json\" = openai style, \"json+\" = same \"json\" "
                        "+ cosine similarity matrix, \"raw\" = plain whitespace-delimited output (one embedding per line)")
    g.add_argument("--embd-separator", default="\n", metavar="STRING",
                   help="separator of embeddings, for example \"<#sep#>\" (default: a newline)")
    g.add_argument("--cls-separator", default="\t", metavar="STRING",
                   help="separator of a reranker's query and document, for example \"<#seq#>\" (default: a tab)")
    g.add_argument("--verbose-prompt", action="store_true", help="print each text's tokens")
    p.set_defaults(func=run, embedding=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from llmcore.engine.embeddings import cosine
    from llmcore.models.pooling import Pooling

    if args.file is not None:
        try:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                args.prompt = f.read()
        except OSError as error:
            raise LLMCoreError(f"cannot read {args.file}: {error.strerror}") from None
    args.batch_size = max(args.batch_size, args.ctx_size)  # llama-embedding: the batch is the context
    llm = load_llm(args)
    pooling = llm.pooling
    texts = args.prompt.split(args.embd_separator)
    inputs = [llm.tokenize(_rerank_text(llm, t, args.cls_separator) if pooling is Pooling.RANK else t,
                           add_special=True, parse_special=True) for t in texts]
    if args.verbose_prompt:
        for i, (text, tokens) in enumerate(zip(texts, inputs)):
            print(f"embedding: prompt {i}: '{text}'\nembedding: number of tokens in prompt = {len(tokens)}", file=sys.stderr)
            for token in tokens:
                print(f"{token:6d} -> '{llm.tokenizer.token_to_piece(token).decode('utf-8', 'replace')}'", file=sys.stderr)
    norm = -1 if pooling is Pooling.RANK else args.embd_normalize  # scores are printed as they are
    out = llm.embed(inputs, normalize=norm)
    rows = np.concatenate(out) if pooling is Pooling.NONE else out
    number = "{:1.0f}" if args.embd_normalize == 0 else "{:1.7f}"
    fmt = args.embd_output_format
    if fmt == "":
        _print_default(rows, texts, pooling, args.embd_normalize, cosine)
    elif fmt == "raw":
        for row in rows:
            print(" ".join(number.format(x) for x in row))
    else:
        vectors = ["[" + ",".join(number.format(x) for x in row) + "]" for row in rows]
        if fmt == "array":
            print("[" + ",".join(vectors) + "]")
        else:
            data = ",\n".join(f'    {{\n      "object": "embedding",\n      "index": {j},\n      "embedding": {v}\n    }}'
                              for j, v in enumerate(vectors))
            text = '{\n  "object": "list",\n  "data": [\n' + data + "\n  ]"
            if fmt == "json+" and len(texts) > 1:
                matrix = ",\n".join("    [" + ", ".join(f"{cosine(a, b):6.2f}" for b in rows) + " ]" for a in rows)
                text += ',\n  "cosineSimilarity": [\n' + matrix + "\n  ]"
            print(text + "\n}")
    return 0


def _rerank_text(llm, text: str, separator: str) -> str:
    """A reranker's input, as llama-embedding makes it: the file's rerank template with the query
    and document filled in, or the parts joined by the EOS and SEP texts the vocabulary adds."""
    parts = text.split(separator)
    if len(parts) < 2:
        return text
    template = llm.metadata.get("tokenizer.chat_template.rerank")
    if isinstance(template, str):
        return template.replace("{query}", parts[0]).replace("{document}", parts[1])
    vocab = llm.tokenizer.vocab
    joint = (vocab.texts[vocab.eos_id] if vocab.add_eos and vocab.eos_id is not None else "") + \
        (vocab.texts[vocab.sep_id] if vocab.add_sep and vocab.sep_id is not None else "")
    return joint.join(parts)


def _print_default(rows, texts: list[str], pooling, embd_normalize: int, cosine) -> None:
    from llmcore.models.pooling import Pooling

    number = "{:6.0f} " if embd_normalize == 0 else "{:9.6f} "
    print()
    if pooling is Pooling.NONE:
        for j, row in enumerate(rows):
            print(f"embedding {j}: " + "".join(number.format(x) for x in row[:3]) + " ... "
                  + "".join(number.format(x) for x in row[-3:]))
        return
    if pooling is Pooling.RANK:
        for j, row in enumerate(rows):
            print(f"rerank score {j}: {row[0]:8.3f}")
        return
    for j, row in enumerate(rows):
        shown = row[:16] if len(texts) > 1 else row
        print(f"embedding {j}: " + "".join(number.format(x) for x in shown))
    if len(texts) > 1:
        print("\ncosine similarity matrix:\n")
        print("".join(f"{t[:6]:>6.6s} " for t in texts))
        for i, a in enumerate(rows):
            print("".join(f"{cosine(a, b):6.2f} " for b in rows) + texts[i][:10])
