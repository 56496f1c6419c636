"""Customer reports: the model the intake stores and the detector reads, and text normalisation (ru/en).

`normalize` keeps only what says what is broken: letters, casefolded, with URLs, e-mail
addresses, ticket/order numbers and digits removed, so two customers describing the same
outage in their own words (and with their own order numbers) look alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from statusd.core.errors import ValidationError

#: The tag keys that name what a report is about; the detector groups by these when present.
TAG_KEYS = ("component", "region", "category")

_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Ticket, order and incident references: "#12345", "INC-1234", "№ 55", "ORD12345X", "a1b2c3".
# Digit runs go anyway below; these patterns also take the letters glued to them, which would
# otherwise survive as noise tokens ("inc", "ord") shared by unrelated reports.
_TICKET = re.compile(r"#\s*\w+|№\s*\w+|\b[^\W\d_]{1,10}-\d[\w-]*|\b\w*\d\w*\b")
_NON_LETTERS = re.compile(r"[\W\d_]+")
_MAYBE_REFERENCE = re.compile(r"[\d#№]")  # no match: _TICKET cannot match either, skip it
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")

# Short function words of both languages; they carry no topic and make unrelated texts look alike.
STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have he her his how i if in into is it
its me my no not of on or our she so than that the their them then there these they this to too us was we were
what when where which who why will with would you your am im ive dont cant
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам
ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего
раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем
чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через
эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя
такой им более всегда конечно всю между это мои мой моё моя
""".split())


@dataclass(frozen=True, slots=True)
class Report:
    """One customer report as the intake received it; `received_at` is UTC-aware."""

    id: str
    client_id: str
    text: str
    received_at: datetime
    channel: str = "api"
    tags: Mapping[str, str] = field(default_factory=dict)
    contact: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValidationError("id", "required")
        if not self.client_id:
            raise ValidationError("client_id", "required")
        if self.received_at.tzinfo is None or self.received_at.utcoffset() is None:
            raise ValidationError("received_at", "must carry a time zone (e.g. 2026-01-05T09:00:00Z)")
        # Frozen means frozen: a caller mutating its dict afterwards must not move a report between groups.
        object.__setattr__(self, "tags", MappingProxyType({str(k): str(v) for k, v in self.tags.items() if v}))

    def tag(self, key: str) -> str | None:
        """The value of one tag, or None when absent or empty."""
        return self.tags.get(key) or None


def normalize(text: str) -> str:
    """Casefolded letters-only text (ё→е) without URLs, e-mails, ticket ids and digits; words separated by one space."""
    text = text.casefold().replace("ё", "е")
    # Most reports have no link, address or number; the cheap checks skip the costlier patterns.
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _EMAIL.sub(" ", text)
    if _MAYBE_REFERENCE.search(text):
        text = _TICKET.sub(" ", text)
    return " ".join(w for w in _NON_LETTERS.split(text) if len(w) > 1)


def stem(word: str, prefix: int = 4, latin_prefix: int = 0) -> str:
    """A light stem: a Cyrillic word cut to `prefix` letters, any other to `latin_prefix` (0 keeps it whole).

    Russian inflects heavily (оплата/оплатить/оплате, карта/картой/карту) and a prefix joins
    the forms; English barely inflects and measured no better cut (bench/README.md).
    """
    cut = prefix if _CYRILLIC.match(word) else latin_prefix
    return word[:cut] if cut > 0 else word


def words(text: str, *, stem_prefix: int = 0, latin_prefix: int = 0, drop_stopwords: bool = False) -> list[str]:
    """The normalised words of a text, optionally without stopwords and stemmed (see `stem`)."""
    out = normalize(text).split()
    if drop_stopwords:
        out = [w for w in out if w not in STOPWORDS]
    if stem_prefix > 0 or latin_prefix > 0:
        out = [stem(w, stem_prefix, latin_prefix) for w in out]
    return out
