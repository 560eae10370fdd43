"""The ray backend plugin (plugins/ray): a Ray cluster's nodes as devices, and serve --replicas.

The fast tests check what needs no cluster: the reasons `llmcore backends` gives and the refusal
of addresses the user did not name. The slow ones start a local cluster (a head without CPUs and
two worker nodes of one CPU each, on loopback) and split the default model in three stages: the
input and layers 0-10 here on cpu_simd, 11-20 on one worker, 21-29 and the output on the other,
and serve two replicas of the engine behind one endpoint, one on each worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from llmcore.engine.registry import backend_classes
from llmcore.errors import BackendError

pytestmark = pytest.mark.skipif("ray" not in backend_classes(),
                                reason="the ray plugin is not installed: pip install -e '.[ray]' -e plugins/ray")
PROMPT = "The three primary colors are"


@pytest.fixture
def ray_backend(monkeypatch):
    cls = backend_classes()["ray"]
    monkeypatch.setattr(cls, "address", None)
    return cls


def test_unconnected_backend_says_how_to_connect(ray_backend):
    status = ray_backend.probe()
    assert not status.usable and "pass --ray auto|HOST:PORT" in status.reason


def test_missing_ray_package_is_named_with_the_install_command(ray_backend, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)  # as where ray is not installed
    status = ray_backend.probe()
    assert not status.usable and "the ray package is not installed: pip install -e '.[ray]' -e plugins/ray" in status.reason


@pytest.mark.parametrize("setting", ["10.1.2.3", "http://10.1.2.3:6379", "head:port", ""])
def test_malformed_address_is_refused(ray_backend, setting):
    with pytest.raises(BackendError, match="--ray takes 'auto' or the head node's HOST:PORT"):
        ray_backend.configure(setting)


def test_auto_refuses_a_cluster_elsewhere_named_by_the_environment(ray_backend, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "203.0.113.5:6379")  # TEST-NET-3: never this machine
    import ray

    def no_connection(*args, **kwargs):
        raise AssertionError("ray.init was called: the address should be refused before any connection")

    monkeypatch.setattr(ray, "init", no_connection)
    with pytest.raises(BackendError, match="auto means the cluster on this machine, but RAY_ADDRESS names 203.0.113.5:6379"):
        ray_backend.configure("auto")
    assert ray_backend.address is None


def test_cli_refuses_a_bad_address_in_one_line():
    result = subprocess.run([sys.executable, "-m", "llmcore", "backends", "--ray", "nowhere"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--ray takes 'auto'" in result.stderr


def test_core_never_imports_ray():
    """Ray is an optional extra: llmcore's own modules, the command line and server included, load
    without it (only the plugin imports it, on first use)."""
    script = ("import sys, llmcore, llmcore.cli, llmcore.engine.registry, llmcore.api\n"
              "llmcore.engine.registry.choose_backend('auto')\n"
              "assert 'ray' not in sys.modules, 'ray imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- a local cluster (slow) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray writes a loopback head as this machine's outward address unless told not to: keep it all
    # on loopback
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [local.add_node(num_cpus=1) for _ in range(2)]
    local.wait_for_nodes()
    yield local, workers
    import ray

    ray.shutdown()
    local.shutdown()


@pytest.fixture(scope="module")
def split_llms(cluster, default_model_path):
    from llmcore import LLM

    local, _ = cluster
    ray_llm = LLM(default_model_path, ray=local.address, n_ctx=256, n_gpu_layers=20, tensor_split=[1, 1])
    solo = LLM(default_model_path, backend="cpu_simd", n_ctx=256)
    return ray_llm, solo


@pytest.mark.slow
def test_cluster_nodes_are_devices_and_take_layer_ranges(split_llms):
    from llmcore.engine.registry import availability

    ray_llm, _ = split_llms
    assert len(availability("ray").devices) == 2
    assert ray_llm.placement == [("input, 0-10", "cpu_simd"), ("11-20", "ray0"), ("21-29, output", "ray1")]


@pytest.mark.slow
def test_three_stages_give_the_one_machine_logits_batch_and_token_by_token(split_llms):
    from llmcore.api import Batch

    ray_llm, solo = split_llms
    ids = ray_llm.tokenize(PROMPT)
    assert np.array_equal(ray_llm.logits(ids), solo.logits(ids))
    rows = []
    for llm in (ray_llm, solo):
        llm.context.seq_remove(0)
        rows.append(np.concatenate([llm.context.decode(Batch.for_sequence([token], position))
                                    for position, token in enumerate(ids)]))
    assert np.array_equal(*rows)
    assert "".join(ray_llm.generate(PROMPT, max_tokens=12, temperature=0)) == \
        "".join(solo.generate(PROMPT, max_tokens=12, temperature=0))


@pytest.mark.slow
def test_steps_in_flight_through_the_stages_give_the_one_machine_logits(split_llms):
    """Three sequences, each step of all three submitted before any logits are read
    (Context.decode_async): the stages work on different sequences at once, and every row is the
    one cpu_simd gives running the same steps one by one."""
    from llmcore.api import Batch

    ray_llm, solo = split_llms
    prompts = [ray_llm.tokenize(p) for p in (PROMPT, "Once upon a time", "def fibonacci(n):")]
    for llm in split_llms:
        llm.reset()
    steps = [[Batch.for_sequence(ids, 0, seq) for seq, ids in enumerate(prompts)]]
    expected = [[solo.context.decode(batch) for batch in steps[0]]]
    for _ in range(3):
        steps.append([Batch.for_sequence([int(np.argmax(rows[-1]))], int(batch.positions[-1]) + 1, seq)
                      for seq, (batch, rows) in enumerate(zip(steps[-1], expected[-1]))])
        expected.append([solo.context.decode(batch) for batch in steps[-1]])
    pending = [[ray_llm.context.decode_async(batch) for batch in step] for step in steps]
    for got, want in zip(pending, expected):
        for logits, rows in zip(got, want):
            assert np.array_equal(logits.result(), rows)
    for llm in split_llms:
        llm.reset()


@pytest.mark.slow
def test_a_server_over_two_nodes_keeps_a_step_in_flight_per_stage(cluster, default_model_path):
    """``serve --ray`` with the layers on the two nodes: two streams at once, each step taking one
    slot while the other slot's step passes the other stage; each reply is the one-machine reply."""
    from concurrent.futures import ThreadPoolExecutor

    from test_server import ServerProcess

    from llmcore import LLM

    openai = pytest.importorskip("openai")
    local, _ = cluster
    solo = LLM(default_model_path, n_ctx=512, flash_attn="off")
    expected = [solo.create_chat_completion([{"role": "user", "content": p}], max_tokens=12, temperature=0)
                .choices[0].message.content for p in PROMPTS[:2]]
    proc = ServerProcess(default_model_path, "--ray", local.address, "-ngl", "all", "-ts", "1,1", "-np", "2",
                         "-c", "1024", "-fa", "off", "--metrics")
    try:
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="none", max_retries=0, timeout=300)
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda p: stream_text(client, p), PROMPTS[:2]))
        busy_per_step = prometheus(proc.url)["llamacpp:n_busy_slots_per_decode"]
    finally:
        proc.stop()
    assert replies == expected
    assert busy_per_step == 1  # two slots busy, two stages: a slot per step


