"""The in-process search index over the catalog's names: the same answers whichever
database stores the catalog.

A series is found when every word of the query matches one of its words (title, alt
titles, authors, genre names), exactly, as a prefix, with one or two typos
(optimal string alignment distance: a swap of two letters is one typo), or inside a
Japanese/Chinese word; or when the whole query, spaces and punctuation ignored,
equals one of its titles or author names or is a typo or two away from one.

Ranking blends how well the text matches with popularity:
- the query equal to a title or alt title (1.3; 1.25 with romaji long vowels
  shortened) or an author name in either order (0.85; 1.05 for a full name),
  spelling folded (see :mod:`.fold`);
- the query a typo or two from a title, alt title or author name, or the start of
  one ("spyxfam");
- otherwise the mean over the query words of field weight x match weight, so a
  word of the title (1.0) beats one of an alt title or author (0.8) or a genre
  (0.5), and an exact word beats a prefix (0.9) or a typo (0.8, 0.75); plus up to
  0.05 for how much of the title the query covers (ONE PIECE before One Piece Party);
- plus up to 0.04 for popularity (log scale): it orders equally good matches and
  never lifts a worse kind of match over a better one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from mangahub.services.catalog.fold import compact, is_cjk, shorten, words

# More query words than this only slow the search down without narrowing it.
MAX_QUERY_WORDS = 16
MAX_WORD_LENGTH = 64
# Words a short prefix may expand to; more would rank nothing better.
MAX_PREFIX_EXPANSION = 500
POPULARITY_WEIGHT = 0.04
COVERAGE_WEIGHT = 0.05


class Field(IntEnum):
    TITLE = 0
    ALT = 1
    AUTHOR = 2
    GENRE = 3


_WORD_WEIGHT = {Field.TITLE: 1.0, Field.ALT: 0.8, Field.AUTHOR: 0.8, Field.GENRE: 0.5}
# A title in another language or script is as much the series' name as its main
# title: popularity decides between them ("Haikyuu!!" finds Haikyu!! before a
# one-shot titled "Haikyuu!!").
_NAME_EXACT = {Field.TITLE: 1.3, Field.ALT: 1.3, Field.AUTHOR: 0.85}
# An author's full name (two words or more) says more than one word of a title
# ("Eiichiro Oda" finds ONE PIECE before "Wanted! Eiichiro Oda Before One Piece").
_FULL_NAME = 1.05
_LOOSER = 0.05  # how much less a loose match of a whole name counts
# Equal once romaji long vowels are shortened ("haikyuu" = "Haikyu!!").
_NAME_LOOSE = {field: weight - _LOOSER for field, weight in _NAME_EXACT.items()}
_NAME_TYPO = {Field.TITLE: 1.0, Field.ALT: 1.0, Field.AUTHOR: 0.75}
_NAME_START = {Field.TITLE: 0.9, Field.ALT: 0.9, Field.AUTHOR: 0.75}
# Shorter whole queries are not looked for as the start of a name.
MIN_NAME_START = 4
_EXACT, _PREFIX, _LOOSE, _INSIDE = 1.0, 0.9, 0.9, 0.85


@dataclass(frozen=True, slots=True)
class Entry:
    """What the index knows of one series."""

    id: int
    title: str
    alt_titles: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    popularity: int = 0
    # What search filters look at besides the text (see queries.Filters.accepts).
    status: str = ""
    format: str = ""
    year: int | None = None


def word_typos(length: int) -> int:
    """Typos allowed in one query word of this length."""
    return 0 if length <= 3 else 1 if length <= 6 else 2


def name_typos(length: int) -> int:
    """Typos allowed in a whole query (spaces removed) of this length."""
    return 0 if length <= 3 else 1 if length <= 6 else 2 if length <= 12 else 3


class _Postings:
    """key → {series id: best field}, with the lookups the search needs: by prefix,
    within a few typos, and, for Japanese/Chinese keys, by substring.

    The typo lookup compares the query with every key of a near length, so keys are
    first screened in bulk by their *letter sets* (a 64-bit mask each): one typo
    changes a key's letter set by at most two letters, so a key whose set differs
    from the query's by more than 2 x typos letters cannot be that close. Only the
    few keys that pass get an edit-distance check.
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[int, Field]] = {}
        self._sorted: list[str] | None = None
        self._by_length: list[str] = []  # keys ordered by length
        self._masks: np.ndarray[Any, np.dtype[np.uint64]] = np.zeros(0, dtype=np.uint64)
        self._length_start: list[int] = [0]  # first position of each length
        self._cjk: list[str] = []

    def add(self, key: str, series: int, field: Field) -> None:
        owners = self.items.get(key)
        if owners is None:
            self.items[key] = {series: field}
            self._sorted = None
        elif owners.get(series, Field.GENRE + 1) > field:
            owners[series] = field

    def remove(self, key: str, series: int) -> None:
        owners = self.items.get(key)
        if owners is not None:
            owners.pop(series, None)
            if not owners:
                del self.items[key]
                self._sorted = None

    def prepare(self) -> None:
        self._derive()

    def _derive(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.items)
            self._by_length = sorted(self._sorted, key=len)
            self._masks = np.array([_letters(key) for key in self._by_length], dtype=np.uint64)
            longest = len(self._by_length[-1]) if self._by_length else 0
            lengths = [len(key) for key in self._by_length]
            self._length_start = [bisect.bisect_left(lengths, n) for n in range(longest + 2)]
            self._cjk = [key for key in self._sorted if is_cjk(key)]
        return self._sorted

    def with_prefix(self, prefix: str) -> Iterator[str]:
        keys = self._derive()
        start = bisect.bisect_right(keys, prefix)
        for key in keys[start : start + MAX_PREFIX_EXPANSION]:
            if not key.startswith(prefix):
                return
            yield key

    def near(self, key: str, typos: int) -> Iterator[tuple[str, int]]:
        """Keys 1..``typos`` edits from ``key``, with their distance."""
        if typos <= 0:
            return
        self._derive()
        last = len(self._length_start) - 1
        start = self._length_start[min(max(len(key) - typos, 0), last)]
        end = self._length_start[min(len(key) + typos + 1, last)]
        if start >= end:
            return
        differing = np.bitwise_count(self._masks[start:end] ^ np.uint64(_letters(key)))
        choices = [self._by_length[start + i] for i in np.flatnonzero(differing <= 2 * typos)]
        found = process.extract(key, choices, scorer=OSA.distance, score_cutoff=typos, limit=None)
        for choice, distance, _ in found:
            if distance:
                yield choice, int(distance)

    def containing(self, key: str) -> Iterator[str]:
        self._derive()
        return (other for other in self._cjk if key in other and other != key)


