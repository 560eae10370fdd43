"""Images through multimodal projector files (mmproj), against llama.cpp 0.3.36's mtmd: the tiny
random pairs of tests/fixtures/mtmd (scripts/make_mmproj_goldens.py) give llama.cpp's image
embeddings, then its logits after the image and its greedy tokens, on reference and cpu_simd: LLaVA's
``mlp`` (1.5, and 1.6's any-resolution tiles: ``mlp-anyres``), Yi-VL's ``mlp_norm``, MobileVLM's ``ldp`` and ``ldpv2``, MiniCPM-V 2.6's ``resampler`` (each
image an overview and slices between its tokens) and Gemma 3's SigLIP with the ``gemma3`` projector (whose images the text
model reads with non-causal attention) and SmolVLM's SigLIP with the ``idefics3`` pixel shuffle (each
image cut into tiles and an overview, each its own image chunk between SmolVLM's tokens) and Qwen2-VL's
``qwen2vl_merger`` (a ViT with 2-D rotary positions, any image size, 2x2 patches merged) for a ``qwen2vl``
text model, whose M-RoPE places an image's tokens at one time and their rows and columns."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from llmcore import LLM
from llmcore.engine import mtmd
from llmcore.errors import LLMCoreError, ModelError
from llmcore.gguf import GGUFWriter
from llmcore.media import image as images

FIXTURES = Path(__file__).parent / "fixtures" / "mtmd"
TEXT = FIXTURES / "text.gguf"
IMAGES = ("square", "wide", "tall", "large", "small")
PROJECTORS = ("mlp", "mlp_norm", "mlp-anyres", "ldp", "ldpv2", "resampler", "gemma3", "idefics3", "qwen2vl_merger",
              "qwen2.5vl_merger")
#: the text model each projector's goldens pair it with
TEXT_OF = {"mlp": TEXT, "mlp_norm": TEXT, "mlp-anyres": TEXT, "ldp": TEXT, "ldpv2": TEXT, "gemma3": FIXTURES / "text-gemma3.gguf",
           "idefics3": FIXTURES / "text-smolvlm.gguf", "resampler": FIXTURES / "text-minicpmv.gguf",
           "qwen2vl_merger": FIXTURES / "text-qwen2vl.gguf", "qwen2.5vl_merger": FIXTURES / "text-qwen2vl.gguf"}
BACKENDS = ("reference", "cpu_simd")
# llama.cpp's encoder rounds keys, values and their weighted sums to f16 (flash attention); where an
# f32 sum upstream lands on the other side of an f16 rounding, an embedding moves by ~1e-3
EMBD_ATOL = 5e-3
LOGITS_ATOL = 2e-2  # after our embeddings
#: after llama.cpp's own embeddings: the text model alone, held to tests/test_architectures.py's bound
TEXT_REL_ERROR = 2e-3


#: encoders whose tiny fixtures still take ~10 s on the reference backend (MobileVLM's 24x24 patches,
#: SmolVLM's tiles, MiniCPM-V's slices): there in the slow sweep, on cpu_simd in the default suite
SLOW_ON_REFERENCE = ("ldp", "ldpv2", "idefics3", "resampler")


@pytest.fixture(scope="module", ids=lambda pb: "-".join(pb),
                params=[pytest.param((p, b), marks=pytest.mark.slow) if b == "reference" and p in SLOW_ON_REFERENCE
                        else (p, b) for p in PROJECTORS for b in BACKENDS])
def llm(request):
    projector, backend = request.param
    model = LLM(TEXT_OF[projector], backend=backend, n_ctx=256, n_batch=256, flash_attn="on", mmproj=FIXTURES / f"mmproj-{projector}.gguf")
    model.goldens = np.load(FIXTURES / f"{projector}.npz")
    yield model


def test_chunks_embeddings_logits_and_greedy_tokens(llm):
    goldens = llm.goldens
    prompt = str(goldens["prompt"])
    for name in IMAGES:
        pixels = images.load_image(FIXTURES / f"{name}.png")
        chunks = mtmd.tokenize(llm.tokenizer, llm.projector, prompt, [pixels])
        assert len(chunks) == int(goldens[f"{name}.n_chunks"]), name
        ours = {}
        for i, chunk in enumerate(chunks):
            if isinstance(chunk, mtmd.TextChunk):
                assert chunk.tokens == goldens[f"{name}.chunk{i}.tokens"].tolist(), (name, i)
            else:
                expected = goldens[f"{name}.chunk{i}.embd"]
                assert chunk.n_tokens == len(expected), (name, i)
                ours[i] = llm.projector.encode(chunk)
                np.testing.assert_allclose(ours[i], expected, atol=EMBD_ATOL, rtol=0)
                chunk.embd = expected  # llama.cpp's embeddings: the text model's part alone
        llm.reset()
        expected = goldens[f"{name}.logits"]
        assert np.abs(llm.eval_chunks(chunks) - expected).max() < TEXT_REL_ERROR * expected.std(), name
        for i, embd in ours.items():
            chunks[i].embd = embd
        llm.reset()
        np.testing.assert_allclose(llm.eval_chunks(chunks), expected, atol=LOGITS_ATOL, rtol=0)
        ids = mtmd.prompt_ids(chunks)
        if llm.projector.mrope:  # the text goes on at llama.cpp's n_past: an image takes max(rows, columns) times
            assert llm.context.cells.rope_start(0, len(ids)) == int(goldens[f"{name}.n_past"]), name
        greedy = goldens[f"{name}.greedy"].tolist()
        steps = llm.generation(ids, llm.sampler(temperature=0), len(greedy), chunks=chunks)
        assert [step.token for step in steps] == greedy, name


def test_chat_completion_with_image_parts_reuses_the_cache(llm):
    data = base64.b64encode((FIXTURES / "wide.png").read_bytes()).decode()
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]
    messages = [{"role": "user", "content": parts}]
    llm.reset()
    first = llm.create_chat_completion(messages, max_tokens=4, temperature=0)
    assert llm.last.timings.prompt_n == llm.last.prompt_tokens > 16  # the image's 16 positions and the text
    again = llm.create_chat_completion(messages, max_tokens=4, temperature=0)
    assert again.choices[0].message.content == first.choices[0].message.content
    assert llm.last.timings.prompt_n == 1  # everything but the last position came from the cache
    by_path = [{"role": "user", "content": [parts[0], {"type": "image_url", "image_url": {"url": str(FIXTURES / "wide.png")}}]}]
    assert llm.create_chat_completion(by_path, max_tokens=4, temperature=0).choices[0].message.content == \
        first.choices[0].message.content


def test_bad_images_and_prompts_fail_in_one_line(tmp_path):
    llm = LLM(TEXT, backend="reference", n_ctx=24, mmproj=FIXTURES / "mmproj-mlp.gguf")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((FIXTURES / "square.png").read_bytes()[:200])
    with pytest.raises(images.ImageError, match="corrupt.png: the image is corrupt or truncated"):
        images.load_image(corrupt)
    with pytest.raises(images.ImageError, match="not an image"):
        images.decode_image(b"plain text", "x.png")
    pixels = images.load_image(FIXTURES / "square.png")
    with pytest.raises(LLMCoreError, match="more than the context size 24"):  # 16 image positions + the text
        list(llm.generate("USER: <__media__> describe this image in detail please ASSISTANT:", images=[pixels],
                          max_tokens=1))
    with pytest.raises(LLMCoreError, match="1 media markers .* for 2 images"):
        list(llm.generate("<__media__>", images=[pixels, pixels], max_tokens=1))
    text_only = LLM(TEXT, backend="reference", n_ctx=64)
    with pytest.raises(LLMCoreError, match="this model takes text only"):
        text_only.create_chat_completion([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": str(FIXTURES / "square.png")}}]}], max_tokens=1)
    with pytest.raises(LLMCoreError, match="no multimodal projector"):
        list(text_only.generate("<__media__>", images=[pixels], max_tokens=1))


def test_projector_files_are_checked(tmp_path):
    path = tmp_path / "qwen.gguf"
    writer = GGUFWriter(str(path), "clip")
    writer.add_metadata("clip.has_vision_encoder", True)
    writer.add_metadata("clip.projector_type", "qwen3vl_merger")
    writer.write()
    with pytest.raises(ModelError, match=r"qwen.gguf: projector type 'qwen3vl_merger' is not supported yet \(supported: "
                                         r"mlp, ldp, ldpv2, resampler, gemma3, idefics3, qwen2vl_merger, qwen2.5vl_merger\)"):
        LLM(TEXT, backend="reference", n_ctx=64, mmproj=path)
    with pytest.raises(ModelError, match="is not 'clip'"):
        LLM(TEXT, backend="reference", n_ctx=64, mmproj=TEXT)


def test_run_with_images_as_llama_mtmd_cli():
    """``llmcore run --mmproj F --image IMG -p TEXT``: the image goes before the prompt, which becomes a
    user message of the chat template (llama-mtmd-cli's single turn); bad images are one-line errors."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "llmcore", "run", "-m", str(TEXT), "-c", "256", "--backend", "reference", "-n", "3",
            "--temp", "0", "-p", "describe"]
    done = subprocess.run([*base, "--mmproj", str(FIXTURES / "mmproj-mlp.gguf"), "--image", str(FIXTURES / "wide.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "llmcore: mmproj mmproj-mlp.gguf (projector mlp, 56px images)" in done.stderr
    assert "prompt eval time" in done.stderr and "/    " in done.stderr
    for extra, message in ((["--image", str(FIXTURES / "wide.png")], "--image needs a multimodal projector file"),
                           (["--mmproj", str(FIXTURES / "mmproj-mlp.gguf"), "--image", str(FIXTURES / "mlp.npz")],
                            "mlp.npz: not an image in a known format")):
        failed = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
        assert failed.returncode == 2 and message in failed.stderr.strip().splitlines()[-1], failed.stderr


def test_conversation_mode_loads_images_with_the_image_command(capsys):
    """``/image PATH`` in ``llmcore run -cnv`` (llama-mtmd-cli's chat): the picture's marker goes
    before the next message, the reply is the one generating after that rendered conversation with
    the picture gives, and a bad path is one line on stderr while the chat goes on."""
    import io

    from llmcore.api.types import Timings
    from llmcore.cli import build_parser
    from llmcore.cli.conversation import Console, Session

    llm = LLM(TEXT, backend="cpu_simd", n_ctx=256, mmproj=FIXTURES / "mmproj-mlp.gguf")
    inputs = iter([f"/image {FIXTURES / 'missing.png'}", f"/image {FIXTURES / 'wide.png'}", "describe", "again"])

    def type_line(prompt: str) -> str:
        line = next(inputs, None)
        if line is None:
            raise EOFError
        console.out.write(line)  # echoed as a terminal shows it
        return line

    console = Console(read_line=type_line, out=io.StringIO())
    args = build_parser().parse_args(["run", "-m", str(TEXT), "-c", "256", "--temp", "0", "-cnv", "-n", "4"])
    session = Session(llm, args, console, Timings())
    assert session.chat("") == 0
    err = capsys.readouterr().err
    assert "missing.png: cannot read the image" in err and f"{FIXTURES / 'wide.png'} image loaded" in err
    first = [{"role": "user", "content": "<__media__>describe"}]
    rendered = llm.chat_template.render(first, add_generation_prompt=True)
    llm.reset()
    expected = "".join(llm.generate(rendered, images=[images.load_image(FIXTURES / "wide.png")], max_tokens=4,
                                    temperature=0))
    assert expected and f"describe{expected}" in console.out.getvalue().replace("\n", "")


@pytest.mark.parametrize("algo", list(images.Resize), ids=lambda a: a.name.lower())
def test_resize_is_pillows_fixed_point_filter(algo):
    """clip.cpp's resampler is Pillow's (its bilinear, bicubic and Lanczos in 22-bit fixed point):
    ours gives Pillow's pixels exactly, shrinking and enlarging each side."""
    from PIL import Image

    pixels = images.load_image(FIXTURES / "large.png")
    pillow = {images.Resize.BILINEAR: Image.BILINEAR, images.Resize.BICUBIC: Image.BICUBIC,
              images.Resize.LANCZOS: Image.LANCZOS}[algo]
    for width, height in ((96, 41), (57, 230), (200, 150), (13, 9)):
        expected = np.asarray(Image.fromarray(pixels).resize((width, height), pillow))
        np.testing.assert_array_equal(images.resize(pixels, width, height, algo), expected, err_msg=f"{width}x{height}")


def test_mrope_images_need_an_mrope_text_model_and_refuse_context_shift():
    """Qwen2-VL's images go at M-RoPE positions: a text model without them (llama) is refused in one
    line, and a qwen2vl context cannot shift its positions (llama.cpp's seq_add asserts as much)."""
    pixels = images.load_image(FIXTURES / "tall.png")
    llama = LLM(TEXT, backend="reference", n_ctx=64, mmproj=FIXTURES / "mmproj-qwen2vl_merger.gguf")
    with pytest.raises(LLMCoreError, match="places images at M-RoPE positions: it goes with a qwen2vl text model, not llama"):
        list(llama.generate("<__media__>", images=[pixels], max_tokens=1))
    qwen = LLM(FIXTURES / "text-qwen2vl.gguf", backend="reference", n_ctx=64)
    qwen.eval_prompt(qwen.tokenize("one two three four"))
    with pytest.raises(LLMCoreError, match="context shift is not supported by qwen2vl"):
        qwen.context.seq_shift_out(0, 1, 2)