# -- serve --replicas 2 on the cluster (slow): one replica on each worker -----------------------

PROMPTS = ["Tell me about cats.", "What is 2+2?", "Write a haiku about rain.", "Who wrote Hamlet?",
           "Name three fruits.", "How do planes fly?", "What is Python?", "Describe the sea."]


@pytest.fixture(scope="module")
def replicas_server(cluster, default_model_path):
    from test_server import ServerProcess

    local, _ = cluster
    # -fa off: a row's logits do not depend on the batch it shares (test_server.py's reason)
    proc = ServerProcess(default_model_path, "--replicas", "2", "--ray", local.address, "-np", "2", "-c", "1024",
                         "-fa", "off", "--metrics")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def replicas_client(replicas_server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{replicas_server.url}/v1", api_key="none", max_retries=0, timeout=300)


def stream_text(client, prompt: str, max_tokens: int = 12, **extra) -> str:
    stream = client.chat.completions.create(model="any", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            extra_body={"cache_prompt": False, **extra})
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.mark.slow
def test_two_replicas_serve_8_concurrent_streams_each_equal_to_its_solo_reply(replicas_server, replicas_client,
                                                                             default_model_path):
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    from llmcore import LLM

    solo = LLM(default_model_path, n_ctx=512, flash_attn="off")
    expected = [solo.create_chat_completion([{"role": "user", "content": p}], max_tokens=12, temperature=0)
                .choices[0].message.content for p in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        replies = list(pool.map(lambda p: stream_text(replicas_client, p), PROMPTS))  # raises on any error
    assert replies == expected
    slots = httpx.get(f"{replicas_server.url}/slots").json()
    assert {slot["replica"] for slot in slots if slot["n_cached"]} == {0, 1}  # both replicas took requests


@pytest.mark.slow
def test_a_conversation_goes_back_to_the_replica_holding_its_cache(replicas_server, replicas_client):
    """The second turn goes to the replica that read the first, although the other is idle and this
    one streams another request: its prompt is read from the cached prefix on."""
    import httpx

    messages = [{"role": "user", "content": "Name three rivers of Europe and say one thing about each."}]
    first = replicas_client.chat.completions.create(model="any", messages=messages, max_tokens=12, temperature=0)
    time.sleep(0.5)  # the relay counts the request out just after its last event
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And the longest of them?"}]
    busy = replicas_client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Count."}],
                                                  max_tokens=200, temperature=0, stream=True,
                                                  extra_body={"ignore_eos": True})
    next(iter(busy))  # streaming on the same replica (both idle: the lowest index took it)
    second = httpx.post(f"{replicas_server.url}/v1/chat/completions", timeout=300,
                        json={"messages": messages, "max_tokens": 4, "temperature": 0}).json()
    busy.close()
    assert second["timings"]["prompt_n"] < second["usage"]["prompt_tokens"] // 2


def prometheus(url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(f"{url}/metrics").text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if not line.startswith("#")}


@pytest.mark.slow
def test_metrics_sum_the_replicas(replicas_server, replicas_client):
    """Four requests of 6 tokens at once spread over both replicas (2 slots each): /metrics counts
    all of them."""
    from concurrent.futures import ThreadPoolExecutor

    before = prometheus(replicas_server.url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: stream_text(replicas_client, p, max_tokens=6, ignore_eos=True), PROMPTS[:4]))
    time.sleep(0.5)  # a replica counts a request once its last event is out
    after = prometheus(replicas_server.url)
    assert after["llamacpp:requests_finished_total"] - before["llamacpp:requests_finished_total"] == 4
    assert after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"] == 24
    assert after["llamacpp:requests_processing"] == 0


