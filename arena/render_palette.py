"""Colours of the memory maps: a colour-blind-safe categorical palette for callers, quiet node
colours for free memory, and the two colours of a change picture.

The callers' palette starts with the eight colours of Okabe and Ito ("Color Universal Design",
2008), which stay distinct under the common forms of colour blindness, and continues with the
lighter tints of Tableau 10 for ranks 9 to 16. Callers are ranked by the total bytes they
reserved, so the largest reservers get the most distinct colours; the rest share one grey.
Free memory is drawn in very light node colours, so that no caller colour is mistaken for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["OKABE_ITO", "TABLEAU_LIGHT", "CALLER_FILL", "OTHER_FILL", "UNKNOWN_FILL",
           "NODE_FILL", "NODE_EDGE", "ALLOCATED_FILL", "FREED_FILL", "KEPT_FILL",
           "caller_colours", "ink"]

#: Okabe-Ito, ordered for contrast with their neighbours in the list.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000")
#: Tableau 10's lighter tints (the second half of Tableau 20), without grey.
TABLEAU_LIGHT = ("#A0CBE8", "#FFBE7D", "#8CD17D", "#FF9D9A", "#D4A6C8", "#86BCB6", "#F1CE63",
                 "#D7B5A6")
#: Caller colours by rank (largest total first).
CALLER_FILL = OKABE_ITO + TABLEAU_LIGHT
#: Callers beyond the ranked ones.
OTHER_FILL = "#9B9B9B"
#: Reserved bytes that no caller piece covers (a hatch pattern defined in every SVG).
UNKNOWN_FILL = "url(#unknown)"
#: Free memory per node (very light) and the node's outline and name colour.
NODE_FILL = ("#EAF1F8", "#EAF4E8", "#FAF0E4", "#F0EBF7", "#F9EAEE", "#E6F4F2", "#F5F3E1",
             "#EFEFEF")
NODE_EDGE = ("#4A78A8", "#4F8A47", "#B07A3A", "#7D62A5", "#A85B70", "#3F8E85", "#8F862C",
             "#6D6D6D")
#: A change picture: bytes reserved between the two states, bytes freed, bytes kept.
ALLOCATED_FILL = "#0072B2"
FREED_FILL = "#E69F00"
KEPT_FILL = "#C8C8C8"


def caller_colours(pieces: Sequence[Any], top: int) -> tuple[dict[str, str],
                                                               list[tuple[str, int, int]]]:
    """Colour per caller and the totals ``(caller, bytes, count)`` sorted by bytes, largest
    first (ties by name). ``pieces`` have ``size`` and ``caller``; the ``top`` largest callers
    get :data:`CALLER_FILL` in order, the rest :data:`OTHER_FILL`. O(pieces + callers log
    callers)."""
    totals: dict[str, list[int]] = {}
    for p in pieces:
        t = totals.setdefault(p.caller, [0, 0])
        t[0] += p.size
        t[1] += 1
    ranked = sorted(((c, b, n) for c, (b, n) in totals.items()), key=lambda t: (-t[1], t[0]))
    colours = {c: (CALLER_FILL[i] if i < top else OTHER_FILL)
               for i, (c, _b, _n) in enumerate(ranked)}
    return colours, ranked


def ink(fill: str) -> str:
    """Black or white, whichever reads better on the ``#rrggbb`` colour ``fill`` (black on
    anything else, e.g. a pattern)."""
    if len(fill) != 7 or not fill.startswith("#"):
        return "#111111"
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 135 else "#ffffff"
