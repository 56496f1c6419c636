"""`statusd replay`: replay a report history through report detection, write the incidents, print the metrics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from statusd.reports.backtest import format_metrics, replay
from statusd.reports.encoders import ENCODER_KINDS, EncoderUnavailable, ReportModelError, make_encoder
from statusd.reports.history import ReplayInputError, read_rows, read_texts
from statusd.reports.settings import SurgeConfig
from statusd.reports.textmodel import ReportModel


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