def _letters(key: str) -> int:
    """The set of ``key``'s characters as a 64-bit mask (characters hashed to bits)."""
    mask = 0
    for char in key:
        mask |= 1 << (ord(char) % 64)
    return mask


class SearchIndex:
    """Series names folded into word and whole-name postings; see the module doc."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self._words = _Postings()
        self._names = _Postings()
        # The same keys with romaji long vowels shortened (see fold.loose).
        self._loose_words = _Postings()
        self._loose_names = _Postings()
        self._title_length: dict[int, int] = {}
        self._max_popularity: int | None = 0

    def prepare(self) -> None:
        """Build the lookup structures now rather than in the next search."""
        for postings in (self._words, self._names, self._loose_words, self._loose_names):
            postings.prepare()
        self._popularity_share(0)

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> set[int]:
        return set(self._entries)

    def entry(self, series: int) -> Entry | None:
        return self._entries.get(series)

    def put(self, entries: Iterable[Entry]) -> None:
        """Add series, or replace the ones already indexed under the same id."""
        for entry in entries:
            self.remove(entry.id)
            self._entries[entry.id] = entry
            for key, field in _word_keys(entry):
                self._words.add(key, entry.id, field)
                self._loose_words.add(shorten(key), entry.id, field)
            for key, loose_key, field in _name_keys(entry):
                self._names.add(key, entry.id, field)
                self._loose_names.add(loose_key, entry.id, field)
            self._title_length[entry.id] = max(len(compact(entry.title)), 1)
            if self._max_popularity is not None:
                self._max_popularity = max(self._max_popularity, entry.popularity)

    def remove(self, series: int) -> None:
        entry = self._entries.pop(series, None)
        if entry is None:
            return
        for key, _ in _word_keys(entry):
            self._words.remove(key, series)
            self._loose_words.remove(shorten(key), series)
        for key, loose_key, _ in _name_keys(entry):
            self._names.remove(key, series)
            self._loose_names.remove(loose_key, series)
        self._title_length.pop(series, None)
        self._max_popularity = None  # recomputed when next needed

    def search(self, query: str, limit: int) -> list[int]:
        """Ids of the series matching ``query``, best first, at most ``limit``."""
        return self.best(self.scores(query), limit)

    def matching(self, query: str, limit: int) -> list[int]:
        """The ids :meth:`search` returns, in no particular order (cheaper: ranking
        is needed only when more than ``limit`` match)."""
        scores = self.scores(query)
        return list(scores) if len(scores) <= limit else self.best(scores, limit)

    def scores(self, query: str) -> dict[int, float]:
        """Every series matching ``query`` → its match score."""
        terms = list(dict.fromkeys(w[:MAX_WORD_LENGTH] for w in words(query)))
        terms = terms[:MAX_QUERY_WORDS]
        if not terms:
            return {}
        whole = "".join(terms)
        scores = self._by_words(terms, len(whole))
        loose = "".join(shorten(term) for term in terms)
        for series, score in self._by_name(whole, loose, len(terms) > 1).items():
            if score > scores.get(series, 0.0):
                scores[series] = score
        return scores

    def best(self, scores: dict[int, float], limit: int) -> list[int]:
        """The ``limit`` best of ``scores``, best first (popularity counts a little)."""
        ranked = sorted(scores.items(), key=self._rank_key)
        return [series for series, _ in ranked[:limit]]

    def _rank_key(self, item: tuple[int, float]) -> tuple[float, int, int]:
        series, score = item
        popularity = self._entries[series].popularity
        blended = score + POPULARITY_WEIGHT * self._popularity_share(popularity)
        return (-round(blended, 9), -popularity, series)

    def _popularity_share(self, popularity: int) -> float:
        if self._max_popularity is None:
            self._max_popularity = max((e.popularity for e in self._entries.values()), default=0)
        if popularity <= 0 or self._max_popularity <= 0:
            return 0.0
        return math.log1p(popularity) / math.log1p(self._max_popularity)

    def _by_words(self, terms: list[str], query_length: int) -> dict[int, float]:
        """Series matching every term, scored. The rarest term is looked up first;
        a common one ("no", "the") is then only checked against the series still in
        the running, not scanned in full."""
        plans = [self._term_keys(term, prefix=i == len(terms) - 1) for i, term in enumerate(terms)]
        plans.sort(key=_plan_size)
        sums: dict[int, float] | None = None
        for plan in plans:
            if sums is None:
                sums = _scan(plan)
            elif _plan_size(plan) <= len(sums) * max(len(plan), 1):
                found = _scan(plan)
                sums = {sid: total + found[sid] for sid, total in sums.items() if sid in found}
            else:
                sums = _probe(plan, sums)
            if not sums:
                return {}
        scores: dict[int, float] = {}
        for series, total in (sums or {}).items():
            cover = min(1.0, query_length / self._title_length[series])
            scores[series] = total / len(terms) + COVERAGE_WEIGHT * cover
        return scores

    def _term_keys(self, term: str, *, prefix: bool) -> Plan:
        """The postings of every word matching ``term``, each with its match weight:
        exact, loosely equal, a prefix (for the query's last word, which a reader may
        not have finished), a typo or two away, or holding it (Japanese/Chinese)."""
        plan: Plan = []
        if term in self._words.items:
            plan.append((self._words.items[term], _EXACT))
        loose = shorten(term)
        if loose in self._loose_words.items:
            plan.append((self._loose_words.items[loose], _LOOSE))
        if prefix and len(term) >= 2:
            plan += [(self._words.items[key], _PREFIX) for key in self._words.with_prefix(term)]
        for key, distance in self._words.near(term, word_typos(len(term))):
            plan.append((self._words.items[key], 0.85 - 0.05 * distance))
        if is_cjk(term):
            plan += [(self._words.items[key], _INSIDE) for key in self._words.containing(term)]
        return plan

    def _by_name(self, whole: str, loose: str, full_name: bool) -> dict[int, float]:
        """Series one of whose names, spaces and punctuation ignored, is ``whole``
        or starts with it, or is a typo or two away from it."""
        hits: dict[int, float] = {}
        for series, field in self._loose_names.items.get(loose, {}).items():
            full = field is Field.AUTHOR and full_name
            hits[series] = _FULL_NAME - _LOOSER if full else _NAME_LOOSE[field]
        for series, field in self._names.items.get(whole, {}).items():
            exact = _FULL_NAME if field is Field.AUTHOR and full_name else _NAME_EXACT[field]
            hits[series] = max(hits.get(series, 0.0), exact)
        if len(whole) >= MIN_NAME_START:
            for key in self._names.with_prefix(whole):
                for series, field in self._names.items[key].items():
                    hits[series] = max(hits.get(series, 0.0), _NAME_START[field])
        for key, distance in self._names.near(whole, name_typos(len(whole))):
            for series, field in self._names.items[key].items():
                score = _NAME_TYPO[field] - 0.1 * (distance - 1)
                hits[series] = max(hits.get(series, 0.0), score)
        return hits


Plan = list[tuple[dict[int, Field], float]]


def _plan_size(plan: Plan) -> int:
    return sum(len(owners) for owners, _ in plan)


def _scan(plan: Plan) -> dict[int, float]:
    """Every series in ``plan``'s postings → its best field x match weight."""
    hits: dict[int, float] = {}
    for owners, weight in plan:
        for series, field in owners.items():
            score = _WORD_WEIGHT[field] * weight
            if score > hits.get(series, 0.0):
                hits[series] = score
    return hits


