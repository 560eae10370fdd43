"""llama.cpp's measuring tools on the engine: ``bench`` (llama-bench) and ``perplexity``
(llama-perplexity)."""
