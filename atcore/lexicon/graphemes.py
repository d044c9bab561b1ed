"""Grapheme cluster counting for `minGraphemes`/`maxGraphemes` (spec-lexicon.md, UAX #29).

An approximation of extended grapheme clusters from `unicodedata` alone: CR LF, controls,
combining and spacing marks, ZWJ emoji sequences, variation selectors, emoji modifiers, tag
sequences, regional-indicator pairs and Hangul syllables. The Indic conjunct rule (GB9c) is not
applied, so such text counts a few clusters more than a full implementation would.
"""

from __future__ import annotations

import unicodedata
from enum import Enum, auto


class _Cls(Enum):
    OTHER = auto()
    CR = auto()
    LF = auto()
    CONTROL = auto()
    EXTEND = auto()
    ZWJ = auto()
    SPACING_MARK = auto()
    PREPEND = auto()
    REGIONAL = auto()
    PICTOGRAPHIC = auto()
    L = auto()
    V = auto()
    T = auto()
    LV = auto()
    LVT = auto()


_PREPEND = frozenset([0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD])
# Extended_Pictographic, condensed to the blocks emoji live in.
_PICTOGRAPHIC_RANGES = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x21AA),
    (0x231A, 0x23FF),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25FE),
    (0x2600, 0x27BF),
    (0x2934, 0x2935),
    (0x2B05, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3299),
    (0x1F000, 0x1FAFF),
    (0x1FC00, 0x1FFFD),
)
_HANGUL_BASE = 0xAC00
_HANGUL_LAST = 0xD7A3


def _classify(cp: int) -> _Cls:
    if cp == 0x0D:
        return _Cls.CR
    if cp == 0x0A:
        return _Cls.LF
    if cp == 0x200D:
        return _Cls.ZWJ
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return _Cls.REGIONAL
    if (
        cp == 0x200C
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
        or 0xFF9E <= cp <= 0xFF9F
    ):
        return _Cls.EXTEND
    if 0x0600 <= cp <= 0x0605 or cp in _PREPEND:
        return _Cls.PREPEND
    if _HANGUL_BASE <= cp <= _HANGUL_LAST:
        return _Cls.LV if (cp - _HANGUL_BASE) % 28 == 0 else _Cls.LVT
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return _Cls.L
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return _Cls.V
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return _Cls.T
    for low, high in _PICTOGRAPHIC_RANGES:
        if low <= cp <= high:
            return _Cls.PICTOGRAPHIC
    category = unicodedata.category(chr(cp))
    if category in ("Mn", "Me"):
        return _Cls.EXTEND
    if category == "Mc":
        return _Cls.SPACING_MARK
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return _Cls.CONTROL
    return _Cls.OTHER


_CONTROLS = (_Cls.CR, _Cls.LF, _Cls.CONTROL)
_HANGUL_JOINS = {
    _Cls.L: (_Cls.L, _Cls.V, _Cls.LV, _Cls.LVT),
    _Cls.LV: (_Cls.V, _Cls.T),
    _Cls.V: (_Cls.V, _Cls.T),
    _Cls.LVT: (_Cls.T,),
    _Cls.T: (_Cls.T,),
}


def _joins(prev: _Cls, cls: _Cls, regional_run: int, after_emoji_zwj: bool) -> bool:
    if prev is _Cls.CR and cls is _Cls.LF:
        return True
    if prev in _CONTROLS or cls in _CONTROLS:
        return False
    if cls in _HANGUL_JOINS.get(prev, ()):
        return True
    if cls in (_Cls.EXTEND, _Cls.ZWJ, _Cls.SPACING_MARK) or prev is _Cls.PREPEND:
        return True
    if cls is _Cls.PICTOGRAPHIC and after_emoji_zwj:
        return True
    return cls is _Cls.REGIONAL and prev is _Cls.REGIONAL and regional_run % 2 == 1


def count_graphemes(text: str) -> int:
    """The number of (approximate) extended grapheme clusters in `text`."""
    if text.isascii():
        return len(text) - text.count("\r\n")
    count = 0
    prev: _Cls | None = None
    regional_run = 0  # regional indicators directly before the current code point
    in_emoji = False  # inside Extended_Pictographic Extend*
    after_emoji_zwj = False  # just after Extended_Pictographic Extend* ZWJ
    for char in text:
        cls = _classify(ord(char))
        if prev is None or not _joins(prev, cls, regional_run, after_emoji_zwj):
            count += 1
        regional_run = regional_run + 1 if cls is _Cls.REGIONAL else 0
        after_emoji_zwj = in_emoji and cls is _Cls.ZWJ
        in_emoji = cls is _Cls.PICTOGRAPHIC or (in_emoji and cls is _Cls.EXTEND)
        prev = cls
    return count
