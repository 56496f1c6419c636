"""Backtest of report detection: replay historical reports through the live detector on a virtual clock.

Input is CSV (header row) or JSON Lines, one report per row: `received_at` (ISO-8601 with a
time zone), `client_id`, `text`, and optionally `id`, `channel`, tags (`component`, `region`,
`category` columns, or a `tags` object in JSONL), `label` (rows sharing a non-empty label
are one true burst; empty means background) and `topic` (true subject of every row, for the
grouping's adjusted Rand index). Time is the rows' own: days of reports replay in seconds.

Output is the incidents the detector would have opened, as JSON Lines
`{"opened_at": ISO-8601, "summary": str, "report_ids": [...]}` where report ids are the
rows' `id` values, or their line numbers when the input has no `id`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from statusd.reports.clustering import ENCODER_KINDS, ClusteringConfig, Encoder, EncoderUnavailable, make_encoder
from statusd.core.clock import FIRST_YEAR, LAST_YEAR, supported
from statusd.core.errors import StatusdError, ValidationError
from statusd.core.json_body import parse_json
from statusd.reports.text import Report
from statusd.reports.surge import ReportDetector, SurgeConfig
from statusd.reports.textmodel import ReportModel, ReportModelError

# --- input -------------------------------------------------------------------------------

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


# --- replay ------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayIncident:
    """An incident the detector would have opened, with every report linked to it."""

    opened_at: datetime
    summary: str
    dedup_key: str
    group_key: str
    severity: str
    report_ids: list[str | int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSONL record: opened_at, summary, report_ids."""
        return {"opened_at": self.opened_at.isoformat(), "summary": self.summary, "report_ids": self.report_ids}


@dataclass(frozen=True, slots=True)
class BurstOutcome:
    """How one labelled burst fared."""

    label: str
    size: int
    first_at: datetime
    detected: bool
    delay_s: float | None
    linked: int  # reports linked to the burst's incidents
    correct: int  # of those, the burst's own


@dataclass(frozen=True, slots=True)
class ReplayMetrics:
    """Detection quality against the labels. Link precision/recall are means over detected bursts."""

    bursts: int
    detected: int
    recall: float
    recall_by_size: dict[int, tuple[int, int]]  # size → (detected, bursts)
    false_alarms: int
    days: float
    false_alarms_per_day: float
    median_delay_s: float | None
    link_precision: float | None
    link_recall: float | None
    ari_bursts: float | None  # grouping of the labelled reports vs their labels
    ari_topics: float | None  # grouping of every report vs its topic, when topics are given
    extra_incidents: int  # more than one incident for the same burst
    per_burst: tuple[BurstOutcome, ...] = ()


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced: incidents, each row's group, and metrics when the input had labels."""

    incidents: list[ReplayIncident]
    groups: dict[str | int, str]  # row ref → group key the detector put it in
    reports: int
    metrics: ReplayMetrics | None = None

    def write_jsonl(self, out: TextIO) -> None:
        """Write the incidents as JSON Lines."""
        for incident in self.incidents:
            out.write(json.dumps(incident.to_json(), ensure_ascii=False) + "\n")


def replay(rows: Iterable[ReplayRow], *, detector: ReportDetector | None = None,
           clustering: ClusteringConfig | None = None, surge: SurgeConfig | None = None,
           encoder: Encoder | None = None) -> ReplayResult:
    """Feed rows (in time order) through the same detector the server runs and collect the incidents."""
    rows = list(rows)
    detector = detector or ReportDetector(clustering, surge, encoder)
    refs: dict[str, str | int] = {}
    incidents: list[ReplayIncident] = []
    open_by_key: dict[str, ReplayIncident] = {}
    groups: dict[str | int, str] = {}
    for row in rows:
        report = row.report()
        refs[report.id] = row.ref
        outcome = detector.observe(report)
        groups[row.ref] = outcome.group_key
        if outcome.signal is not None and outcome.opened:
            incident = ReplayIncident(outcome.signal.at, outcome.signal.summary, outcome.signal.dedup_key,
                                      outcome.group_key, outcome.signal.severity.value,
                                      [refs[i] for i in outcome.link_report_ids])
            incidents.append(incident)
            open_by_key[outcome.signal.dedup_key] = incident
        elif outcome.incident_key is not None and outcome.incident_key in open_by_key:
            incident = open_by_key[outcome.incident_key]
            incident.report_ids.extend(refs[i] for i in outcome.link_report_ids)
            if outcome.signal is not None:
                incident.severity = outcome.signal.severity.value
    # Merges relabel groups after the fact; report each row's final group.
    final = {ref: detector.clusterer.resolve(key) for ref, key in groups.items()}
    metrics = evaluate(rows, incidents, final) if any(r.label is not None for r in rows) else None
    return ReplayResult(incidents, final, len(rows), metrics)


