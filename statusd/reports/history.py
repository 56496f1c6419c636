"""Report history files: CSV or JSON Lines of past customer reports → rows, each error naming line and field.

One report per row: `received_at` (ISO-8601 with a time zone), `client_id`, `text`, and
optionally `id`, `channel`, tags (`component`, `region`, `category` columns, or a `tags` object
in JSONL), `label` (rows sharing a non-empty label are one true burst; empty means background)
and `topic` (true subject of every row, for the grouping's adjusted Rand index). The backtest
replays these rows; the text model is fitted on their texts and labels.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from statusd.core.clock import FIRST_YEAR, LAST_YEAR, supported
from statusd.core.errors import StatusdError, ValidationError
from statusd.core.json_body import parse_json
from statusd.reports.text import Report

REQUIRED = ("received_at", "client_id", "text")
_TAG_COLUMNS = ("component", "region", "category")


class ReplayInputError(StatusdError):
    """A row of the input cannot be read; names the line and the field."""

    def __init__(self, line: int, field: str, message: str, source: str = "") -> None:
        self.line, self.field, self.message, self.source = line, field, message, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}line {line}, field {field}: {message}")


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One historical report; `ref` is its id in the output (the `id` field, else the line number)."""

    ref: str | int
    line: int
    received_at: datetime
    client_id: str
    text: str
    channel: str = "replay"
    tags: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None  # None: the input has no labels; "": background
    topic: str | None = None

    def report(self) -> Report:
        """The Report the detector sees."""
        return Report(id=str(self.ref), client_id=self.client_id, text=self.text, received_at=self.received_at,
                      channel=self.channel, tags=self.tags)


def read_rows(path: str | Path) -> list[ReplayRow]:
    """Parse a CSV or JSONL file into rows sorted by time; raises ReplayInputError naming line and field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReplayInputError(0, "file", f"cannot read {path}: {exc.strerror}", str(path)) from exc
    try:
        return parse_rows(data, jsonl=_is_jsonl(path, data))
    except ReplayInputError as exc:
        raise ReplayInputError(exc.line, exc.field, exc.message, str(path)) from None


def read_texts(path: str | Path) -> list[str]:
    """The `text` field of every row of a CSV or JSONL file (for fitting word statistics)."""
    return read_history(path)[0]


def read_history(path: str | Path, *, label_field: str = "label") -> tuple[list[str], list[str] | None]:
    """Texts of a CSV or JSONL report history and their labels (None when no row has a `label_field`).

    For fitting a ReportModel: rows without text are skipped, and a row without a label gets "",
    which the fit treats as unlabelled.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReplayInputError(0, "file", f"cannot read {path}: {exc.strerror}", str(path)) from exc
    jsonl = _is_jsonl(path, data)
    texts: list[str] = []
    labels: list[str] = []
    try:
        content = _decode(data, jsonl=jsonl)
        if jsonl:
            for n, record in _jsonl_records(content):
                if isinstance(record.get("text"), str) and record["text"].strip():
                    texts.append(record["text"])
                    label = record.get(label_field)
                    labels.append("" if label in (None, "") else _string(label, n, label_field))
        else:
            reader = csv.DictReader(io.StringIO(content, newline=""))
            if "text" not in (reader.fieldnames or []):
                raise ReplayInputError(1, "text", "missing column")
            for row in reader:
                if row.get("text") and row["text"].strip():
                    texts.append(row["text"])
                    labels.append((row.get(label_field) or "").strip())
    except ReplayInputError as exc:
        raise ReplayInputError(exc.line, exc.field, exc.message, str(path)) from None
    except csv.Error as exc:
        raise ReplayInputError(0, "(row)", f"not valid CSV: {exc}", str(path)) from None
    return texts, (labels if any(labels) else None)


def parse_rows(data: bytes | str, *, jsonl: bool) -> list[ReplayRow]:
    """Parse CSV or JSONL content; rows come back stably sorted by `received_at`."""
    text = _decode(data, jsonl=jsonl) if isinstance(data, bytes) else data
    rows = _parse_jsonl(text) if jsonl else _parse_csv(text)
    seen: dict[str, int] = {}
    for row in rows:
        key = str(row.ref)
        if key in seen:
            raise ReplayInputError(row.line, "id", f"duplicate id {key!r} (first on line {seen[key]})")
        seen[key] = row.line
    return sorted(rows, key=lambda r: r.received_at)


def _is_jsonl(path: Path, data: bytes) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv"):
        return False
    return data.lstrip()[:1] == b"{"


def _decode(data: bytes, *, jsonl: bool) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise ReplayInputError(line_no, _field_at(data, exc.start, jsonl=jsonl), "not valid UTF-8") from None


