"""The CLI reads llama.cpp's command lines as llama.cpp does: flags matched whole (no abbreviations,
no values glued to short flags), and each llama.cpp flag a subcommand lacks named as not supported
yet (``llmcore/cli/llama_flags.py``, generated from llama.cpp's ``common/arg.cpp``)."""

from __future__ import annotations

import argparse

import pytest

from llmcore.cli import build_parser, main
from llmcore.cli.llama_flags import LLAMA_CPP_FLAGS, LLAMA_CPP_OPTIONS


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


COMMANDS = sorted(_subcommand_parsers())


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("flags", "named"), [
    (["-fit"], "-fit"),
    (["-fit", "on"], "-fit"),
    (["--fit", "off"], "--fit"),
    (["-fit=on"], "-fit"),
    (["-cram", "8"], "-cram"),
    (["-cram", "8", "-m", "model.gguf", "-p", "hi"], "-cram"),  # the first flag not supported
])
def test_llama_cpp_flag_not_implemented_is_named(command, flags, named, capsys):
    """One line naming the flag and what it does in llama.cpp, exit status 2: never an error about
    another flag (``-f it``, ``-c ram``) or about a required flag the command line lacks."""
    with pytest.raises(SystemExit) as exit_:
        main([command, *flags])
    assert exit_.value.code == 2
    description = LLAMA_CPP_FLAGS[named]
    assert capsys.readouterr().err == (f"llmcore {command}: error: flag {named} (llama.cpp's {description}) "
                                       "is not supported yet\n")


def test_flag_descriptions_are_short_and_read_from_arg_cpp():
    assert LLAMA_CPP_FLAGS["-fa"] == LLAMA_CPP_FLAGS["--flash-attn"] == "set Flash Attention use"
    assert LLAMA_CPP_FLAGS["-ctv"] == "KV cache data type for V"
    assert LLAMA_CPP_FLAGS["-sm"] == "how to split the model across multiple GPUs"
    assert (("-ngl", "--gpu-layers", "--n-gpu-layers") in [names for names, _ in LLAMA_CPP_OPTIONS])
    assert len(LLAMA_CPP_FLAGS) > 500
    assert all(description and "\n" not in description and "%" not in description
               for description in LLAMA_CPP_FLAGS.values())


def test_own_flags_keep_working():
    parse = build_parser().parse_args
    run = parse(["run", "-m", "x.gguf", "-c", "128", "-b", "32", "-t", "2", "-ngl", "0", "-sm", "none", "-ts", "3,1",
                 "-mg", "0", "-ot", "a=cpu", "-ctk", "f32", "-f", "prompt.txt", "-n", "5", "-e", "-s", "1",
                 "--temp", "0", "-r", "User:", "-cnv", "-co", "-v"])
    assert (run.model, run.ctx_size, run.batch_size, run.threads, run.n_gpu_layers, run.split_mode) == \
        ("x.gguf", 128, 32, 2, "0", "none")
    assert (run.tensor_split, run.cache_type_k, run.file, run.n_predict, run.escape, run.seed, run.temperature) == \
        ([3.0, 1.0], "f32", "prompt.txt", 5, True, 1, 0.0)
    assert (run.reverse_prompt, run.conversation, run.color, run.verbose) == (["User:"], True, "auto", True)
    assert parse(["run", "--cache-type-k", "f32", "--gpu-layers", "all"]).cache_type_k == "f32"
    both = parse(["run", "-ctk", "q8_0", "-ctv", "q4_0", "-fa", "on"])
    assert (both.cache_type_k, both.cache_type_v, both.flash_attn) == ("q8_0", "q4_0", "on")
    serve = parse(["serve", "-np", "2", "-to", "5", "-a", "name", "--port", "0"])
    assert (serve.parallel, serve.timeout, serve.alias, serve.port) == (2, 5.0, "name", 0)
    assert parse(["perplexity", "-f", "wiki.txt", "--chunks", "3"]).chunks == 3
    bench = parse(["bench", "-p", "16", "-n", "4", "-r", "2"])  # llama-bench's meanings of -p, -n, -r
    assert (bench.n_prompt, bench.n_gen, bench.repetitions, bench.n_depth) == ([16], [4], 2, [0])
    bench = parse(["bench", "-p", "0", "-n", "8,16", "-d", "0,1024"])  # and its comma-separated lists
    assert (bench.n_prompt, bench.n_gen, bench.n_depth) == ([0], [8, 16], [0, 1024])
    tokenize = parse(["tokenize", "-m", "x.gguf", "-f", "text.txt", "--ids", "--no-bos"])
    assert (tokenize.file, tokenize.ids, tokenize.no_bos) == ("text.txt", True, True)


@pytest.mark.parametrize(("args", "unrecognized"), [
    (["run", "--ctx", "8"], "--ctx 8"),  # no prefix of --ctx-size
    (["run", "--no-display"], "--no-display"),  # nor of --no-display-prompt
    (["run", "-c8"], "-c8"),  # no value glued to a short flag
    (["tokenize", "-m", "x.gguf", "-p", "x", "-fHello"], "-fHello"),
])
def test_flags_are_matched_whole(args, unrecognized, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"llmcore: error: unrecognized arguments: {unrecognized}\n"


@pytest.mark.parametrize("command", [
    c for c in COMMANDS if c != "bench"  # llama-bench has flags of its own: -p, -n and -r mean other things there
])
def test_a_llama_cpp_option_is_known_by_all_its_names(command):
    """A llama.cpp option a subcommand implements is accepted under each of llama.cpp's names for
    it: none of them may be refused as not supported."""
    own = set(_subcommand_parsers()[command]._option_string_actions)
    partial = {names for names, _ in LLAMA_CPP_OPTIONS if own & set(names) and not set(names) <= own}
    assert not partial


def test_help_says_what_llmcore_does(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "serve", "quantize", "gguf-split", "bench", "perplexity"):
        assert command in out
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--usage"])  # llama.cpp's third name of --help
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: llmcore run")


def test_a_command_is_parsed_without_importing_the_others():
    """``llmcore quantize ...`` builds only quantize's parser; the full parser when the name is
    not a module's (``list``) or absent."""
    from llmcore.cli import build_parser

    def choices(parser):
        return next(action for action in parser._actions if action.dest == "command").choices

    assert set(choices(build_parser("gguf-split"))) == {"gguf-split"}
    assert {"list", "run", "gguf-split"} <= set(choices(build_parser("list")))
    assert {"list", "run", "gguf-split"} <= set(choices(build_parser(None)))
