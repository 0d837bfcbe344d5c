"""The load test's ASGI app, for running a server on it by hand (``uvicorn app:app``).

It lives in the package as :mod:`trusswork.http._bench_app` (``app``, and
``native_app`` for ``trusswork http serve --native``); this module re-exports it.
"""

from trusswork.http._bench_app import app, native_app

__all__ = ["app", "native_app"]
