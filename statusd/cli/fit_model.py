"""`statusd fit-model`: fit a report text model on an operator's report history and save it for `[reports] model`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from statusd.reports.encoders import ReportModelError
from statusd.reports.history import ReplayInputError
from statusd.reports.textmodel import KINDS, SUPERVISED, ReportModel


def main(argv: Sequence[str] | None = None) -> int:
    """`statusd fit-model HISTORY OUT.npz [--kind K] [--no-labels] [--label-field F]`: fit a text model; exit status."""
    parser = argparse.ArgumentParser(prog="statusd fit-model",
                                     description="Fit a report text model on your report history.")
    parser.add_argument("history", help="CSV or JSONL of past reports: a `text` field, optionally a label field")
    parser.add_argument("out", help="where to write the model (.npz)")
    parser.add_argument("--label-field", default="label",
                        help="field with each report's category (default: label); with labels the model is LDA")
    parser.add_argument("--kind", choices=KINDS,
                        help="lsa (texts alone), lda (texts and labels; the default with labels) or category (the "
                             "labels as a classifier: best when your categories cover the complaints an outage "
                             "brings; backtest with statusd replay --model)")
    parser.add_argument("--no-labels", action="store_true", help="ignore labels: fit LSA on the texts alone")
    args = parser.parse_args(argv)
    if args.no_labels and args.kind in SUPERVISED:
        parser.error(f"--no-labels fits lsa; --kind {args.kind} needs the labels")
    try:
        model = ReportModel.fit_file(args.history, labels=False if args.no_labels else None,
                                     label_field=args.label_field, kind=args.kind)
        model.save(args.out)
    except (ReplayInputError, ReportModelError) as exc:
        print(f"statusd fit-model: {exc}", file=sys.stderr)
        return 2
    print(f"{model!r} written to {args.out}")
    return 0
