"""Backtest: reading history, replaying it through the detector, the JSONL it writes and its metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from statusd.cli import fit_model
from statusd.cli.replay import main
from statusd.reports.backtest import ReplayIncident, adjusted_rand_index, evaluate, replay
from statusd.reports.history import ReplayInputError, ReplayRow, parse_rows, read_history, read_rows
from statusd.reports.textmodel import ReportModel
from tests.support.reports import paraphrase_history_csv

START = datetime(2026, 1, 5, tzinfo=UTC)


def iso(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def synthetic_csv() -> str:
    """A day of hourly website reports, a 6-client payments burst at 10:00, and a 2-report non-burst."""
    lines = ["received_at,client_id,text,component,label"]
    for h in range(24):
        lines.append(f"{iso(h * 60 + 30)},bg{h},site is slow,website,")
    for i in range(6):
        lines.append(f"{iso(24 * 60 + 600 + 2 * i)},pay{i},\"card payment failed, help\",payments,outage")
    for i in range(2):
        lines.append(f"{iso(24 * 60 + 900 + i)},log{i},cannot log in,login,small")
    return "\n".join(lines) + "\n"


def test_replay_writes_the_incidents_as_jsonl(tmp_path: Path) -> None:
    source = tmp_path / "history.csv"
    source.write_text(synthetic_csv(), encoding="utf-8")
    out = tmp_path / "incidents.jsonl"
    assert main([str(source), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 1
    (record,) = records
    assert list(record) == ["opened_at", "summary", "report_ids"]
    assert record["opened_at"] == "2026-01-06T10:08:00+00:00"  # the 5th distinct client
    assert record["report_ids"] == [26, 27, 28, 29, 30, 31]  # line numbers: the input has no id column
    assert record["summary"].startswith("payments: customer reports surge: 5 clients in 30 min")


def test_replay_result_and_metrics_on_the_synthetic_history() -> None:
    rows = parse_rows(synthetic_csv(), jsonl=False)
    result = replay(rows)
    assert result.reports == 32 and len(result.incidents) == 1
    m = result.metrics
    assert m is not None
    assert (m.bursts, m.detected, m.recall) == (2, 1, 0.5)
    assert m.recall_by_size == {2: (0, 1), 6: (1, 1)}
    assert m.false_alarms == 0 and m.median_delay_s == 8 * 60
    assert (m.link_precision, m.link_recall, m.ari_bursts) == (1.0, 1.0, 1.0)
    assert result.groups[26] == "component:payments"


def row(ref: str, minutes: float, label: str = "", topic: str | None = None) -> ReplayRow:
    return ReplayRow(ref, 0, START + timedelta(minutes=minutes), f"client-{ref}", "text", label=label, topic=topic)


def test_metrics_on_a_hand_checked_case() -> None:
    rows = [row("a1", 0, "A"), row("a2", 5, "A"), row("a3", 6, "A"), row("a4", 7, "A"),
            row("b1", 100, "B"), row("b2", 101, "B"),
            row("g1", 2), row("g2", 600), row("g3", 700), row("g4", 48 * 60)]
    incidents = [
        ReplayIncident(START + timedelta(minutes=10), "A", "k1", "g", "minor", ["a1", "a2", "a3", "g1"]),
        ReplayIncident(START + timedelta(minutes=700), "noise", "k2", "g", "minor", ["g2", "g3"]),
    ]
    groups = {"a1": "x", "a2": "x", "a3": "x", "a4": "y", "b1": "y", "b2": "y",
              "g1": "x", "g2": "z", "g3": "z", "g4": "w"}
    m = evaluate(rows, incidents, groups)
    assert (m.bursts, m.detected, m.recall) == (2, 1, 0.5)
    assert m.recall_by_size == {2: (0, 1), 4: (1, 1)}
    assert m.false_alarms == 1 and m.days == 2.0 and m.false_alarms_per_day == 0.5
    assert m.median_delay_s == 600.0
    assert m.link_precision == 0.75 and m.link_recall == 0.75  # 3 of the 4 linked are A's; 3 of A's 4 linked
    # labelled rows: truth A,A,A,A,B,B vs groups x,x,x,y,y,y
    assert m.ari_bursts == pytest.approx(adjusted_rand_index("AAAABB", "xxxyyy"))
    assert m.ari_topics is None  # no topics given


@pytest.mark.parametrize(("truth", "predicted", "ari"), [
    pytest.param([0, 0, 1, 1], [0, 0, 1, 1], 1.0, id="identical"),
    pytest.param([0, 0, 1, 1], [1, 1, 0, 0], 1.0, id="renamed"),
    pytest.param([0, 0, 1, 2], [0, 0, 1, 1], 0.5714285714285715, id="sklearn-doc-1"),
    pytest.param([0, 0, 1, 1], [0, 0, 1, 2], 0.5714285714285715, id="sklearn-doc-2"),
    pytest.param([0, 0, 0, 0], [0, 1, 2, 3], 0.0, id="one-vs-singletons"),
    pytest.param([0, 1, 2, 3], [0, 1, 2, 3], 1.0, id="all-singletons"),
    pytest.param([0, 0, 1, 1], [0, 1, 0, 1], -0.5, id="worse-than-chance"),
])
def test_adjusted_rand_index(truth: list[int], predicted: list[int], ari: float) -> None:
    assert adjusted_rand_index(truth, predicted) == pytest.approx(ari)


def test_jsonl_input_with_ids_tags_and_topics(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"t{i}", "received_at": iso(i), "client_id": f"c{i}", "text": "payment failed",
                         "tags": {"component": "payments"}, "label": "burst", "topic": "pay"}) for i in range(6)]
    lines.insert(0, json.dumps({"id": "bg", "received_at": iso(-30), "client_id": "x", "text": "hello",
                                "topic": "other"}))
    source = tmp_path / "h.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_rows(source)
    assert [r.ref for r in rows][:2] == ["bg", "t0"] and rows[0].label == "" and rows[1].tags == {"component": "payments"}
    result = replay(rows)
    assert result.incidents[0].report_ids == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert result.metrics is not None and result.metrics.ari_topics == 1.0


HEADER = "received_at,client_id,text\n"


@pytest.mark.parametrize(("content", "line", "field", "message"), [
    pytest.param(b"received_at,client_id\n2026-01-05T09:00:00Z,c1\n", 1, "text", "missing column", id="no-column"),
    pytest.param(HEADER.encode() + b"2026-01-05T09:00:00Z,,broken\n", 2, "client_id", "required", id="empty-field"),
    pytest.param(HEADER.encode() + b"2026-01-05T09:00:00Z,c1,ok\nyesterday,c2,broken\n", 3, "received_at",
                 "not an ISO-8601 time", id="bad-time"),
    pytest.param(HEADER.encode() + b"2026-01-05T09:00:00,c1,broken\n", 2, "received_at", "no time zone",
                 id="naive-time"),
    pytest.param(HEADER.encode() + b"2026-01-05T09:00:00Z,c1,ok\n2026-01-05T09:01:00Z,c2,caf\xe9 down\n", 3, "text",
                 "not valid UTF-8", id="bad-utf8"),
    pytest.param(HEADER.encode() + b"2026-01-05T09:00:00Z,c1,a,extra\n", 2, "(row)", "values for 3 columns",
                 id="too-many-values"),
], )
def test_bad_csv_rows_name_line_and_field(tmp_path: Path, content: bytes, line: int, field: str,
                                          message: str) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    with pytest.raises(ReplayInputError) as err:
        read_rows(source)
    assert (err.value.line, err.value.field) == (line, field)
    assert message in str(err.value) and f"line {line}, field {field}" in str(err.value)


@pytest.mark.parametrize(("content", "line", "field"), [
    pytest.param(b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": "x"}\n{oops\n', 2, "(row)",
                 id="bad-json"),
    pytest.param(b'["not", "an", "object"]\n', 1, "(row)", id="not-object"),
    pytest.param(b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": "x", "tags": 3}\n', 1, "tags",
                 id="tags-not-object"),
    pytest.param(b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": ["x"]}\n', 1, "text",
                 id="text-not-string"),
    pytest.param(b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": "x", "id": "a"}\n'
                 b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": "y", "id": "a"}\n', 2, "id",
                 id="duplicate-id"),
    pytest.param(b'{"received_at": "2026-01-05T09:00:00Z", "client_id": "c", "text": "caf\xe9"}\n', 1, "text",
                 id="bad-utf8"),
])
def test_bad_jsonl_rows_name_line_and_field(tmp_path: Path, content: bytes, line: int, field: str) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(content)
    with pytest.raises(ReplayInputError) as err:
        read_rows(source)
    assert (err.value.line, err.value.field) == (line, field)


def test_main_reports_bad_input_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(HEADER.encode() + b"2026-01-05T09:00:00Z,c1,ok\nnot-a-time,c2,x\n")
    assert main([str(source)]) == 2
    err = capsys.readouterr().err
    assert f"{source}: line 3, field received_at: not an ISO-8601 time" in err and "Traceback" not in err
    assert main([str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_bytes(HEADER.encode() + b"2026-01-05T09:00:00Z,c1,ok\n")
    assert main([str(good), "--scan-min-clients", "1"]) == 2
    assert "--scan-min-clients must be 0 (off) or >= 2" in capsys.readouterr().err


def test_main_without_out_prints_incidents_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "history.csv"
    source.write_text(synthetic_csv(), encoding="utf-8")
    assert main([str(source)]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["report_ids"][0] for line in captured.out.splitlines()] == [26]
    assert "bursts detected: 1/2" in captured.err


def paraphrase_burst_csv() -> str:
    """A quiet day, then 6 clients asking for their money in two wordings that share no n-grams."""
    lines = ["received_at,client_id,text,label"]
    for h in range(24):
        lines.append(f"{iso(h * 60 + 30)},bg{h},how do I change my address number {h},")
    texts = ["refund please", "I want my money back", "refund please now", "my money back please",
             "refund me", "money back"]
    for i, text in enumerate(texts):
        lines.append(f"{iso(24 * 60 + 600 + 2 * i)},c{i},{text},outage")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["lda", "category"])
def test_replay_with_a_fitted_model(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    history = tmp_path / "history.csv"
    history.write_text(paraphrase_history_csv(), encoding="utf-8")
    texts, labels = read_history(history)
    assert len(texts) == 36 and labels is not None and set(labels) == {"refund", "delivery"}
    model_path = tmp_path / "model.npz"
    ReportModel.fit_file(history, kind=kind).save(model_path)
    source = tmp_path / "reports.csv"
    source.write_text(paraphrase_burst_csv(), encoding="utf-8")
    assert main([str(source)]) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([str(source), "--model", str(model_path)]) == 0
    fitted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert plain == []  # plain n-grams split "refund" from "money back": never 5 clients in one group
    assert len(fitted) == 1 and len(fitted[0]["report_ids"]) == 6


def test_replay_with_a_bad_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "reports.csv"
    source.write_text(synthetic_csv(), encoding="utf-8")
    bad = tmp_path / "model.npz"
    bad.write_text("not a model", encoding="utf-8")
    assert main([str(source), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a report model file" in err and "Traceback" not in err
    assert main([str(source), "--model", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_read_history_without_labels(tmp_path: Path) -> None:
    source = tmp_path / "history.jsonl"
    source.write_text('{"text": "refund please"}\n{"text": "where is my parcel", "label": ""}\n{"other": 1}\n',
                      encoding="utf-8")
    assert read_history(source) == (["refund please", "where is my parcel"], None)


def test_fit_model_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "history.csv"
    history.write_text(paraphrase_history_csv(), encoding="utf-8")
    out = tmp_path / "model.npz"
    assert fit_model.main([str(history), str(out)]) == 0
    assert ReportModel.load(out).kind == "lda" and "lda" in capsys.readouterr().out
    assert fit_model.main([str(history), str(out), "--no-labels"]) == 0
    assert ReportModel.load(out).kind == "lsa"
    assert fit_model.main([str(history), str(out), "--kind", "category"]) == 0
    assert ReportModel.load(out).kind == "category" and "categories=2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        fit_model.main([str(history), str(out), "--kind", "category", "--no-labels"])
    assert exit_info.value.code == 2 and "needs the labels" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("body\nhello\n", encoding="utf-8")
    assert fit_model.main([str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 1, field text: missing column" in err and "Traceback" not in err
