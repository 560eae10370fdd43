"""The kernels every llmcore GPU backend runs, written once in a small C dialect and rendered for
CUDA (NVRTC), HIP (hiprtc), OpenCL C and Metal (``render``); the device-independent lowering of a
subgraph to kernel launches (``lowering``); and the host side common to the GPU plugins
(``backend``: a plugin supplies a Runtime and its probe). Backends import it besides
``llmcore.plugin_api``: it is shared by ``cuda``, ``hip``, ``sycl`` and ``metal``."""
