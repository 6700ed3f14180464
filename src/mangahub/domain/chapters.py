"""How chapter numbers relate to a series' chapter count.

A count counts whole chapters; 12.5 is an extra published after chapter 12, so a
series of 12 chapters holds it. The chapter check counts a feed up to 12.5 as 12
chapters, and progress checks a chapter against the count the same way.
"""

from __future__ import annotations

import math


def chapters_counted(number: float) -> int:
    """The chapter count that ``number`` implies (12.5 → 12)."""
    return math.floor(number)


def beyond_count(number: float, total: int | None) -> bool:
    """Is chapter ``number`` past a series of ``total`` chapters (None: unknown)?"""
    return total is not None and chapters_counted(number) > total
