"""The engine: a model file opened (``model``), placed on backends (``plan``, ``registry``,
``calibration``), decoding batches into a KV cache (``context``, ``batch``, ``kv_cache``), sampled
(``sampling``) and stopped (``stops``) one sequence step at a time (``sequence``), with its state
saved and restored (``state``). ``llmcore.api`` is its public face."""
