"""Tables of sound events (``filename onset offset event_label``, tab-separated: DCASE's and sed_scores_eval's
layout), read as a stream: a file of any size is checked row by row and fails at its first bad row, in one line,
without being held in memory."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

COLUMNS = ("filename", "onset", "offset", "event_label")
# an event may last at most this long (11.6 days): larger values are typing errors, and 1e308 would overflow frames
MAX_EVENT_SECONDS = 1e6
MAX_FIELD = 4096  # characters in one field: a file name or a label; longer is not an event table


def event_rows(path: str | os.PathLike, header_required: bool = False) -> Iterator[tuple[str, tuple | None]]:
    """``(filename, (onset, offset, label) or None)`` for each row (None: a file listed without events: one
    column, or an empty label). The header row is optional unless ``header_required``; with it the columns may
    come in any order. Every problem is a :class:`~dymn.DataError` naming the file and line."""
    path = Path(path)
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    with f:
        reader = csv.reader(f, delimiter="\t")
        line = 0
        try:
            cols = None
            for row in reader:
                line = reader.line_num
                if any(len(c) > MAX_FIELD for c in row):
                    raise DataError(f"{path}, line {line}: a field of more than {MAX_FIELD} characters")
                if cols is None:
                    cols = _columns(row, header_required, path)
                    if cols is not None:
                        continue
                    cols = list(range(4))
                if not row or not any(c.strip() for c in row):
                    continue
                yield _event(row, cols, path, line)
        except UnicodeDecodeError:
            raise DataError(f"{path}, after line {line}: not UTF-8 text") from None
        except csv.Error as exc:
            raise DataError(f"{path}, line {line + 1}: not a tab-separated table ({exc})") from None


def _columns(row: list[str], required: bool, path: Path) -> list[int] | None:
    names = [c.strip() for c in row]
    if set(COLUMNS) <= set(names):
        return [names.index(c) for c in COLUMNS]
    if required:
        raise DataError(f"{path}: the table needs the tab-separated columns {', '.join(COLUMNS)} (a header row)")
    return None


def _event(row: list[str], cols: list[int], path: Path, line: int) -> tuple[str, tuple | None]:
    if len(row) == 1:
        return row[0].strip(), None
    if len(row) <= max(cols):
        raise DataError(f"{path}, line {line}: expected filename, onset, offset, event_label separated by tabs")
    name, label = row[cols[0]].strip(), row[cols[3]].strip()
    if not label:
        return name, None
    try:
        onset, offset = float(row[cols[1]]), float(row[cols[2]])
    except ValueError:
        raise DataError(f"{path}, line {line}: onset and offset must be numbers of seconds, got "
                        f"{row[cols[1]][:40]!r}, {row[cols[2]][:40]!r}") from None  # fmt: skip
    if not (0 <= onset <= offset <= MAX_EVENT_SECONDS and math.isfinite(offset)):
        raise DataError(f"{path}, line {line}: need 0 <= onset <= offset <= {MAX_EVENT_SECONDS:g} seconds, got "
                        f"{onset:g} and {offset:g}")  # fmt: skip
    return name, (onset, offset, label)
