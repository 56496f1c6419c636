"""`[reports]`: the customer-report surge detector and the report intake."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from statusd.core.model import WINDOW_FLOOR
from statusd.core.schema import Problems, non_negative, positive


@dataclass(frozen=True)
class ReportsConfig:
    """`[reports]`: when customer reports surge, how their texts are compared, and what intake accepts."""

    window_s: float = 1800.0  # surge window: distinct clients counted over this long
    min_clients: int = 5  # a surge needs at least this many distinct clients in the window
    scan_min_clients: int = 4  # also test tighter runs of this many clients within the window (0: off)
    link_quiet_s: float = 900.0  # after a surge, its group's later reports are linked until it is this quiet
    max_window_reports: int = 200_000  # reports the surge windows hold in all (memory bound; longest windows cut first)
    encoder: Literal["tfidf", "use", "blend", "auto"] = "tfidf"  # text similarity; use/blend need the reports-embeddings extra
    rebuild_hours: float = 24.0  # on start, replay this much stored history into the detector
    detector_process: bool = True  # cluster in a child process (a second core); false: in the server process
    model: str | None = None  # text model fitted on your report history (statusd fit-model); tfidf/auto only
    max_text_chars: int = 5000
    max_batch: int = 500  # reports per POST /api/v1/reports/batch
    max_future_s: float = 300.0  # received_at further in the future is refused
    max_age_days: float = 30.0  # received_at further in the past is refused (backfill limit)
    form_notifier: str | None = None  # notifier whose address visitors may leave on the public form (e.g. "mail")
    form_rate_per_min: int = 5  # public form submissions per minute per client address

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = (positive(self.window_s, "window_s") + positive(self.min_clients, "min_clients")
                    + positive(self.link_quiet_s, "link_quiet_s")
                    + positive(self.rebuild_hours, "rebuild_hours", at_most=24 * 365) + positive(self.max_text_chars, "max_text_chars")
                    + positive(self.max_batch, "max_batch") + positive(self.max_age_days, "max_age_days")
                    + positive(self.form_rate_per_min, "form_rate_per_min"))
        problems += non_negative(self.max_future_s, "max_future_s")
        if self.scan_min_clients < 0 or self.scan_min_clients == 1:
            problems.append(("scan_min_clients", "expected 0 (off) or at least 2 clients"))
        if self.max_window_reports < WINDOW_FLOOR:
            problems.append(("max_window_reports", f"expected at least {WINDOW_FLOOR} reports"))
        if self.model is not None:
            if self.encoder in ("use", "blend"):
                problems.append(("model", f"a fitted model replaces TF-IDF: use encoder \"tfidf\" or \"auto\" with it, "
                                          f"not {self.encoder!r}"))
            elif not Path(self.model).is_file():
                problems.append(("model", f"no such file: {self.model} (statusd fit-model HISTORY {self.model})"))
        return problems
