"""Tables of figures (dataset statistics, evaluation results) and their renderings: CSV (one table,
or a zip of one CSV per table), LaTeX with booktabs rules, JSON, and the cells a page shows.

A ``Table`` holds raw values (numbers, texts, datetimes, ``None`` for "not defined"); each column
says what kind of value it holds, and each rendering formats it in its own way: CSV and JSON keep
machine-readable values (ISO 8601 times, unrounded counts), LaTeX and the page round for reading.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

TEXT = "text"
INT = "int"
FLOAT = "float"
PERCENT = "percent"  # a share in percent, 0–100
DATETIME = "datetime"
KINDS = (TEXT, INT, FLOAT, PERCENT, DATETIME)

# LaTeX's special characters, each with what stands for it in text. One pass over the text, so a
# replacement is never escaped a second time (a backslash becomes \textbackslash{}, not \\).
LATEX_SPECIALS = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    # Characters these tables write themselves, which pdfLaTeX's default fonts and input encoding
    # would print wrongly (< and > as ¡ and ¿) or refuse.
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "²": r"\textsuperscript{2}",
    "–": "--",
    "—": "---",
    "…": r"\dots{}",
    "·": r"\textperiodcentered{}",
}
LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in LATEX_SPECIALS))
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# A cell a spreadsheet would run as a formula (CSV injection): text starting with one of these is
# written with a leading apostrophe, as OWASP advises.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NOT_DEFINED = "—"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = TEXT
    # Decimals shown for FLOAT (LaTeX and pages; a whole number shows none); PERCENT shows one.
    digits: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown column kind {self.kind!r}.")

    @property
    def numeric(self) -> bool:
        return self.kind in (INT, FLOAT, PERCENT)


@dataclass
class Table:
    """``key`` names the table in URLs, file names and LaTeX labels; ``note`` says what it counts."""

    key: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"Table {self.key} has {len(self.columns)} columns, got {len(values)} values.")
        self.rows.append(list(values))

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "note": self.note,
            "columns": [{"key": c.key, "title": c.title, "kind": c.kind} for c in self.columns],
            "rows": [{c.key: json_value(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows],
        }

    # For pages: the head and the rows as (text, numeric) cells.
    @property
    def head(self) -> list[tuple[str, bool]]:
        return [(column.title, column.numeric) for column in self.columns]

    @property
    def cells(self) -> list[list[tuple[str, bool]]]:
        return [
            [(display(value, column), column.numeric) for column, value in zip(self.columns, row, strict=True)]
            for row in self.rows
        ]


def _defined(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def json_value(value: Any) -> Any:
    if not _defined(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def display(value: Any, column: Column) -> str:
    """The value as a person reads it (pages and LaTeX, before escaping)."""
    if not _defined(value):
        return NOT_DEFINED
    if column.kind == INT or (column.kind == FLOAT and isinstance(value, int)):
        return f"{int(value):,}"
    if column.kind == FLOAT:
        return f"{float(value):,.{column.digits}f}"
    if column.kind == PERCENT:
        return f"{float(value):.1f}"
    if column.kind == DATETIME:
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if timezone.is_aware(value) else str(value)
    return CONTROL.sub(" ", str(value))


def _csv_value(value: Any, column: Column) -> Any:
    if not _defined(value):
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if (column.kind == FLOAT or column.kind == PERCENT) and not isinstance(value, int):
        return repr(round(float(value), 6))
    if column.kind == TEXT:
        text = str(value)
        return "'" + text if text.startswith(FORMULA_START) else text
    return value


def table_csv(table: Table) -> str:
    """One header row of column titles, then the rows (``""`` for a value that is not defined)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.title for column in table.columns])
    for row in table.rows:
        writer.writerow([_csv_value(v, c) for c, v in zip(table.columns, row, strict=True)])
    return out.getvalue()


def tables_zip(tables: Iterable[Table]) -> bytes:
    """A zip holding ``<key>.csv`` for each table."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in tables:
            archive.writestr(f"{table.key}.csv", table_csv(table).encode("utf-8"))
    return buffer.getvalue()


def latex_escape(text: str) -> str:
    """``text`` as LaTeX text: its special characters escaped, control characters made spaces."""
    return LATEX_PATTERN.sub(lambda match: LATEX_SPECIALS[match.group(0)], CONTROL.sub(" ", str(text)))


def _latex_label(key: str) -> str:
    return "tab:" + re.sub(r"[^A-Za-z0-9:-]", "-", key)


def table_latex(table: Table, *, caption_prefix: str = "") -> str:
    """A ``table`` float holding a booktabs ``tabular``: text columns left, figures right."""
    spec = "".join("r" if column.numeric else "l" for column in table.columns)
    caption = latex_escape(caption_prefix + table.title + (f". {table.note}" if table.note else ""))
    lines = [
        r"\begin{table}[t]",
        r"  \centering",
        rf"  \caption{{{caption}}}",
        rf"  \label{{{_latex_label(table.key)}}}",
        rf"  \begin{{tabular}}{{{spec}}}",
        r"    \toprule",
        "    " + " & ".join(latex_escape(column.title) for column in table.columns) + r" \\",
        r"    \midrule",
    ]
    for row in table.rows:
        cells = [
            "--" if not _defined(value) else latex_escape(display(value, column))
            for column, value in zip(table.columns, row, strict=True)
        ]
        lines.append("    " + " & ".join(cells) + r" \\")
    if not table.rows:
        lines.append(rf"    \multicolumn{{{len(table.columns)}}}{{c}}{{(none)}} \\")
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def tables_latex(tables: Sequence[Table], *, heading: str, caption_prefix: str = "") -> str:
    """Every table, one after another, under a comment naming what they describe (the preamble
    needs ``\\usepackage{booktabs}``)."""
    parts = [f"% {CONTROL.sub(' ', heading)}", r"% Needs \usepackage{booktabs} in the preamble.", ""]
    for table in tables:
        parts.append(table_latex(table, caption_prefix=caption_prefix))
    return "\n".join(parts)
