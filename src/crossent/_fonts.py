"""The fonts of crossent's figures: matplotlib's ``font.family``, then the installed
fonts of :data:`FALLBACK_FONTS`, so that text in any script (a class or a title in
Chinese) is drawn where an installed font has its characters. Used by the report's
figures (``crossent._report._html``) and :func:`crossent.plot_reliability_diagram`."""

from __future__ import annotations

__all__ = ["FALLBACK_FONTS", "font_families"]

FALLBACK_FONTS = (
    "DejaVu Sans",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "SimHei",
    "Yu Gothic",
    "MS Gothic",
    "Hiragino Sans",
    "PingFang SC",
    "Apple SD Gothic Neo",
    "Malgun Gothic",
    "Arial Unicode MS",
    "Noto Sans",
)
"""Fonts that the figures' text falls back to, after matplotlib's ``font.family``, for a
character the fonts before lack (matplotlib 3.6 on draws each glyph with the first font
of the list that has it); only those installed are named, since matplotlib logs "Font
family not found" on standard error for each of the others."""


def font_families() -> list[str]:
    """``font.family``, then the installed :data:`FALLBACK_FONTS` it does not name (needs
    matplotlib)."""
    import matplotlib
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = list(matplotlib.rcParams["font.family"])
    return families + [f for f in FALLBACK_FONTS if f in installed and f not in families]
