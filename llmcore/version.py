"""llmcore's version, importable from every layer (``llmcore.__version__`` re-exports it)."""

__version__ = "0.1.0"
