"""Tiny HTML builders for notebook displays and reports (standard library only).

They take plain strings and numbers, so the domain models can use them for their
``_repr_html_`` without importing anything above themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

__all__ = ["esc", "kv", "num", "table"]

_TABLE = (
    '<table style="border-collapse:collapse;font-family:sans-serif;font-size:12px">'
    "<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
)
_CELL = 'style="border:1px solid #ddd;padding:2px 8px;text-align:{align}"'


def esc(value: object) -> str:
    """HTML-escape anything."""
    import html  # on first use: its entity table was 2 ms of import loadmanager

    return html.escape(str(value), quote=True)


def num(value: float | int | None, unit: str = "", digits: int = 1) -> str:
    """A number for a table cell; ``-`` for missing."""
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}{unit}"
    return f"{value:,.{digits}f}{unit}"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, text: int | Collection[int] = 1
) -> str:
    """A small HTML table; cells are escaped.

    Columns of words align left, figures right: ``text`` is how many leading
    columns hold words, or the indexes of those that do.
    """
    left = range(text) if isinstance(text, int) else text

    def cell(tag: str, value: object, index: int) -> str:
        align = "left" if index in left else "right"
        return f"<{tag} {_CELL.format(align=align)}>{esc(value)}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", v, i) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return _TABLE.format(head=head, body=body)


def kv(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column key/value table."""
    return table(["", ""], [(k, v) for k, v in pairs]).replace("<thead><tr>", "<thead hidden><tr>")
