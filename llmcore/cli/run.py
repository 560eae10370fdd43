"""``llmcore run``: text completion from a prompt, with llama-completion's flags."""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path
from typing import Any

from llmcore.cli._common import (
    add_context_shift_args,
    add_mmproj_arg,
    add_model_args,
    add_speculative_args,
    load_llm,
    print_memory,
    check_plan_speed,
    print_timings,
)
from llmcore.cli.sampling_args import add_sampling_args, sampling_from_args
from llmcore.errors import LLMCoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="generate text from a prompt (llama-cli / llama-completion)",
                              description="Generate text from a prompt. With no -m, the default model "
                                          "(SmolLM2-135M-Instruct) is fetched once into the cache.")
    add_model_args(p)
    g = p.add_argument_group("prompt and generation")
    g.add_argument("-p", "--prompt", help="prompt to start generation with")
    g.add_argument("-f", "--file", help="a file containing the prompt")
    g.add_argument("-n", "--predict", "--n-predict", dest="n_predict", type=int, default=-1, metavar="N",
                   help="number of tokens to predict (default: -1, until end of text or a full context)")
    g.add_argument("-e", "--escape", action="store_true", help="process escapes (\\n, \\t, \\', \\\", \\\\) in the prompt")
    g.add_argument("--ignore-eos", action="store_true", help="keep generating after the end-of-text token")
    g.add_argument("--no-display-prompt", action="store_true", help="don't print the prompt before the generation")
    g.add_argument("--verbose-prompt", action="store_true", help="print the prompt's tokens before generating")
    add_context_shift_args(g)
    add_mmproj_arg(p)
    p.add_argument("--image", "--audio", "--video", dest="image", action="append", default=[], metavar="FNAME",
                   help="an image for the prompt (with --mmproj; repeat it or give a comma-separated list): "
                        "each takes the place of a <__media__> marker, or goes before the prompt, which is then "
                        "formatted as a chat message, as llama-mtmd-cli does (audio and video files are refused: "
                        "not supported yet)")
    add_speculative_args(p)
    add_sampling_args(p)
    from llmcore.cli import conversation

    conversation.add_args(p)
    p.set_defaults(func=run)


def read_prompt(args: argparse.Namespace) -> str:
    if args.file:
        try:
            prompt = Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise LLMCoreError(f"cannot read prompt file {args.file}: {error.strerror}") from None
    else:
        prompt = args.prompt or ""
    if args.escape:
        prompt = codecs.decode(prompt.encode("utf-8"), "unicode_escape").encode("latin-1").decode("utf-8")
    return prompt


def run(args: argparse.Namespace) -> int:
    from llmcore.cli import conversation

    prompt = read_prompt(args)
    llm = load_llm(args)
    if args.image:
        return run_with_images(llm, args, prompt)
    if conversation.wanted(args, llm):
        return conversation.run_session(llm, args, prompt)
    cache = conversation.prompt_cache(args)
    if cache:
        cache.load(llm)
    tokens = llm.tokenize(prompt, add_special=True, parse_special=True)
    sampler = llm.sampler(**sampling_from_args(args))  # a bad grammar fails before any output
    if args.verbose_prompt:
        for token in tokens:
            print(f"{token:6d} -> {llm.tokenizer.token_to_piece(token)!r}", file=sys.stderr)
    if not args.no_display_prompt:
        sys.stdout.write(prompt)
    try:
        pieces = llm.generate(tokens, max_tokens=args.n_predict, ignore_eos=args.ignore_eos, sampler=sampler,
                              context_shift=args.context_shift, n_keep=args.keep)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    finally:  # the prompt's cells stay valid whatever stopped the generation
        if cache:
            cache.save(llm, tokens)
    sys.stdout.write("\n")
    print_timings(llm)
    check_plan_speed(llm)
    if args.verbose:  # the KV cache and compute buffers exist once the first step has run
        print_memory(llm)
    return 0


def run_with_images(llm: Any, args: argparse.Namespace, prompt: str) -> int:
    """llama-mtmd-cli's single turn: the images' markers go before a prompt that has none, the prompt
    becomes a user message in the chat template, and the reply is generated after the images."""
    from llmcore.engine.mtmd import MEDIA_MARKER
    from llmcore.media.image import load_image

    if llm.projector is None:
        raise LLMCoreError("--image needs a multimodal projector file (--mmproj)")
    paths = [path for value in args.image for path in value.split(",") if path]
    pictures = [load_image(path) for path in paths]
    if MEDIA_MARKER not in prompt:
        prompt = MEDIA_MARKER * len(pictures) + prompt
    text = llm.chat_template.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
    pieces = llm.generate(text, images=pictures, max_tokens=args.n_predict, ignore_eos=args.ignore_eos,
                          sampler=llm.sampler(**sampling_from_args(args)))
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    print_timings(llm)
    return 0
