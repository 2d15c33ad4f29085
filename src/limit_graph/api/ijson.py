"""Request bodies are read as I-JSON (RFC 7493), strictly, before any route sees them.

The ledger hashes canonical JSON, which only I-JSON has, and a lenient reader is a
parser differential waiting to happen (a proxy that keeps the first of two equal keys,
this app the last).  So a body must be UTF-8 JSON with unique keys, finite numbers,
integers within ±(2**53 - 1), strings of Unicode characters (no lone surrogates, no
noncharacters) and at most ``MAX_DEPTH`` levels of nesting; anything else is a 400
``MalformedJSON`` problem whose ``errors`` name each place (``["body", "inputs", "x"]``),
and nothing is written.

Every router is built with ``route_class=IJSONRoute``: its handler reads and checks
the body itself, outside FastAPI's own parsing, which would turn any error of a custom
``Request.json`` into an anonymous 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from limit_graph.core.canonical import MAX_DEPTH, MAX_ERRORS, escape_surrogates, ijson_errors
from limit_graph.core.errors import MalformedJSON

__all__ = ["IJSONRequest", "IJSONRoute", "parse_ijson"]

DETAIL = "the request body is not I-JSON (RFC 7493)"


class _Pairs(list[tuple[str, Any]]):
    """An object kept as its key/value pairs in order, duplicates included."""


def _duplicate_keys(document: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Every key that appears twice in one object, in a document parsed into ``_Pairs``."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str | int]]] = [(document, loc)]
    while stack and len(errors) < MAX_ERRORS:
        value, where = stack.pop()
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    shown = escape_surrogates(key)
                    msg = f"duplicate key {shown!r}: readers disagree on which one counts"
                    errors.append({"loc": [*where, shown], "msg": msg, "type": "duplicate_key"})
                seen.add(key)
            children = [(item, [*where, escape_surrogates(key)]) for key, item in value]
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((value[i], [*where, i]) for i in reversed(range(len(value))))
    return errors


def _malformed(msg: str, kind: str, loc: list[str | int] | None = None) -> MalformedJSON:
    error = {"loc": loc or ["body"], "msg": msg, "type": kind}
    return MalformedJSON(f"{DETAIL}: {msg}", [error])


def parse_ijson(body: bytes) -> Any:
    """The document in ``body``, or :class:`MalformedJSON` saying where it is not I-JSON.

    >>> parse_ijson(b'{"agent": "echo", "inputs": {"x": [1, 2.5, "\\\\ud83d\\\\ude00"]}}')
    {'agent': 'echo', 'inputs': {'x': [1, 2.5, '😀']}}
    >>> try:
    ...     parse_ijson(b'{"x": 1, "x": 2, "y": [NaN]}')
    ... except MalformedJSON as exc:
    ...     for error in exc.errors:
    ...         print(error["loc"], error["type"])
    ['body', 'x'] duplicate_key
    ['body', 'y', 0] number_not_finite
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"not UTF-8: byte {exc.start} cannot be decoded", "utf8_invalid") from None
    duplicated = False

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicated
        document = dict(pairs)
        duplicated = duplicated or len(document) != len(pairs)
        return document

    try:
        document = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        msg = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise _malformed(msg, "json_invalid", ["body", exc.pos]) from None
    except RecursionError:
        raise _malformed(f"nested deeper than {MAX_DEPTH} levels", "too_deep") from None
    except ValueError:  # an integer of more digits than Python converts
        raise _malformed("an integer of thousands of digits", "number_not_safe_integer") from None
    errors = (
        _duplicate_keys(json.loads(text, object_pairs_hook=_Pairs), ["body"]) if duplicated else []
    )
    errors += ijson_errors(document, ["body"])
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedJSON(f"{DETAIL}: {first['msg']} at {where}", errors[:MAX_ERRORS])
    return document


def _is_json(content_type: str | None, strict_content_type: bool) -> bool:
    """Whether FastAPI would read a body with this ``Content-Type`` as JSON."""
    if not content_type:
        return not strict_content_type
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class IJSONRequest(Request):
    """A request whose :meth:`json` is :func:`parse_ijson` of its body."""

    _ijson: Any

    async def json(self) -> Any:
        if not hasattr(self, "_ijson"):
            self._ijson = parse_ijson(await self.body())
        return self._ijson


class IJSONRoute(APIRoute):
    """A route that reads its JSON body strictly (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        strict = self.strict_content_type
        strict_content_type = bool(
            strict.value if isinstance(strict, DefaultPlaceholder) else strict
        )

        async def ijson_handler(request: Request) -> Response:
            strict_request = IJSONRequest(request.scope, request.receive)
            try:
                body = await strict_request.body()
            except ClientDisconnect:
                raise HTTPException(400, "the client went away before sending its body") from None
            if body and _is_json(request.headers.get("content-type"), strict_content_type):
                await strict_request.json()
            return await handler(strict_request)

        return ijson_handler
