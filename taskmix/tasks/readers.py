"""Generic file readers that turn TSV, CSV and JSONL files into `Example` lists.

A reader is configured by data (a `Columns` spec and a `LabelSpec`), so each task
definition is a table entry rather than a new function.  Every problem in a file is
reported as a `DataError` naming the file and the 1-based line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from taskmix.errors import ConfigError, DataError
from taskmix.kinds.base import TaskKind
from taskmix.tasks.base import Example

Format = Literal["tsv", "csv", "jsonl"]

# A column is a header name (or JSON key) or a 0-based field index (headerless files).
Column = str | int


@dataclass(frozen=True)
class Columns:
    """Which columns feed which `Example` field.

    `uid` falls back to the 0-based data-row index when the file has no id column.
    `categories` lists columns whose non-empty cells mark the row as belonging to the
    category named by the column header; the names go to `meta["categories"]`.
    """

    text_a: Column
    text_b: Column | None = None
    label: Column | None = None
    uid: Column | None = None
    categories: tuple[Column, ...] = ()


@dataclass(frozen=True)
class LabelSpec:
    """How a raw label cell becomes a label value: the task's kind parses it against `labels`.

    Rows whose raw label is in `skip` are dropped (SNLI marks pairs without a gold
    label with "-").  JSON booleans are read as the strings "True"/"False".
    """

    kind: TaskKind
    labels: tuple[str, ...] = ()
    skip: frozenset[str] = frozenset()

    def parse(self, raw: Any, path: Path, line: int) -> int | float | None:
        """Return the label value, or None when the row should be skipped."""
        text = str(raw)
        if text in self.skip:
            return None
        try:
            return self.kind.parse_label(text, self.labels)
        except ValueError as error:
            raise DataError(str(error), path, line) from None


@dataclass(frozen=True)
class TableReader:
    """Reads one file format with a column spec; `target=None` reads an unlabelled split.

    TSV is split on tabs with no quote handling (GLUE fields may begin with `"`); CSV uses
    standard quoting.  Both accept a UTF-8 BOM and CRLF endings and require every row to
    have as many fields as the first one.
    """

    format: Format
    columns: Columns
    target: LabelSpec | None = None
    header: bool = True

    def __post_init__(self) -> None:
        if self.target is not None and self.columns.label is None:
            raise ConfigError("a labelled split needs a label column")

    def __call__(self, path: Path) -> list[Example]:
        if self.format == "jsonl":
            rows: Iterator[tuple[int, Any]] = jsonl_rows(path)
            columns = self.columns
        else:
            names, rows = _delimited_rows(path, self.format, self.header)
            if self.header and names is None:  # empty file: no header, no rows
                return []
            columns = _resolve_columns(self.columns, names, path)
        examples = []
        for position, (line, row) in enumerate(rows):
            example = self._example(row, columns, position, path, line)
            if example is not None:
                examples.append(example)
        return examples

    def _example(
        self, row: Any, columns: Columns, position: int, path: Path, line: int
    ) -> Example | None:
        label = None
        if self.target is not None and columns.label is not None:
            label = self.target.parse(_cell(row, columns.label, path, line), path, line)
            if label is None:
                return None
        meta: dict[str, Any] = {}
        if columns.categories:
            meta["categories"] = [
                str(name)
                for name, column in zip(self.columns.categories, columns.categories)
                if str(_cell(row, column, path, line) or "").strip()
            ]
        return Example(
            text_a=_text(row, columns.text_a, path, line),
            text_b=None if columns.text_b is None else _text(row, columns.text_b, path, line),
            label=label,
            uid=str(position) if columns.uid is None else str(_cell(row, columns.uid, path, line)),
            meta=meta,
        )


def _cell(row: Any, column: Column, path: Path, line: int) -> Any:
    """Look a column up in a field list (by index) or a JSON object (by key)."""
    try:
        return row[column]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"row has no field {column!r}", path, line) from None


def _text(row: Any, column: Column, path: Path, line: int) -> str:
    value = _cell(row, column, path, line)
    if not isinstance(value, str):
        raise DataError(f"field {column!r} should be text, got {value!r}", path, line)
    return value


def _resolve_columns(columns: Columns, names: list[str] | None, path: Path) -> Columns:
    """Turn header names into field indices once per file, so rows are plain lists."""

    def index(column: Column) -> int:
        if isinstance(column, int):
            return column
        if names is None:
            raise DataError(f"column {column!r} is a name but the file has no header", path)
        if column not in names:
            raise DataError(f"no column {column!r} in header; columns are {names}", path, 1)
        return names.index(column)

    return Columns(
        text_a=index(columns.text_a),
        text_b=None if columns.text_b is None else index(columns.text_b),
        label=None if columns.label is None else index(columns.label),
        uid=None if columns.uid is None else index(columns.uid),
        categories=tuple(index(name) for name in columns.categories),
    )


def _not_utf8(error: UnicodeDecodeError, path: Path) -> DataError:
    return DataError(f"not valid UTF-8 ({error.reason} at byte {error.start})", path)


def open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line, text without its line ending); only LF or CRLF end a line."""
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as error:
        raise _not_utf8(error, path) from None


def _delimited_rows(
    path: Path, fmt: Format, header: bool
) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """Split a TSV/CSV file into rows, checking that the field count never changes."""
    if fmt == "tsv":
        rows = ((n, text.split("\t")) for n, text in open_lines(path) if text)
    else:
        rows = _csv_rows(path)
    first = next(rows, None)
    if first is None:
        return None, iter(())
    width = len(first[1])

    def checked() -> Iterator[tuple[int, list[str]]]:
        if not header:
            yield first
        for line, fields in rows:
            if len(fields) != width:
                raise DataError(f"expected {width} fields, found {len(fields)}", path, line)
            yield line, fields

    return (first[1] if header else None), checked()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the line on which each record starts (records may span lines)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            start = 1
            for fields in reader:
                if fields:
                    yield start, fields
                start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"bad CSV: {error}", path, reader.line_num) from None
    except UnicodeDecodeError as error:
        raise _not_utf8(error, path) from None


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """One JSON object per non-blank line."""
    for line, text in open_lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"bad JSON: {error.msg} (column {error.colno})", path, line) from None
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", path, line)
        yield line, row
