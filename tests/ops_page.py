"""Reading the operations page's figures out of its HTML (templates/_ops_figures.html)."""

from __future__ import annotations

import re


def figure(html: str, name: str) -> str:
    """The shown value of one figure (`data-figure` on its card, `data-value` on the number)."""
    match = re.search(rf'data-figure="{name}".*?data-value[^>]*>([^<]*)<', html, re.S)
    assert match, f"no figure {name!r} in the page"
    return match.group(1).strip()


def breakdown(html: str, attribute: str, name: str) -> int:
    """One count of a figure's breakdown: connections by `transport`, processes by `kind` (0 if absent)."""
    match = re.search(rf'data-{attribute}="{name}"[^>]*>(\d+)<', html)
    return int(match.group(1)) if match else 0