def _field_at(data: bytes, offset: int, *, jsonl: bool) -> str:
    """Best effort: which field of its line holds the byte at `offset` (for the error message)."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    line = data[start:end if end >= 0 else len(data)].decode("utf-8", errors="replace")
    try:
        if jsonl:
            record = json.loads(line)
            for k, v in record.items():
                if "\ufffd" in json.dumps(v, ensure_ascii=False):
                    return str(k)
        else:
            header = next(csv.reader(io.StringIO(data[:data.find(b"\n")].decode("utf-8", errors="replace"))))
            values = next(csv.reader(io.StringIO(line)))
            for name, value in zip(header, values):
                if "\ufffd" in value:
                    return name
    except (ValueError, StopIteration, AttributeError, RecursionError):
        pass
    return "(unknown)"


def _parse_csv(text: str) -> list[ReplayRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ReplayInputError(1, "header", "the file is empty") from None
    except csv.Error as exc:
        raise ReplayInputError(1, "header", f"not valid CSV: {exc}") from None
    for name in REQUIRED:
        if name not in header:
            raise ReplayInputError(1, name, f"missing column (the header has: {', '.join(header)})")
    rows: list[ReplayRow] = []
    start = 2
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ReplayInputError(start, "(row)", f"not valid CSV: {exc}") from None
        line, start = start, reader.line_num + 1
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise ReplayInputError(line, "(row)", f"{len(values)} values for {len(header)} columns")
        record = dict(zip(header, values))
        rows.append(_row(record, line, has_label="label" in header, tags_from=_TAG_COLUMNS))
    return rows


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line, or ReplayInputError naming the line."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line.encode("utf-8", "surrogatepass"))
        except ValidationError as exc:
            raise ReplayInputError(line_no, "(row)" if exc.field == "body" else exc.field,
                                   exc.message.replace("is not", "not", 1)) from None
        if not isinstance(record, dict):
            raise ReplayInputError(line_no, "(row)", "expected a JSON object")
        yield line_no, record


def _parse_jsonl(text: str) -> list[ReplayRow]:
    rows: list[ReplayRow] = []
    for line_no, record in _jsonl_records(text):
        rows.append(_row(record, line_no, has_label="label" in record, tags_from=_TAG_COLUMNS))
    # In JSONL a label may be left out of background rows: labels exist as soon as one row has one.
    if any(r.label is not None for r in rows):
        rows = [r if r.label is not None else _with_label(r, "") for r in rows]
    return rows


def _with_label(row: ReplayRow, label: str) -> ReplayRow:
    return ReplayRow(row.ref, row.line, row.received_at, row.client_id, row.text, row.channel, row.tags,
                     label, row.topic)


def _row(record: Mapping[str, Any], line: int, *, has_label: bool, tags_from: Sequence[str]) -> ReplayRow:
    for name in REQUIRED:
        if record.get(name) in (None, ""):
            raise ReplayInputError(line, name, "required")
    at = _time(record["received_at"], line)
    client = _string(record["client_id"], line, "client_id")
    text = _string(record["text"], line, "text")
    ref: str | int = line
    if record.get("id") not in (None, ""):
        ref = _string(record["id"], line, "id")
    tags: dict[str, str] = {}
    raw_tags = record.get("tags")
    if raw_tags not in (None, ""):
        if not isinstance(raw_tags, Mapping):
            raise ReplayInputError(line, "tags", "expected an object of tag → value")
        tags.update({str(k): _string(v, line, f"tags.{k}") for k, v in raw_tags.items() if v not in (None, "")})
    for name in tags_from:
        if record.get(name) not in (None, ""):
            tags[name] = _string(record[name], line, name)
    label = record.get("label")
    label = ("" if label is None else _string(label, line, "label")) if has_label else None
    topic = record.get("topic")
    return ReplayRow(ref, line, at, client, text,
                     _string(record.get("channel") or "replay", line, "channel"), tags, label,
                     None if topic in (None, "") else _string(topic, line, "topic"))


def _string(value: Any, line: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ReplayInputError(line, name, f"expected a string, got {type(value).__name__}")
    return str(value).strip()


def _time(value: Any, line: int) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ReplayInputError(line, "received_at", f"not a Unix time: {value!r}") from None
    if not isinstance(value, str):
        raise ReplayInputError(line, "received_at", f"expected an ISO-8601 time, got {type(value).__name__}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReplayInputError(line, "received_at",
                               f"not an ISO-8601 time: {value!r} (e.g. 2026-01-05T09:00:00Z)") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise ReplayInputError(line, "received_at", f"no time zone in {value!r} (add Z or +03:00)")
    if not supported(at):  # the detector's windows and day buckets overflow near datetime's limits
        raise ReplayInputError(line, "received_at", f"{value!r} is outside the years {FIRST_YEAR} to {LAST_YEAR}")
    return at.astimezone(UTC)
