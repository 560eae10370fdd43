"""The backends that ship inside llmcore (``reference``). They are plugins like any other: found
through the ``llmcore.backends`` entry points, and importing only ``llmcore.plugin_api``."""
