"""A text model an operator fits on their own report history, so paraphrases of one complaint group together.

Character n-gram TF-IDF only joins reports that share spelling. A model fitted on past reports
adds a learned linear projection of those same TF-IDF vectors:

- without labels, LSA: the top singular directions of the history's TF-IDF matrix, where
  n-grams that co-occur in past reports ("refund", "money back") share dimensions;
- with labels (a help-desk category per past report), a regularised LDA: directions that
  separate the categories relative to the spread within each, found after whitening the
  within-category scatter;
- `category`, the same LDA used as a classifier: a report is represented by how likely each
  category is for it (the Gaussian posterior over the category means in the LDA space, with
  the pooled within-category spread), so two reports the model puts in one category look
  alike however they are worded. Strongest when the history's categories cover the kinds of
  complaint an outage brings; a kind it never saw is pushed toward the nearest category it
  knows (bench/README.md measures both).

The learned part is blended with the raw n-gram vector (cosine = weighted mean of the two
cosines), so wording and complaint kinds the history never saw still group by spelling. The
model also carries the n-gram document frequencies of the history. It is plain arrays, saved
as a NumPy .npz (never pickle) and loaded with validation.
"""

from __future__ import annotations

import math
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from statusd.reports.encoders import ModelEncoder, NgramEncoder, ReportModelError
from statusd.reports.history import read_history

FORMAT = 2  # 2 added the category means; format 1 files (lsa, lda) still load
KINDS = ("lsa", "lda", "category")
SUPERVISED = ("lda", "category")
#: Projection size and weight of the learned part's cosine in the blend, per kind (bench/report_detection.py).
DEFAULTS: dict[str, tuple[int, float]] = {"lsa": (100, 0.7), "lda": (100, 0.5), "category": (100, 0.5)}