# --- metrics -----------------------------------------------------------------------------


def adjusted_rand_index(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Hubert–Arabie adjusted Rand index of two partitions of the same items (1 = identical, ~0 = chance)."""
    if len(truth) != len(predicted):
        raise ValueError("adjusted_rand_index: the partitions must cover the same items")
    n = len(truth)
    if n < 2:
        return 1.0
    pairs = Counter(zip(truth, predicted))
    sum_cells = sum(math.comb(c, 2) for c in pairs.values())
    sum_truth = sum(math.comb(c, 2) for c in Counter(truth).values())
    sum_pred = sum(math.comb(c, 2) for c in Counter(predicted).values())
    total = math.comb(n, 2)
    expected = sum_truth * sum_pred / total
    best = (sum_truth + sum_pred) / 2
    if best == expected:  # both partitions trivial (all one group or all singletons)
        return 1.0 if sum_cells == best else 0.0
    return (sum_cells - expected) / (best - expected)


def evaluate(rows: Sequence[ReplayRow], incidents: Sequence[ReplayIncident],
             groups: Mapping[str | int, str]) -> ReplayMetrics:
    """Recall, false alarms, delay, link precision/recall and ARI of a replay against the rows' labels."""
    label_of = {r.ref: (r.label or "") for r in rows}
    bursts: dict[str, list[ReplayRow]] = defaultdict(list)
    for r in rows:
        if r.label:
            bursts[r.label].append(r)
    # Each incident belongs to the burst most of its labelled reports come from; none → false alarm.
    by_burst: dict[str, list[ReplayIncident]] = defaultdict(list)
    false_alarms = 0
    for incident in incidents:
        labels = Counter(label_of.get(ref, "") for ref in incident.report_ids)
        labels.pop("", None)
        if not labels:
            false_alarms += 1
            continue
        best = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        by_burst[best].append(incident)

    outcomes: list[BurstOutcome] = []
    for label, members in sorted(bursts.items()):
        first_at = min(r.received_at for r in members)
        found = by_burst.get(label, [])
        linked = {ref for inc in found for ref in inc.report_ids}
        own = {r.ref for r in members}
        delay = min((inc.opened_at - first_at).total_seconds() for inc in found) if found else None
        outcomes.append(BurstOutcome(label, len(members), first_at, bool(found), delay, len(linked),
                                     len(linked & own)))

    times = [r.received_at for r in rows]
    days = max((max(times) - min(times)).total_seconds() / 86400, 1 / 24) if times else 1.0
    detected = [o for o in outcomes if o.detected]
    by_size: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        by_size[o.size][0] += o.detected
        by_size[o.size][1] += 1
    labelled = [r for r in rows if r.label]
    topical = [r for r in rows if r.topic]
    return ReplayMetrics(
        bursts=len(outcomes), detected=len(detected),
        recall=len(detected) / len(outcomes) if outcomes else 0.0,
        recall_by_size={k: (v[0], v[1]) for k, v in sorted(by_size.items())},
        false_alarms=false_alarms, days=days, false_alarms_per_day=false_alarms / days,
        median_delay_s=statistics.median(o.delay_s for o in detected if o.delay_s is not None) if detected else None,
        link_precision=statistics.fmean(o.correct / o.linked for o in detected) if detected else None,
        link_recall=statistics.fmean(o.correct / o.size for o in detected) if detected else None,
        ari_bursts=adjusted_rand_index([r.label for r in labelled], [groups[r.ref] for r in labelled])
        if labelled else None,
        ari_topics=adjusted_rand_index([r.topic for r in topical], [groups[r.ref] for r in topical])
        if len(topical) == len(rows) and topical else None,
        extra_incidents=sum(max(0, len(v) - 1) for v in by_burst.values()),
        per_burst=tuple(outcomes),
    )


def format_metrics(m: ReplayMetrics) -> str:
    """A short human-readable summary of the metrics."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"
    sizes = ", ".join(f"{size}: {d}/{n}" for size, (d, n) in m.recall_by_size.items())
    delay = "n/a" if m.median_delay_s is None else f"{m.median_delay_s / 60:.1f} min"
    return "\n".join([
        f"bursts detected: {m.detected}/{m.bursts} (recall {pct(m.recall)}; by size {sizes or 'none'})",
        f"false alarms: {m.false_alarms} in {m.days:.2f} days ({m.false_alarms_per_day:.2f}/day)",
        f"median detection delay: {delay}",
        f"link precision {pct(m.link_precision)}, link recall {pct(m.link_recall)}",
        f"ARI of grouping: bursts {pct(m.ari_bursts)}, topics {pct(m.ari_topics)}",
    ])


# --- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`statusd replay FILE [--out incidents.jsonl]`: replay a file, write incidents, print metrics; exit status."""
    parser = argparse.ArgumentParser(prog="statusd replay",
                                     description="Replay historical customer reports through report detection.")
    parser.add_argument("file", help="CSV or JSONL with received_at, client_id, text (and optional id, tags, label)")
    parser.add_argument("--out", help="write the incidents as JSONL here (default: standard output)")
    parser.add_argument("--encoder", choices=ENCODER_KINDS, default="tfidf",
                        help="text similarity: tfidf (default), use/blend (need the reports-embeddings extra), auto")
    parser.add_argument("--fit", help="CSV/JSONL of earlier reports (a `text` field) to learn word statistics from")
    parser.add_argument("--model", help="a text model fitted on your report history (.npz, `statusd.reports.textmodel`); "
                                        "replaces plain TF-IDF")
    parser.add_argument("--window-min", type=float, default=30.0, help="surge window in minutes (default 30)")
    defaults = SurgeConfig()
    parser.add_argument("--min-clients", type=int, default=defaults.min_clients,
                        help=f"distinct clients needed for a surge (default {defaults.min_clients})")
    parser.add_argument("--scan-min-clients", type=int, default=defaults.scan_min_clients,
                        help="also test tighter runs of this many clients within the window "
                             f"(default {defaults.scan_min_clients}; 0: off)")
    parser.add_argument("--link-quiet-min", type=float, default=defaults.active_s / 60,
                        help="after a surge, link its group's later reports until it is this many minutes quiet "
                             f"(default {defaults.active_s / 60:g})")
    args = parser.parse_args(argv)
    err = sys.stderr
    try:
        rows = read_rows(args.file)
        fit_texts = read_texts(args.fit) if args.fit else []
        model = ReportModel.load(args.model) if args.model else None
        encoder = make_encoder(args.encoder, fit=fit_texts, model=model)
    except (ReplayInputError, ReportModelError, EncoderUnavailable, ValueError) as exc:  # ValueError: --model with USE
        print(f"statusd replay: {exc}", file=err)
        return 2
    week = 7 * 24 * 60
    if not (0 < args.window_min <= week and 0 < args.link_quiet_min <= week) or args.min_clients < 1:
        print(f"statusd replay: --window-min and --link-quiet-min must be > 0 and at most {week} (a week), "
              "--min-clients >= 1", file=err)
        return 2
    if args.scan_min_clients < 0 or args.scan_min_clients == 1:
        print("statusd replay: --scan-min-clients must be 0 (off) or >= 2", file=err)
        return 2
    result = replay(rows, encoder=encoder,
                    surge=SurgeConfig(window_s=args.window_min * 60, min_clients=args.min_clients,
                                      scan_min_clients=args.scan_min_clients,
                                      active_s=args.link_quiet_min * 60))
    summary_out = sys.stdout
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as out:
                result.write_jsonl(out)
        except OSError as exc:
            print(f"statusd replay: cannot write {args.out}: {exc.strerror}", file=err)
            return 1
    else:
        result.write_jsonl(sys.stdout)
        summary_out = err
    span = ""
    if rows:
        span = f" from {rows[0].received_at.isoformat()} to {rows[-1].received_at.isoformat()}"
    print(f"{result.reports} reports{span}: {len(result.incidents)} incident(s)"
          + (f" written to {args.out}" if args.out else ""), file=summary_out)
    if result.metrics is not None:
        print(format_metrics(result.metrics), file=summary_out)
    return 0