@pytest.mark.slow
def test_a_killed_replica_ends_its_stream_with_an_error_within_5_s_and_the_pool_serves_on(replicas_server,
                                                                                        replicas_client):
    import httpx
    import openai

    url = replicas_server.url
    expected = stream_text(replicas_client, PROMPTS[1])
    stream = replicas_client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Go on."}],
                                                     max_tokens=400, temperature=0, stream=True,
                                                     extra_body={"ignore_eos": True})
    chunks = iter(stream)
    next(chunks)
    replica = next(slot["replica"] for slot in httpx.get(f"{url}/slots").json() if slot["is_processing"])
    pid = httpx.get(f"{url}/health").json()["replicas"][replica]["pid"]
    os.kill(pid, 9)
    killed_at = time.monotonic()
    with pytest.raises(openai.APIError, match=f"replica {replica} died mid-reply"):
        for _ in chunks:
            pass
    assert time.monotonic() - killed_at < 5
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["replicas"][replica]["state"] in ("restarting", "alive")
    if health["replicas"][replica]["state"] == "restarting":  # /slots lists what is left
        assert {slot["replica"] for slot in httpx.get(f"{url}/slots").json()} == {1 - replica}
    assert stream_text(replicas_client, PROMPTS[1]) == expected  # served on
    deadline = time.monotonic() + 180
    while httpx.get(f"{url}/health").json()["replicas"][replica]["state"] != "alive":  # Ray restarts it
        assert time.monotonic() < deadline, "the killed replica did not come back"
        time.sleep(0.5)
    assert httpx.get(f"{url}/health").json()["replicas"][replica]["pid"] != pid


@pytest.mark.slow
def test_a_request_waiting_on_a_killed_replica_is_served_by_another(replicas_server, replicas_client):
    """A request queued behind a long stream on replica 0's slot 0 (``id_slot``) has sent nothing
    when the replica dies: it is retried on replica 1 and gets its whole reply, the one it gets alone."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    url = replicas_server.url
    deadline = time.monotonic() + 180
    while any(r["state"] != "alive" for r in httpx.get(f"{url}/health").json()["replicas"]):  # after the kill above
        assert time.monotonic() < deadline, "a replica did not come back"
        time.sleep(0.5)
    expected = stream_text(replicas_client, PROMPTS[2])
    stream = replicas_client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Go on."}],
                                                     max_tokens=400, temperature=0, stream=True,
                                                     extra_body={"ignore_eos": True, "id_slot": 0})
    chunks = iter(stream)
    next(chunks)
    with ThreadPoolExecutor(1) as pool:
        queued = pool.submit(stream_text, replicas_client, PROMPTS[2], id_slot=0)
        time.sleep(1.0)  # it reaches replica 0 and waits there for slot 0
        assert not queued.done()
        os.kill(httpx.get(f"{url}/health").json()["replicas"][0]["pid"], 9)
        killed_at = time.monotonic()
        assert queued.result(timeout=60) == expected  # raises on any error event
    assert time.monotonic() - killed_at < 10
    stream.close()


@pytest.mark.slow
def test_a_killed_worker_fails_the_request_within_5_s_and_the_next_one_succeeds(cluster, split_llms):
    local, workers = cluster
    ray_llm, solo = split_llms
    expected = "".join(solo.generate(PROMPT, max_tokens=12, temperature=0))
    killed_at = None
    with pytest.raises(BackendError, match=r"ray: the stage on node \S+ is gone .*the next request starts it again"):
        for index, _ in enumerate(ray_llm.generate(PROMPT, max_tokens=400, temperature=0, ignore_eos=True)):
            if index == 4:
                killed_at = time.monotonic()
                local.remove_node(workers[1], allow_graceful=False)  # the node of layers 21-29 and the output
    assert killed_at is not None and time.monotonic() - killed_at < 5
    assert "".join(ray_llm.generate(PROMPT, max_tokens=12, temperature=0)) == expected

