"""``llmcore serve --mmproj F``: images in ``/v1/chat/completions`` through the official ``openai`` client,
on the tiny random pair of tests/fixtures/mtmd (whose image embeddings and greedy tokens tests/test_mtmd.py
holds to llama.cpp 0.3.36's). The oracle for a reply is ``LLM.create_chat_completion`` on the same files
(greedy); an image the server cannot take is a 400 in OpenAI's error shape."""

from __future__ import annotations

import base64
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from llmcore.engine import mtmd

openai = pytest.importorskip("openai")

from test_server import ServerProcess, assert_openai_error  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "mtmd"
TEXT = FIXTURES / "text.gguf"
MMPROJ = FIXTURES / "mmproj-mlp.gguf"
N_CTX, N_PARALLEL = 256, 2  # a slot holds 128 positions: a 16-position image and its text, not eight images
#: the prompt read in one go, as the oracle reads it, and replies long enough to tell the images apart
IGNORE_EOS = {"extra_body": {"cache_prompt": False, "ignore_eos": True}}


def data_url(name: str) -> str:
    return "data:image/png;base64," + base64.b64encode((FIXTURES / f"{name}.png").read_bytes()).decode()


def image_message(*urls: str, text: str = "what is this?") -> list[dict]:
    parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": parts}]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(FIXTURES / "tall.png", folder / "tall.png")
    return folder


@pytest.fixture(scope="module")
def server(media, tmp_path_factory):
    # -fa off: a row's logits then do not depend on its batch, so parallel slots reply as the oracle does
    proc = ServerProcess(TEXT, "--mmproj", str(MMPROJ), "-c", str(N_CTX), "-np", str(N_PARALLEL), "-fa", "off",
                         "--media-path", str(media), "--slot-save-path", str(tmp_path_factory.mktemp("slots")))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def oracle():
    from llmcore import LLM

    return LLM(TEXT, n_ctx=N_CTX // N_PARALLEL, flash_attn="off", mmproj=MMPROJ)


def expected_reply(oracle, messages: list[dict], max_tokens: int) -> str:
    oracle.reset()  # the prompt read in the server's chunks: text, the image, text
    reply = oracle.create_chat_completion(messages, max_tokens=max_tokens, temperature=0, ignore_eos=True)
    return reply.choices[0].message.content


def test_image_reply_equals_the_api_in_parallel_and_streamed(client, oracle):
    cases = {name: image_message(data_url(name)) for name in ("wide", "square")}
    expected = {name: expected_reply(oracle, messages, 12) for name, messages in cases.items()}
    assert expected["wide"] != expected["square"]
    got: dict[str, str] = {}

    def ask(name: str) -> None:
        reply = client.chat.completions.create(model="any", messages=cases[name], max_tokens=12, temperature=0,
                                               **IGNORE_EOS)
        got[name] = reply.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(name,)) for name in cases]  # both slots reading images at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == expected
    stream = client.chat.completions.create(model="any", messages=cases["wide"], max_tokens=12, temperature=0,
                                            stream=True, **IGNORE_EOS)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected["wide"]


def test_prompt_cache_is_reused_up_to_the_first_differing_image(http, oracle):
    first, second = image_message(data_url("wide")), image_message(data_url("tall"))
    body = {"max_tokens": 2, "temperature": 0, "id_slot": 0}
    reply = http.post("/v1/chat/completions", json={"messages": first, **body}).json()
    n_prompt = reply["usage"]["prompt_tokens"]
    again = http.post("/v1/chat/completions", json={"messages": first, **body}).json()
    assert again["timings"]["prompt_n"] == 1  # all but the last position from the slot's cache
    other = http.post("/v1/chat/completions", json={"messages": second, **body}).json()
    prompt = oracle.chat_template.render(mtmd_messages(second), add_generation_prompt=True)
    image_start = prompt_image_start(oracle, prompt)
    assert other["usage"]["prompt_tokens"] == n_prompt
    assert other["timings"]["prompt_n"] == n_prompt - image_start  # the text before the image stayed
    saved = http.post("/slots/0?action=save", json={"filename": "with-image.bin"})
    assert "holds images" in assert_openai_error(saved, 501)["message"]  # a state file holds token ids only


def mtmd_messages(messages: list[dict]) -> list[dict]:
    from llmcore.chat.messages import media_parts

    return media_parts(messages, mtmd.MEDIA_MARKER)[0]


def prompt_image_start(oracle, prompt: str) -> int:
    from llmcore.media.image import load_image

    chunks = mtmd.tokenize(oracle.tokenizer, oracle.projector, prompt, [load_image(FIXTURES / "tall.png")])
    return mtmd.image_spans(chunks)[0][0]


