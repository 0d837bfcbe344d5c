"""URL routing for the native interface: static paths in a dict, parameters in a trie.

Patterns are paths whose segments are literals or parameters::

    /health                      a literal path
    /users/{user_id}             one segment, as str
    /users/{user_id:int}/posts   one segment converted to int (digits only)
    /files/{rest:path}           the rest of the path, slashes included (last only)

Matching splits the raw request path on ``/`` first and percent-decodes each
segment afterwards, so an encoded slash (``%2F``) stays inside its segment and
cannot reach a route it does not belong to. Literal segments win over
parameters at the same depth (``/users/me`` before ``/users/{id}``), and
routes are matched by structure, not by the order they were added. A path
that matches no route is :class:`~trusswork.core.errors.NotFound` (404); one
that matches a route for other methods is :class:`MethodNotAllowed` (405,
with the allowed methods). Adding the same method and pattern twice is a
:class:`~trusswork.core.errors.Conflict`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from trusswork.core.errors import Conflict, InvalidInput, NotFound, TrussworkError

H = TypeVar("H")

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|path))?\}")
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class MethodNotAllowed(TrussworkError):
    """The path exists, but not for this method (HTTP 405); :attr:`allowed` lists the methods."""

    code = "method-not-allowed"
    http_status = 405
    title = "Method not allowed"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class Match(Generic[H]):
    """A matched route: its handler, the converted path parameters and the pattern."""

    handler: H
    params: dict[str, Any]
    pattern: str


@dataclass(slots=True)
class _Node(Generic[H]):
    literals: dict[str, _Node[H]] = field(default_factory=dict)
    param: tuple[str, str, _Node[H]] | None = None  # (name, converter, child)
    rest: tuple[str, dict[str, H], str] | None = None  # (name, handlers by method, pattern)
    handlers: dict[str, H] = field(default_factory=dict)
    pattern: str = ""


def _convert(kind: str, raw: str) -> Any:
    if kind == "int":
        if not raw.isascii() or not raw.isdigit():
            return None
        return int(raw)
    return raw


class Router(Generic[H]):
    """Maps (method, path) to a handler; see the module docstring for patterns.

    Usage::

        router = Router()

        @router.get("/users/{user_id:int}")
        async def user(request, user_id: int): ...

        match = router.match("GET", "/users/42")   # Match(handler=user, params={"user_id": 42})
    """

    __slots__ = ("_root", "_static", "_static_matches")

    def __init__(self) -> None:
        self._static: dict[str, tuple[dict[str, H], str]] = {}
        # the Match of each static path and method, made once (its params dict is shared:
        # treat Match.params as read-only)
        self._static_matches: dict[str, dict[str, Match[H]]] = {}
        self._root: _Node[H] = _Node()

    def add(self, methods: str | tuple[str, ...] | list[str], pattern: str, handler: H) -> None:
        """Route ``methods`` on ``pattern`` to ``handler``.

        Raises
        ------
        InvalidInput
            If the pattern or a method is malformed.
        Conflict
            If a method is already routed on the same pattern.
        """
        names = (methods,) if isinstance(methods, str) else tuple(methods)
        if not names or not all(isinstance(m, str) and _METHOD.fullmatch(m) for m in names):
            raise InvalidInput(f"route methods must be HTTP method tokens, got {methods!r}")
        names = tuple(m.upper() for m in names)
        segments = self._split_pattern(pattern)
        if all(_PARAM.fullmatch(s) is None for s in segments):
            table, _ = self._static.setdefault(pattern, ({}, pattern))
            self._put(table, names, handler, pattern)
            self._static_matches[pattern] = {m: Match(h, {}, pattern) for m, h in table.items()}
            return
        node = self._root
        for index, segment in enumerate(segments):
            param = _PARAM.fullmatch(segment)
            if param is None:
                node = node.literals.setdefault(segment, _Node())
                continue
            name, kind = param.group(1), param.group(2) or "str"
            if kind == "path":
                if index != len(segments) - 1:
                    raise InvalidInput(
                        f"route {pattern!r}: a {{name:path}} parameter must be the last segment"
                    )
                if node.rest is None:
                    node.rest = (name, {}, pattern)
                elif node.rest[0] != name:
                    raise Conflict(
                        f"route {pattern!r} names its path parameter {name!r}, but "
                        f"{node.rest[2]!r} already routes this position as {node.rest[0]!r}"
                    )
                self._put(node.rest[1], names, handler, pattern)
                return
            if node.param is None:
                node.param = (name, kind, _Node())
            elif node.param[:2] != (name, kind):
                raise Conflict(
                    f"route {pattern!r}: segment {index + 1} is already the parameter "
                    f"{{{node.param[0]}:{node.param[1]}}} of another route"
                )
            node = node.param[2]
        node.pattern = pattern
        self._put(node.handlers, names, handler, pattern)

    def _split_pattern(self, pattern: str) -> list[str]:
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise InvalidInput(f"route pattern must be a string starting with '/', got {pattern!r}")
        segments = pattern[1:].split("/")
        names = set()
        for segment in segments:
            if ("{" in segment or "}" in segment) and _PARAM.fullmatch(segment) is None:
                raise InvalidInput(
                    f"route {pattern!r}: segment {segment!r} must be a literal or a whole "
                    f"parameter like {{name}}, {{name:int}} or {{name:path}}"
                )
            param = _PARAM.fullmatch(segment)
            if param is not None:
                if param.group(1) in names:
                    raise InvalidInput(f"route {pattern!r} names {param.group(1)!r} twice")
                names.add(param.group(1))
        return segments

    @staticmethod
    def _put(table: dict[str, H], methods: tuple[str, ...], handler: H, pattern: str) -> None:
        for method in methods:
            if method in table:
                raise Conflict(f"{method} {pattern} is already routed")
        for method in methods:
            table[method] = handler

    def route(
        self, pattern: str, methods: tuple[str, ...] | list[str] = ("GET",)
    ) -> Callable[[H], H]:
        """Decorator form of :meth:`add`."""

        def decorate(handler: H) -> H:
            self.add(methods, pattern, handler)
            return handler

        return decorate

    def get(self, pattern: str) -> Callable[[H], H]:
        """Route GET (and HEAD, answered without a body by the server) on ``pattern``."""
        return self.route(pattern, ("GET", "HEAD"))

    def post(self, pattern: str) -> Callable[[H], H]:
        """Route POST on ``pattern``."""
        return self.route(pattern, ("POST",))

    def put(self, pattern: str) -> Callable[[H], H]:
        """Route PUT on ``pattern``."""
        return self.route(pattern, ("PUT",))

    def delete(self, pattern: str) -> Callable[[H], H]:
        """Route DELETE on ``pattern``."""
        return self.route(pattern, ("DELETE",))

    def match(self, method: str, path: str) -> Match[H]:
        """The route for ``method`` and the raw (still percent-encoded) ``path``.

        Raises
        ------
        NotFound
            If no route matches the path.
        MethodNotAllowed
            If routes match the path, but none for ``method``.
        """
        matches = self._static_matches.get(path)
        if matches is not None and "%" not in path:
            hit = matches.get(method)
            if hit is not None:
                return hit
            return self._not_allowed(method, path, self._static[path][0])
        raw = path[1:].split("/") if path.startswith("/") else None
        if raw is None:
            raise NotFound(f"no route for {path!r}: a path starts with '/'")
        try:
            segments = [unquote(s, errors="strict") if "%" in s else s for s in raw]
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"path {path!r} is not valid UTF-8 once percent-decoded ({exc.reason})"
            ) from None
        if "%" in path:
            decoded = "/" + "/".join(segments)
            if "/" not in "".join(segments) and decoded in self._static:
                table, pattern = self._static[decoded]
                handler = table.get(method)
                if handler is not None:
                    return Match(handler, {}, pattern)
                return self._not_allowed(method, path, table)
        found = self._walk(self._root, segments, 0, {})
        if found is None:
            raise NotFound(f"no route for {path!r}")
        table, params, pattern = found
        handler = table.get(method)
        if handler is None:
            return self._not_allowed(method, path, table)
        return Match(handler, params, pattern)

    def _walk(
        self, node: _Node[H], segments: list[str], index: int, params: dict[str, Any]
    ) -> tuple[dict[str, H], dict[str, Any], str] | None:
        if index == len(segments):
            if node.handlers:
                return node.handlers, params, node.pattern
            return None
        segment = segments[index]
        child = node.literals.get(segment)
        if child is not None:
            found = self._walk(child, segments, index + 1, params)
            if found is not None:
                return found
        if node.param is not None and segment:
            name, kind, param_child = node.param
            value = _convert(kind, segment)
            if value is not None:
                found = self._walk(param_child, segments, index + 1, {**params, name: value})
                if found is not None:
                    return found
        if node.rest is not None:
            name, table, pattern = node.rest
            rest = "/".join(segments[index:])
            if rest:
                return table, {**params, name: rest}, pattern
        return None

    @staticmethod
    def _not_allowed(method: str, path: str, table: dict[str, H]) -> Match[H]:
        allowed = tuple(sorted(table))
        raise MethodNotAllowed(
            f"{method} is not allowed on {path!r}; allowed: {', '.join(allowed)}", allowed
        )

    def __repr__(self) -> str:
        return f"Router({len(self._static)} static paths)"
