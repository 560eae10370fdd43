"""What ``llmcore quantize`` does before and around quantizing, kept cheap (issue 17: as fast as
llama-quantize, start-up included): string arrays copied as the file stores them, the quantizers'
library found without rendering its tables or running the compiler, and no module imported that
the command does not use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmcore.errors import GGUFError
from llmcore.gguf import GGUFReader, GGUFValueType, GGUFWriter
from llmcore.gguf.types import EncodedStrings
from llmcore.gguf.writer import encode_metadata
from llmcore.quants import build

FIXTURES = Path(__file__).parent / "fixtures" / "gguf"
VOCAB = FIXTURES / "ggml-vocab-bert-bge.gguf"
TINY = FIXTURES / "tiny-llama.gguf"


def test_encoded_string_arrays_are_the_files_bytes(tmp_path: Path) -> None:
    """Read without decoding, a vocabulary is the file's own bytes, and written back it is the
    same key-value pair as the decoded list encodes to."""
    with GGUFReader(VOCAB) as decoded, GGUFReader(VOCAB, decode_strings=False) as encoded:
        tokens = encoded.metadata["tokenizer.ggml.tokens"]
        assert isinstance(tokens, EncodedStrings) and tokens.count == len(decoded.metadata["tokenizer.ggml.tokens"])
        assert encoded.metadata_types["tokenizer.ggml.tokens"] == GGUFValueType.STRING
        for key, value in decoded.metadata.items():
            vtype = decoded.metadata_types[key]
            assert encode_metadata(key, encoded.metadata[key], vtype) == encode_metadata(key, value, vtype), key
    # a string that is not valid UTF-8 survives byte for byte (decoding would replace it)
    writer = GGUFWriter(tmp_path / "odd.gguf")
    writer.add_metadata("odd", [b"\xff\xfe", "ok"], GGUFValueType.STRING)
    writer.write()
    with GGUFReader(tmp_path / "odd.gguf", decode_strings=False) as reader:
        assert reader.metadata["odd"] == EncodedStrings(2, b"\x02" + bytes(7) + b"\xff\xfe" + b"\x02" + bytes(7) + b"ok")


def test_a_truncated_encoded_string_array_is_an_error(tmp_path: Path) -> None:
    data = VOCAB.read_bytes()
    with GGUFReader(VOCAB) as reader:
        tokens = reader.metadata["tokenizer.ggml.tokens"]
    last = len(tokens) - 3  # near the array's end: its count alone does not show the file too short
    cut = data.index(b"".join(len(t.encode()).to_bytes(8, "little") + t.encode() for t in tokens[last:]))
    (tmp_path / "cut.gguf").write_bytes(data[:cut + 3])
    messages = []
    for decode in (True, False):
        with pytest.raises(GGUFError) as error:
            GGUFReader(tmp_path / "cut.gguf", decode_strings=decode)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and f"'tokenizer.ggml.tokens'[{last}]" in messages[0]


def test_the_library_name_is_computed_once_per_change(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMCORE_CACHE", str(tmp_path / "cache"))
    sources = tmp_path / "csrc"
    sources.mkdir()
    for name in ("a.c", "a.h"):
        (sources / name).write_text(f"/* {name} */\n")
    monkeypatch.setattr(build, "SOURCE_DIR", sources)
    cc = build.shutil.which("cc") or "/bin/true"
    computed = []
    real = build._digest_path

    def counted(compiler: str) -> Path:
        computed.append(compiler)
        return real(compiler)

    monkeypatch.setattr(build, "_digest_path", counted)
    first = build.library_path(cc)
    assert build.library_path(cc) == first and len(computed) == 1
    # an edited source (its size and time change) names another library
    (sources / "a.c").write_text("/* a.c, edited */\n")
    os.utime(sources / "a.c", ns=(1, 1))
    second = build.library_path(cc)
    assert len(computed) == 2 and second != first
    assert build.library_path(cc) == second and len(computed) == 2


def test_quantize_imports_only_what_it_uses(tmp_path: Path) -> None:
    """A whole ``llmcore quantize`` run leaves out the progress bar (stderr is not a terminal),
    gguf-py's reader, writer and metadata modules (yaml) and cffi's C parser."""
    probe = (
        "import sys; from llmcore.cli import main; "
        f"code = main(['quantize', '--allow-requantize', {str(TINY)!r}, {str(tmp_path / 'out.gguf')!r}, 'Q8_0', '1']); "
        "print(code, sorted(m for m in ('tqdm', 'yaml', 'gguf', 'gguf.gguf_reader', 'gguf.metadata', 'pycparser') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[0] == "0 []", result.stdout + result.stderr
