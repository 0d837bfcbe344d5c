"""Argument types shared by the subcommands: whole numbers with bounds.

argparse reports an :class:`argparse.ArgumentTypeError` as a usage error
naming the option, so every message here says what was expected and what
was given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(
    low: int | None = None, high: int | None = None, *, noun: str = "a whole number"
) -> Callable[[str], int]:
    """An argparse ``type`` for an int in ``[low, high]`` (either bound may be open)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if low is not None and high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {value}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {value}")
        return value

    return parse
