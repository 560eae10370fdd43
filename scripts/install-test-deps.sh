#!/usr/bin/env bash
# System packages the test suite uses: tmux (conversation mode as a person types), chromium and an emoji font (the
# web chat page), Mesa's lavapipe + Vulkan loader (the Vulkan backend on the CPU), the aarch64
# cross compiler and qemu-user (NEON kernels), PoCL with the OpenCL ICD loader (the sycl backend runs the GPU
# kernels' OpenCL rendering on the CPU) and clang-15 (PoCL needs it too: it compiles their HIP rendering and parses the Metal
# one). Idempotent; skips what is already installed.
set -euo pipefail
packages=(tmux chromium fonts-noto-color-emoji mesa-vulkan-drivers libvulkan1 vulkan-tools glslc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev clinfo clang-15)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
