#!/usr/bin/env bash
# The CUDA backend on a real GPU, when one is lent (the device tool; CI has none): the conformance kit,
# the goldens, and `llmcore bench` side by side with llama.cpp's CUDA build of the same source version.
#
#   scripts/gpu_check.sh prepare   here, with PyPI: fills .gpu/ (ignored by git) with what the device
#                                  machine cannot fetch, and prints the two device calls to make
#   scripts/gpu_check.sh run       there (call 2): tests, builds llama-bench for the card, benchmarks;
#                                  everything lands in $OUT (results.txt, bench-*.txt)
#
# The device image has python3 3.12 with CuPy (cupy-cuda13x), pytest, numpy, nvcc and cmake but no PyPI:
# llmcore's other dependencies travel as wheels, the default model (94 MiB) in two pieces because a call
# carries at most 64 MiB, llama.cpp's source (llama-cpp-python 0.3.36's vendor/llama.cpp) as a tarball.
# Call 1 carries .gpu/stage1 (model piece a) and runs `true`; call 2, on the same warm machine, carries
# .gpu/stage2 (piece b, wheels, llama.cpp) and runs `scripts/gpu_check.sh run`. Each call must stay
# under 10 minutes: `run` builds only llama-bench, for the one card present.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
LLAMA_CPP=${LLAMA_CPP:-/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}

prepare() {
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  rm -rf "$GPU" && mkdir -p "$GPU/stage1" "$GPU/stage2/wheels"
  model=$(.venv/bin/python -c 'from llmcore.hub import default_model_path; print(default_model_path(progress=False))')
  split -n 2 -d "$model" "$GPU/model.part"
  mv "$GPU/model.part00" "$GPU/stage1/" && mv "$GPU/model.part01" "$GPU/stage2/"
  sha256sum "$model" | cut -d' ' -f1 > "$GPU/stage2/model.sha256"
  # llmcore's dependencies the device image lacks, for its Python 3.12
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$GPU/stage2/wheels" gguf llguidance pydantic pydantic-core annotated-types typing-inspection cffi pycparser
  tar -C "$LLAMA_CPP" -cJf "$GPU/stage2/llama.cpp.tar.xz" CMakeLists.txt cmake ggml src include common tools/llama-bench \
    vendor licenses
  du -sh "$GPU"/stage*
  echo "device call 1: carry [\".gpu/stage1\"], command: true"
  echo "device call 2: carry [\".gpu/stage2\"], command: scripts/gpu_check.sh run, timeout_s 600"
}

run() {
  out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"
  exec > >(tee "$out/results.txt") 2>&1
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$GPU"/stage2/wheels/*.whl
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  # llmcore and the plugins as installed distributions (entry points), offline
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site \
    . plugins/gpu_kernels plugins/cuda plugins/cpu_simd
  mkdir -p ~/.cache/llmcore
  model=~/.cache/llmcore/SmolLM2-135M-Instruct.Q4_1.gguf
  cat "$GPU"/stage1/model.part00 "$GPU"/stage2/model.part01 > "$model"
  echo "$(cat "$GPU"/stage2/model.sha256)  $model" | sha256sum -c -
  python3 -m llmcore backends
  # the conformance kit (every op case cuda claims, then the goldens end to end) and the goldens' tests
  (cd /tmp && timeout 150 python3 -m pytest -q -p llmcore.conformance.plugin --llmcore-backend cuda \
     --llmcore-goldens "$OLDPWD/tests/fixtures/golden/smollm2-135m-instruct-q4_1" --llmcore-model "$model") || true
  timeout 120 python3 -m pytest -q tests/test_goldens.py -k cuda -p no:cacheprovider || true
  # llama.cpp's CUDA build of the same source, llama-bench only, for this card
  mkdir -p /tmp/llama.cpp && tar -C /tmp/llama.cpp -xJf "$GPU/stage2/llama.cpp.tar.xz"
  cmake -S /tmp/llama.cpp -B /tmp/llama.cpp/build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  timeout 330 cmake --build /tmp/llama.cpp/build --target llama-bench -j"$(nproc)" >/dev/null
  python3 -m llmcore bench -m "$model" --backend cuda -r 5 --llama-bench /tmp/llama.cpp/build/bin/llama-bench \
    | tee "$out/bench-smollm2.txt"
  python3 scripts/make_1b_bench_model.py /tmp/random-1b-q4_k_m.gguf
  python3 -m llmcore bench -m /tmp/random-1b-q4_k_m.gguf --backend cuda -r 5 \
    --llama-bench /tmp/llama.cpp/build/bin/llama-bench | tee "$out/bench-1b.txt"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