class ReportModel:
    """N-gram statistics and a projection learned from past reports; `encoder()` gives an Encoder using them."""

    def __init__(self, kind: str, df: np.ndarray, docs: int, projection: np.ndarray, *, weight: float,
                 ngrams: tuple[int, ...] = (3, 4), stem_prefix: int = 4, latin_prefix: int = 0,
                 dim: int = 1024, means: np.ndarray | None = None, spread: float = 0.0) -> None:
        if kind not in KINDS:
            raise ReportModelError(f"report model: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if projection.ndim != 2 or projection.shape[0] != dim or projection.shape[1] < 1:
            raise ReportModelError(f"report model: projection must be {dim} × r, got {projection.shape}")
        if not 0 < weight <= 1:
            raise ReportModelError(f"report model: weight must be in (0, 1], got {weight}")
        if df.ndim != 1 or len(df) < dim or docs < 0:
            raise ReportModelError("report model: document frequencies must be a vector at least `dim` long")
        means = np.zeros((0, projection.shape[1])) if means is None else means
        if kind == "category" and (means.ndim != 2 or means.shape[0] < 2 or means.shape[1] != projection.shape[1]
                                   or not (0 < spread < math.inf)):
            raise ReportModelError(f"report model: a category model needs at least 2 category means of "
                                   f"{projection.shape[1]} dimensions and a finite spread > 0, got {means.shape}, "
                                   f"{spread}")
        for name, array in (("projection", projection), ("document frequencies", df), ("category means", means)):
            if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
                raise ReportModelError(f"report model: {name} must be finite real numbers")
        self.kind = kind
        self.df = df.astype(np.float64)
        self.docs = int(docs)
        self.projection = projection.astype(np.float32)
        self.weight = float(weight)
        self.ngrams = tuple(int(n) for n in ngrams)
        self.stem_prefix = int(stem_prefix)
        self.latin_prefix = int(latin_prefix)
        self.dim = int(dim)
        self.means = means.astype(np.float32) if kind == "category" else np.zeros((0, self.components), np.float32)
        self.spread = float(spread) if kind == "category" else 0.0

    @property
    def components(self) -> int:
        """Dimensions of the projection."""
        return int(self.projection.shape[1])

    @property
    def learned_dim(self) -> int:
        """Dimensions of the learned part of an encoded vector: the projection, or one per category."""
        return len(self.means) if self.kind == "category" else self.components

    def __repr__(self) -> str:
        classes = f", categories={len(self.means)}" if self.kind == "category" else ""
        return (f"ReportModel(kind={self.kind!r}, components={self.components}{classes}, weight={self.weight}, "
                f"docs={self.docs})")

    # -- fitting --

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str] | None = None, *, kind: str | None = None,
            components: int | None = None, weight: float | None = None, ridge: float = 0.3, min_per_label: int = 2,
            stem_prefix: int = 4, latin_prefix: int = 0) -> ReportModel:
        """Fit on past report texts: LDA when `labels` (one per text) are given, else LSA; or `kind` "category".

        `ridge` is added to the within-category scatter in units of its mean eigenvalue: it keeps
        the whitening from inflating directions the history barely covers. Labels seen on fewer
        than `min_per_label` texts are treated as unlabelled.
        """
        texts = list(texts)
        if labels is not None and len(labels) != len(texts):
            raise ReportModelError(f"report model: {len(labels)} labels for {len(texts)} texts")
        kind = kind or ("lsa" if labels is None else "lda")
        if kind not in KINDS:
            raise ReportModelError(f"report model: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind in SUPERVISED and labels is None:
            raise ReportModelError(f"report model: a {kind} model is fitted on labelled history (a category per "
                                   f"text); fit lsa without labels")
        if kind == "lsa":
            labels = None
        default_r, default_w = DEFAULTS[kind]
        means, spread = None, 0.0  # a category model's alone
        weight = default_w if weight is None else weight
        ngram = NgramEncoder(stem_prefix=stem_prefix, latin_prefix=latin_prefix).fit(texts)
        if labels is None:
            rows = [i for i, t in enumerate(texts) if ngram.encode(t).any()]
            if len(rows) < 2:
                raise ReportModelError("report model: need at least 2 texts with letters in them to fit")
            second, _, _ = _moments(ngram, texts, rows, np.zeros(len(rows), dtype=np.int64), 1)
            projection = _lsa(second, components or default_r)
        else:
            usable = [i for i, v in enumerate(labels) if v and ngram.encode(texts[i]).any()]  # text with letters
            counted = Counter(str(labels[i]) for i in usable)
            names = sorted(k for k, n in counted.items() if n >= min_per_label)
            if len(names) < 2:
                raise ReportModelError(f"report model: need at least 2 labels with {min_per_label}+ texts each "
                                       f"to fit a supervised model, got {len(names)} (fit without labels for LSA)")
            index = {name: i for i, name in enumerate(names)}
            rows = [i for i in usable if str(labels[i]) in index]
            groups = np.array([index[str(labels[i])] for i in rows], dtype=np.int64)
            second, sums, counts = _moments(ngram, texts, rows, groups, len(names))
            projection, within = _lda(second, sums, counts, components or default_r, ridge)
            if kind == "category":
                # The category means in the LDA space, and the within-category variance per direction there,
                # of the regularised covariance the LDA whitened (1 by construction). The unregularised one
                # is measured on the very texts the directions were chosen to keep tight: on a small
                # history it is near 0 and would make every posterior one-hot.
                means = (sums / counts[:, None]) @ projection
                spread = float(np.trace(projection.T @ within @ projection)) / projection.shape[1]
        return cls(kind, ngram.df, ngram.docs, projection, weight=weight, ngrams=ngram.ngrams,
                   stem_prefix=stem_prefix, latin_prefix=latin_prefix, dim=ngram.dim, means=means, spread=spread)

    @classmethod
    def fit_file(cls, path: str | Path, *, labels: bool | None = None, label_field: str = "label",
                 kind: str | None = None, **options: float) -> ReportModel:
        """Fit on a CSV/JSONL history with a `text` field and optionally a label field.

        `labels` None fits LDA when the file has labels and LSA otherwise; False ignores them;
        True (or a supervised `kind`) requires them. Unreadable input raises
        statusd.reports.history.ReplayInputError (names line and field), too little of it ReportModelError.
        """
        texts, found = read_history(path, label_field=label_field)
        if (labels or kind in SUPERVISED) and found is None:
            raise ReportModelError(f"report model: {path} has no `{label_field}` values to fit a supervised "
                                   f"model on (fit without labels for LSA, or name the column)")
        return cls.fit(texts, found if labels is not False else None, kind=kind, **options)  # type: ignore[arg-type]

    # -- use --

    def ngram_encoder(self) -> NgramEncoder:
        """A fresh n-gram TF-IDF encoder with the history's document frequencies."""
        enc = NgramEncoder(self.dim, self.ngrams, stem_prefix=self.stem_prefix, latin_prefix=self.latin_prefix,
                           df_buckets=len(self.df))
        enc.docs, enc.df = self.docs, self.df.copy()
        return enc

    def encoder(self) -> ModelEncoder:
        """A fresh encoder (its own document frequencies keep learning from the stream)."""
        return ModelEncoder(self, self.ngram_encoder())

    # -- storage --

    def save(self, path: str | Path) -> None:
        """Write the model as a compressed .npz of plain arrays."""
        try:
            with open(path, "wb") as f:
                np.savez_compressed(
                    f, format=np.int64(FORMAT), kind=np.str_(self.kind), df=self.df.astype(np.float32),
                    docs=np.int64(self.docs), projection=self.projection, weight=np.float64(self.weight),
                    ngrams=np.array(self.ngrams, dtype=np.int64), stem_prefix=np.int64(self.stem_prefix),
                    latin_prefix=np.int64(self.latin_prefix), dim=np.int64(self.dim), means=self.means,
                    spread=np.float64(self.spread))
        except OSError as exc:
            raise ReportModelError(f"report model: cannot write {path}: {exc.strerror}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ReportModel:
        """Read a model written by `save`; a missing, foreign or damaged file raises ReportModelError."""
        hint = "fit a new one from your report history"
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array, whatever its name
                raise ValueError("not an archive")
            with loaded as npz:
                data = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise ReportModelError(f"report model {path}: no such file ({hint})") from None
        except OSError as exc:
            raise ReportModelError(f"report model {path}: cannot read: {exc.strerror or exc}") from None
        except (ValueError, zipfile.BadZipFile, EOFError):
            raise ReportModelError(f"report model {path}: not a report model file (not a NumPy .npz archive); "
                                   f"{hint}") from None
        missing = [k for k in ("format", "kind", "df", "docs", "projection", "weight", "ngrams", "stem_prefix",
                               "latin_prefix", "dim") if k not in data]
        if missing:
            raise ReportModelError(f"report model {path}: not a report model file (missing {', '.join(missing)}); "
                                   f"{hint}")
        try:
            fmt = int(data["format"])
        except (TypeError, ValueError):
            raise ReportModelError(f"report model {path}: damaged (format is not a number); {hint}") from None
        if fmt not in (1, FORMAT):
            raise ReportModelError(f"report model {path}: format {fmt}, this statusd reads formats 1 to {FORMAT}; "
                                   f"{hint}")
        try:
            return cls(str(data["kind"]), data["df"], int(data["docs"]), data["projection"],
                       weight=float(data["weight"]), ngrams=tuple(int(n) for n in data["ngrams"]),
                       stem_prefix=int(data["stem_prefix"]), latin_prefix=int(data["latin_prefix"]),
                       dim=int(data["dim"]), means=data.get("means"), spread=float(data.get("spread", 0.0)))
        except ReportModelError as exc:
            raise ReportModelError(f"report model {path}: damaged ({exc}); {hint}") from None
        except (TypeError, ValueError) as exc:
            raise ReportModelError(f"report model {path}: damaged ({exc}); {hint}") from None


def _moments(ngram: NgramEncoder, texts: Sequence[str], rows: Sequence[int], groups: np.ndarray,
             n_groups: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σ x xᵀ over the rows' TF-IDF vectors, and their sums and counts per group: memory O(d² + chunk·d)."""
    d = ngram.dim
    second = np.zeros((d, d))
    sums = np.zeros((n_groups, d))
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        x = np.stack([ngram.encode(texts[i]) for i in part]).astype(np.float64)
        second += x.T @ x
        np.add.at(sums, groups[start:start + len(part)], x)
    return second, sums, np.bincount(groups, minlength=n_groups).astype(np.float64)


def _lsa(second: np.ndarray, components: int) -> np.ndarray:
    """The top right singular vectors of the TF-IDF matrix: eigenvectors of its d × d Gram matrix (d ≪ n)."""
    values, vectors = np.linalg.eigh(second)
    r = max(1, min(components, int(np.sum(values > values.max() * 1e-9))))
    return vectors[:, ::-1][:, :r]


def _lda(second: np.ndarray, sums: np.ndarray, counts: np.ndarray, components: int,
         ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Regularised LDA: whiten the within-label scatter (plus ridge), keep the top between-label directions.

    Returns the projection and the regularised within-label covariance it whitens (the identity
    in the projected space).
    """
    d, n = second.shape[0], counts.sum()
    means = sums / counts[:, None]
    within = (second - (means.T * counts) @ means) / n
    overall = sums.sum(axis=0) / n
    spread = (means - overall) * np.sqrt(counts / n)[:, None]
    between = spread.T @ spread
    values, vectors = np.linalg.eigh(within)
    floor = ridge * max(float(np.trace(within)) / d, 1e-12)
    whiten = (vectors / np.sqrt(np.maximum(values, 0) + floor)) @ vectors.T
    _, b_vectors = np.linalg.eigh(whiten @ between @ whiten)
    r = max(1, min(components, len(counts) - 1))
    return whiten @ b_vectors[:, ::-1][:, :r], within + floor * np.eye(d)

