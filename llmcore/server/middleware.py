"""ASGI guards in front of the routes: the API key and the request body size.

Plain ASGI (not Starlette's BaseHTTPMiddleware), so streamed responses and client disconnects
pass through untouched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from fastapi.responses import JSONResponse

from llmcore.server.errors import error_body

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class ApiKeyGuard:
    """Requires ``Authorization: Bearer KEY`` (or ``X-Api-Key: KEY``) except on ``open_paths``,
    compared in constant time; answers 401 in OpenAI's error shape."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Collection[str], open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self._key = api_key.encode()
        self._open_paths = frozenset(open_paths)
        self._open_prefixes = open_prefixes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self._authorized(dict(scope["headers"])):
            response = JSONResponse(error_body(401, "Invalid API Key", type="authentication_error"), status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_open(self, path: str) -> bool:
        return path in self._open_paths or path.startswith(self._open_prefixes)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer":
            token = headers.get(b"x-api-key", b"")
        return hmac.compare_digest(token.strip(), self._key)


class BodySizeGuard:
    """Answers 413 to a request whose declared body exceeds ``max_bytes`` before anything reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.max_bytes:
                message = f"the request body exceeds {self.max_bytes} bytes" if length.isdigit() else "bad Content-Length"
                status = 413 if length.isdigit() else 400
                await JSONResponse(error_body(status, message), status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
