"""A model of decoding over 2-16 nodes and 1-100 Gbit/s links, fed with costs measured on the local
Ray cluster, for llmcore's ray backend and for llama.cpp's RPC backend on the same layer split
(BENCHMARKS.md, docs/ray.md).

    nice .venv/bin/python scripts/simulate_ray.py --measure    # measure here (a local cluster), then the table
    nice .venv/bin/python scripts/simulate_ray.py              # the table from the figures recorded below

What is measured (one sequence, the default model, one core per stage):
  compute_ms   one machine's decode time per token (cpu_simd -t 1): the compute a split shares out
  boundary_ms  what one stage boundary adds per token on loopback: (two nodes' time - one machine's) / 2,
               with the input on the driver and layers 0-15, 16-29 + output on the two nodes (-ts 1,1),
               i.e. Ray's actor call, pickling, the remote process waking; the network adds nothing here

The model, per decoded token, N nodes each holding L/N layers, the driver holding the input:
  both backends are a star: each stage's output returns to the driver, which sends it to the next
  stage, so a boundary costs a round trip (rtt) plus its bytes at the link's rate.
  ray (llmcore):   compute + N * (boundary_ms + rtt + bytes_ray / link)
                   bytes_ray = activations in and out (2 * n_embd f32) + the stage's mask row (n_kv f32)
                   + its position; one actor call per stage and step, the compiled range stays there.
  rpc (llama.cpp): compute + N * (rpc_command_ms + rtt + bytes_rpc / link)
                   ggml-rpc ships each split's inputs with SET_TENSOR (the activations, inp_pos, the KQ
                   mask as f16 n_kv per token), then GRAPH_RECOMPUTE (the decode graph is reused from
                   token to token, so its serialized form, n_nodes * sizeof(rpc_tensor), is sent only
                   when it changes and is left out here), and waits on GET_TENSOR for the output:
                   the commands of a split are queued asynchronously on one socket, but the next split
                   needs this one's output, so splits run one after another (ggml-rpc.cpp).
                   rpc_command_ms is not measured here (no rpc-server build): 0.1 ms is assumed for its
                   C++ socket handling of the 3 commands.
  pipelined ray:   with S sequences in flight each stage works on another micro-batch; the bottleneck
                   stage takes compute/N + boundary + rtt + bytes/link, so tokens/s = min(S / latency,
                   1 / bottleneck): what Context.decode_async reaches on nodes with cores of their own.
Assumed: rtt 0.05 ms (one LAN switch), n_kv 512.
"""

from __future__ import annotations

import argparse
import json
import sys

#: measured by --measure on 2026-12-06 (AMD EPYC Zen 4, 2 cores shared with other jobs; see BENCHMARKS.md)
RECORDED = {"compute_ms": 9.03, "boundary_ms": 3.98, "n_embd": 576, "n_layer": 30}
RTT_MS = 0.05
N_KV = 512
RPC_COMMAND_MS = 0.1
LINKS_GBIT = (1, 10, 100)
NODES = (2, 4, 8, 16)


def measure() -> dict[str, float]:
    """Decode ms/token on one machine and over two nodes of a local cluster (bench_ray's setup)."""
    from bench_ray import decode_tokens_per_s  # scripts/ is on sys.path when this script runs
    from ray.cluster_utils import Cluster

    from llmcore import LLM

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        solo = LLM(n_ctx=256, backend="cpu_simd", n_threads=1)
        hp = solo.model.hparams
        local_ms = 1e3 / decode_tokens_per_s(solo)
        del solo
        split = LLM(n_ctx=256, ray=cluster.address, tensor_split=[1, 1])
        split_ms = 1e3 / decode_tokens_per_s(split)
        del split
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    return {"compute_ms": round(local_ms, 2), "boundary_ms": round((split_ms - local_ms) / 2, 2),
            "n_embd": hp.n_embd, "n_layer": hp.n_layer}


def per_token_ms(costs: dict[str, float], n_nodes: int, link_gbit: float) -> dict[str, float]:
    """Decode latency per token (ms) of each way, and the pipelined bottleneck stage's time."""
    ms_per_byte = 8 / (link_gbit * 1e9) * 1e3
    ray_bytes = 2 * costs["n_embd"] * 4 + N_KV * 4 + 4
    rpc_bytes = 2 * costs["n_embd"] * 4 + N_KV * 2 + 4
    ray_boundary = costs["boundary_ms"] + RTT_MS + ray_bytes * ms_per_byte
    return {"ray": costs["compute_ms"] + n_nodes * ray_boundary,
            "rpc": costs["compute_ms"] + n_nodes * (RPC_COMMAND_MS + RTT_MS + rpc_bytes * ms_per_byte),
            "stage": costs["compute_ms"] / n_nodes + ray_boundary}


def table(costs: dict[str, float]) -> str:
    rows = ["| nodes | link | ray ms/token | ray tok/s, 1 seq | ray pipelined, N seqs (model) | "
            "llama.cpp RPC ms/token | RPC tok/s, 1 seq |", "|---|---|---|---|---|---|---|"]
    for n_nodes in NODES:
        for link in LINKS_GBIT:
            t = per_token_ms(costs, n_nodes, link)
            pipelined = min(n_nodes / t["ray"], 1 / t["stage"]) * 1e3
            rows.append(f"| {n_nodes} | {link} Gbit/s | {t['ray']:.1f} | {1e3 / t['ray']:.1f} | {pipelined:.1f} | "
                        f"{t['rpc']:.2f} | {1e3 / t['rpc']:.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="measure the costs on a local cluster first")
    args = parser.parse_args()
    costs = measure() if args.measure else RECORDED
    print(json.dumps(costs), file=sys.stderr)
    print(table(costs))


if __name__ == "__main__":
    main()