def test_file_urls_only_inside_the_media_path(client, http, oracle, media):
    by_name = client.chat.completions.create(model="any", messages=image_message("file://tall.png"), max_tokens=12,
                                             temperature=0, **IGNORE_EOS)
    assert by_name.choices[0].message.content == expected_reply(oracle, image_message(data_url("tall")), 12)
    for url, problem in ((f"file://{FIXTURES / 'tall.png'}", "does not exist"), ("file://../tall.png", "not allowed"),
                         (str(FIXTURES / "tall.png"), "neither a data URL nor base64"),
                         ("https://example.com/cat.png", "does not fetch remote images")):
        error = assert_openai_error(http.post("/v1/chat/completions", json={"messages": image_message(url)}), 400,
                                    param="messages.0.content.1")
        assert problem in error["message"] and str(media) not in error["message"], error  # the client's words only


def test_bad_images_are_400s_in_openai_shape(client, http):
    corrupt = "data:image/png;base64," + base64.b64encode((FIXTURES / "square.png").read_bytes()[:200]).decode()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="any", messages=image_message(corrupt), max_tokens=2)
    error = caught.value.body.get("error", caught.value.body)
    assert error["param"] == "messages.0.content.1" and "the image is corrupt or truncated" in error["message"]
    too_big = image_message(*[data_url("small")] * 8)  # 128 image positions and the text: more than a slot
    error = assert_openai_error(http.post("/v1/chat/completions", json={"messages": too_big}), 400)
    assert error["type"] == "exceed_context_size_error" and "(its images included)" in error["message"]
    not_an_image = "data:image/png;base64," + base64.b64encode(b"plain text").decode()
    assert "not an image" in assert_openai_error(
        http.post("/v1/chat/completions", json={"messages": image_message(not_an_image)}), 400)["message"]
    marker = image_message(data_url("small"), text=f"{mtmd.MEDIA_MARKER} typed in")
    assert "2 media markers" in assert_openai_error(
        http.post("/v1/chat/completions", json={"messages": marker}), 400, param="messages")["message"]
    assert http.get("/health").json() == {"status": "ok"}  # and the server still serves


def test_props_models_and_apply_template_say_vision(http):
    assert http.get("/props").json()["modalities"] == {"vision": True, "video": False, "audio": False}
    assert http.get("/v1/models").json()["models"][0]["capabilities"] == ["completion", "multimodal"]
    prompt = http.post("/apply-template", json={"messages": image_message(data_url("small"))}).json()["prompt"]
    assert f"what is this?\n{mtmd.MEDIA_MARKER}" in prompt


def test_the_chat_page_sends_a_picture(server, oracle):
    """The chat page offers a picture when the server has a projector; the page's reply is the API's."""
    from test_server_webui import CHROMIUM, LAST_REPLY, _send, _wait_for, open_page

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with open_page(server.url) as page:
        page.evaluate("document.getElementById('temperature').value = '0'")
        _wait_for(lambda: page.evaluate("!document.getElementById('attach').hidden"), 30)
        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=root, selector="#image")["nodeId"]
        page.call("DOM.setFileInputFiles", nodeId=node, files=[str(FIXTURES / "wide.png")])
        _wait_for(lambda: page.evaluate("document.getElementById('attached').textContent") == "image: wide.png", 30)
        _send(page, "what is this?", max_tokens=12)
        _wait_for(lambda: page.evaluate(f"!!{LAST_REPLY} && !{LAST_REPLY}.classList.contains('streaming')"), 60)
        sent = page.evaluate("conversation")
        assert page.evaluate("document.querySelector('.msg.user img').src").startswith("data:image/png;base64,")
    assert sent[0]["content"] == image_message(data_url("wide"))[0]["content"]
    oracle.reset()
    expected = oracle.create_chat_completion(sent[:1], max_tokens=12, temperature=0).choices[0].message.content
    assert sent[1] == {"role": "assistant", "content": expected}


@pytest.mark.parametrize("projector, text", [("gemma3", "text-gemma3.gguf"),
                                             ("qwen2vl_merger", "text-qwen2vl.gguf"),
                                             pytest.param("idefics3", "text-smolvlm.gguf", marks=pytest.mark.slow)])
def test_projectors_with_their_own_layouts_reply_as_the_api(projector, text):
    """Gemma 3's images (decoded with non-causal attention), Qwen2-VL's (at M-RoPE positions, the text
    after them going on at fewer positions than cells) and SmolVLM's (tiles, each its own image chunk
    between text) go through the server's batcher as through ``LLM.create_chat_completion``."""
    from llmcore import LLM

    model, mmproj = FIXTURES / text, FIXTURES / f"mmproj-{projector}.gguf"
    messages = image_message(data_url("wide"))
    oracle = LLM(model, n_ctx=N_CTX, flash_attn="off", mmproj=mmproj)
    expected = oracle.create_chat_completion(messages, max_tokens=8, temperature=0, ignore_eos=True)
    proc = ServerProcess(model, "--mmproj", str(mmproj), "-c", str(N_CTX), "-np", "1", "-fa", "off")
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="m", messages=messages, max_tokens=8, temperature=0,
                                               **IGNORE_EOS)
    finally:
        proc.stop()
    assert reply.choices[0].message.content == expected.choices[0].message.content
    assert reply.usage.prompt_tokens == expected.usage.prompt_tokens
