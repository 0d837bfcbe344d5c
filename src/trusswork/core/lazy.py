"""Lazy package attributes: import a public name's module on first use.

A package whose public names live in modules that import heavy things (the
HTTP server, Redis clients, parsers) lists them here instead of importing
them, so importing the package stays cheap::

    __getattr__ = lazy_getattr(__name__, {"build_app": "trusswork.tsdb._api"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``names[name]`` (a module path) on first access.

    The value is then stored in the package, so later accesses cost nothing;
    unknown names raise :class:`AttributeError` as a module would.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
