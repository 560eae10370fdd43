"""ASGI guards in front of the routes: the API key and the request body (its size and how long it takes).

Plain ASGI (not Starlette's BaseHTTPMiddleware), so streamed responses and client disconnects
pass through untouched.
"""

from __future__ import annotations

import asyncio
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


class BodyGuard:
    """Reads each request's body before the routes do, counting bytes as they arrive, so that the
    limit holds for every transfer encoding (Content-Length, chunked, or both): past ``max_bytes``
    it answers 413 at once, and a body not complete ``timeout`` seconds after the headers gets 408.
    Both close the connection, so the rest of the body is never read. The routes then receive the
    body as one message."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _refuse(400, "bad Content-Length", scope, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await _refuse(413, self._too_large(), scope, send)
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(receive)
        except _BodyTooLarge:
            await _refuse(413, self._too_large(), scope, send)
            return
        except TimeoutError:
            await _refuse(408, f"the request body did not arrive within {self.timeout:g} s (--body-timeout)",
                          scope, send)
            return
        if body is None:  # the client left before sending all of it: nobody to answer
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # later calls wait for the client's disconnect, as before
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes (--max-body)"


class _BodyTooLarge(Exception):
    pass


async def _refuse(status: int, message: str, scope: dict, send: Any) -> None:
    """An error answered before the body is read; ``Connection: close`` ends the connection after it,
    so whatever the client still sends is never read."""
    response = JSONResponse(error_body(status, message), status_code=status, headers={"Connection": "close"})
    await response(scope, _no_body, send)


async def _no_body() -> dict:
    return {"type": "http.disconnect"}
