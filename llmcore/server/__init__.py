"""``llmcore serve``: an OpenAI-compatible HTTP server with continuous batching and a web chat page.

Needs the ``server`` extra (fastapi, uvicorn)."""

from llmcore.server.app import create_app

__all__ = ["create_app"]
