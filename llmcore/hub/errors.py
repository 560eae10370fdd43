"""The error the hub raises for a bad reference, a missing remote file or a checksum mismatch."""

from __future__ import annotations

from llmcore.errors import LLMCoreError


class HubError(LLMCoreError):
    """A model cannot be fetched or found: bad reference, HTTP error, checksum mismatch, pip failure."""
