"""The backend conformance kit, in the spirit of llama.cpp's test-backend-ops.

Run it with pytest on any installed backend plugin::

    pytest --llmcore-backend NAME [--llmcore-backend NAME2 ...] [--llmcore-goldens DIR] [--llmcore-model GGUF]

For every op and type the backend claims (``supports_op`` asked on the single-op graphs of
``cases``), its output is compared with the reference backend's within the per-op NMSE bound of
``compare.NMSE_BOUNDS`` (``runner``); then the default model runs end to end on the backend against
llama.cpp's goldens (``goldens``). ``plugin`` is the pytest plugin (llmcore's ``pytest11`` entry
point); ``check_ops`` and ``check_goldens`` are the checks it collects. This package imports nothing
on its own, so the plugin costs nothing in pytest runs that do not use it. See docs/plugins.md.
"""
