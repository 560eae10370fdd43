"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, for every failure:
malformed JSON, schema violations, unknown routes, bad parameters and (never expected) bugs."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcore.errors import LLMCoreError

log = logging.getLogger("llmcore.server")

#: OpenAI's error type for each status the server answers with
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 408: "timeout_error", 413: "invalid_request_error", 501: "not_supported_error",
          503: "unavailable_error", 504: "timeout_error"}


class APIError(Exception):
    """An error answered to the client with ``status``; ``param`` names the offending field."""

    def __init__(self, status: int, message: str, *, param: str | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type or _TYPES.get(status, "server_error")


def error_body(status: int, message: str, *, param: str | None = None, type: str | None = None) -> dict:
    return {"error": {"message": message, "type": type or _TYPES.get(status, "server_error"),
                      "param": param, "code": status}}


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error_body(error.status, error.message, param=error.param, type=error.type),
                        status_code=error.status)


def api_error_from(error: Exception) -> APIError:
    """A request's failure as the client sees it: user mistakes are 400s, anything else a 500."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, LLMCoreError):
        return APIError(400, str(error))
    log.error("internal error", exc_info=error)
    return APIError(500, f"internal error: {type(error).__name__}: {error}")


def _field_path(location: tuple) -> str | None:
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            ctx = first.get("ctx") or {}
            detail = ctx.get("error", first.get("msg"))
            return error_response(APIError(400, f"malformed JSON in the request body: {detail}"))
        param = _field_path(tuple(first.get("loc", ())))
        if first.get("type") == "missing" and param is None:
            return error_response(APIError(400, "the request body is missing (send a JSON object)"))
        where = f"field '{param}': " if param else "request body: "
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return error_response(APIError(400, f"{where}{first.get('msg')}{more}", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "not found: " + request.url.path if exc.status_code == 404 else str(exc.detail)
        response = error_response(APIError(exc.status_code, message))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(LLMCoreError)
    async def user_error(request: Request, exc: LLMCoreError) -> JSONResponse:
        return error_response(api_error_from(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(api_error_from(exc))
