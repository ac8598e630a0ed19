"""argparse types shared by the command-line modules: each refuses bad text in one line."""
from __future__ import annotations

import argparse
import math


def whole_number_at_least(low: int):
    """A type for a whole number of at least `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected at least {low}, got {value}")
        return value
    return parse


def positive_number(unit: str):
    """A type for a finite number above 0, in `unit` (e.g. 'hours')."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number of {unit}, got {text!r}")
        return value
    return parse
