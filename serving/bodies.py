"""Request bodies parsed once, as standard JSON, and validation errors that always render.

Python's :mod:`json` reads more than JSON: ``NaN``, ``Infinity`` and ``-Infinity``, numbers too
large for a float (``1e400`` becomes ``inf``), and ``\\ud800`` escapes that leave a string no
UTF-8 encoder accepts. Each reached a route's model, failed validation, and FastAPI's 422 then
echoed the value back — which cannot be written as JSON: a 500. So every route parses its body
here (:class:`StrictJSONRoute`), and such a body is refused where it is parsed, as FastAPI
refuses a syntax error: a 422 of type ``json_invalid`` naming the position. Bytes that are not
UTF-8/16/32 text are refused the same way (FastAPI would answer an undocumented 400).

:func:`validation_failed` renders every 422 of the request models: FastAPI's field errors, with
the offending ``input`` echoed only when it is a plain JSON scalar (a nested or binary input is
left out; its ``loc`` names it), so no input can make the error itself fail.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

__all__ = ["StrictJSONRequest", "StrictJSONRoute", "loads_strict", "validation_failed"]

# JSON's tokens outside strings (strings skipped whole, so a "NaN" inside one is not seen)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?')
_ESCAPES = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


class _Refused(Exception):
    def __init__(self, token: str, why: str) -> None:
        self.token, self.why = token, why


def _constant(token: str) -> NoReturn:
    raise _Refused(token, f"{token} is not a JSON number")


def _float(token: str) -> float:
    number = float(token)
    if not math.isfinite(number):
        raise _Refused(token, f"{token} is out of range (a JSON number must fit a double)")
    return number


def _int(token: str) -> int:
    try:
        return int(token)
    except ValueError:  # more digits than Python converts
        raise _Refused(token, f"an integer of {len(token)} digits is out of range") from None


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float, parse_int=_int)


def _position(text: str, token: str) -> int:
    """Where ``token`` first stands as a token of its own (the first one refused is the first
    one in the document: the parser reads in order)."""
    return next((m.start() for m in _TOKENS.finditer(text) if m[0] == token), 0)


def _lone_surrogate(text: str) -> int | None:
    """The position of a ``\\uXXXX`` escape of half a surrogate pair, if any (valid JSON only:
    outside strings there is no backslash)."""
    high: int | None = None
    high_end = -1
    for m in _ESCAPES.finditer(text):
        code = int(m[1], 16) if m[1] else -1
        if high is not None:
            if m.start() == high_end and 0xDC00 <= code <= 0xDFFF:
                high = None
                continue
            return high
        if 0xD800 <= code <= 0xDBFF:
            high, high_end = m.start(), m.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return m.start()
    return high


def loads_strict(body: bytes) -> Any:
    """``body`` as standard JSON (RFC 8259); anything else raises :class:`json.JSONDecodeError`
    naming the position, as a syntax error does."""
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"the body is not {encoding} text", "", exc.start) from None
    try:
        value = _DECODER.decode(text)
    except _Refused as refused:
        raise json.JSONDecodeError(refused.why, text, _position(text, refused.token)) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    if "\\u" in text and (at := _lone_surrogate(text)) is not None:
        raise json.JSONDecodeError("half a surrogate pair is not a character", text, at)
    return value


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`loads_strict`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route that reads its JSON body with :func:`loads_strict` (``APIRouter(route_class=)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return strict


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def _field_error(error: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {k: error[k] for k in ("type", "loc", "msg") if k in error}
    if _scalar(error.get("input")) and "input" in error:
        shown["input"] = error["input"]
    ctx = error.get("ctx")
    if isinstance(ctx, dict):
        shown["ctx"] = {k: v if _scalar(v) else str(v) for k, v in ctx.items()}
    return shown


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [field errors]}``), rendered so that no input can break it."""
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors() if isinstance(e, dict)]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