def _probe(plan: Plan, sums: dict[int, float]) -> dict[int, float]:
    """``sums`` kept for the series ``plan`` matches, its best score added."""
    kept: dict[int, float] = {}
    for series, total in sums.items():
        best = 0.0
        for owners, weight in plan:
            field = owners.get(series)
            if field is not None:
                best = max(best, _WORD_WEIGHT[field] * weight)
        if best:
            kept[series] = total + best
    return kept


def _word_keys(entry: Entry) -> Iterator[tuple[str, Field]]:
    for field, names in _fields(entry):
        for name in names:
            for word in words(name):
                yield word[:MAX_WORD_LENGTH], field


def _name_keys(entry: Entry) -> Iterator[tuple[str, str, Field]]:
    """(compact name, the same loose, field) of each title and author name."""
    for field, names in _fields(entry):
        if field is Field.GENRE:
            continue
        for name in names:
            parts = words(name)
            if not parts:
                continue
            orders = [parts]
            if field is Field.AUTHOR and len(parts) > 1:
                orders.append(parts[::-1])  # "Eiichiro Oda" = "Oda Eiichiro"
            for order in orders:
                yield "".join(order), "".join(shorten(p) for p in order), field


def _fields(entry: Entry) -> Iterator[tuple[Field, Iterable[str]]]:
    yield Field.TITLE, (entry.title,)
    yield Field.ALT, entry.alt_titles
    yield Field.AUTHOR, entry.authors
    yield Field.GENRE, entry.genres
