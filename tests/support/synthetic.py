"""Synthetic identifiers and partner networks for tests, demos and benchmarks.

Nothing here is real data. BSNs are random 9-digit numbers that pass the
elfproef (so they look and validate like real ones; any coincidence with a
real number carries no information about a person). Addresses use postcode
ranges of real Dutch cities -- 's-Hertogenbosch 52xx, Amsterdam 10xx -- with
letters drawn from those PostNL uses, and invented house numbers.

Everything is deterministic by seed: the same call gives the same rows.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kruispunt.identifiers import FIELDS, IdentifierKind

#: Postcode digit ranges of a few municipalities (first and last 4-digit group).
CITY_POSTCODES: Mapping[str, tuple[int, int]] = {
    "'s-Hertogenbosch": (5211, 5237),
    "Amsterdam": (1011, 1109),
    "Rotterdam": (3011, 3089),
    "Utrecht": (3511, 3585),
    "Den Haag": (2491, 2597),
    "Eindhoven": (5611, 5658),
    "Groningen": (9711, 9747),
    "Tilburg": (5011, 5049),
    "Zwolle": (8011, 8048),
    "Nijmegen": (6511, 6546),
}
# PostNL leaves out F, I, O, Q, U and Y; SA, SD and SS are never issued.
_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
_LETTER_PAIRS = tuple(a + b for a in _LETTERS for b in _LETTERS if a + b not in {"SA", "SD", "SS"})
_POSTCODE_NUMBERS = tuple(n for lo, hi in CITY_POSTCODES.values() for n in range(lo, hi + 1))
# Toevoegingen that stay toevoegingen under the canonical rule (no lone letter, no "A3").
_TOEVOEGINGEN = ("1", "2", "3", "4", "BIS", "HS", "II", "III", "ZW", "1HG", "2HG", "01")

#: A household (or person) at several partners: key is a multiplicity or an exact partner tuple.
OverlapKey = int | tuple[str, ...]


# Weighted digit sums of 4-digit blocks for the elfproef: positions 1-4 (weights 9..6)
# and 5-8 (weights 5..2). Two lookups replace eight multiplications per BSN.
_HEAD_SUMS = tuple(
    9 * (n // 1000) + 8 * (n // 100 % 10) + 7 * (n // 10 % 10) + 6 * (n % 10) for n in range(10000)
)
_TAIL_SUMS = tuple(
    5 * (n // 1000) + 4 * (n // 100 % 10) + 3 * (n // 10 % 10) + 2 * (n % 10) for n in range(10000)
)


def random_bsn(rng: random.Random) -> str:
    """Return a random 9-digit string that passes the elfproef (sometimes with a leading 0)."""
    while True:
        head = int(rng.random() * 100_000_000)
        total = _HEAD_SUMS[head // 10000] + _TAIL_SUMS[head % 10000]
        check = total % 11
        # The ninth digit has weight -1: total - check must be a positive multiple of 11.
        if check < 10 and total - check > 0:
            return f"{head:08d}{check}"


def random_postcode(rng: random.Random) -> str:
    """Return a real-format postcode ("5211AB") in one of CITY_POSTCODES' ranges."""
    rnd = rng.random
    return (
        f"{_POSTCODE_NUMBERS[int(rnd() * len(_POSTCODE_NUMBERS))]}"
        f"{_LETTER_PAIRS[int(rnd() * len(_LETTER_PAIRS))]}"
    )


def random_address(
    rng: random.Random, postcodes: Sequence[str] | None = None
) -> tuple[str, str, str, str]:
    """Return (postcode, huisnummer, huisletter, toevoeging) already in canonical spelling.

    With ``postcodes``, the postcode is drawn from that pool (a region's streets).
    """
    rnd = rng.random
    r = rnd()
    # Mostly short streets; a few long ones.
    number = str(1 + int(rnd() * 150)) if r < 0.97 else str(151 + int(rnd() * 2350))
    letter = "ABCD"[int(rnd() * 4)] if rnd() < 0.1 else ""
    extra = _TOEVOEGINGEN[int(rnd() * len(_TOEVOEGINGEN))] if rnd() < 0.08 else ""
    pc = random_postcode(rng) if postcodes is None else postcodes[int(rnd() * len(postcodes))]
    return pc, number, letter, extra


def messy_bsn(bsn: str, rng: random.Random) -> str:
    """Spell a canonical 9-digit BSN the way exports do; it canonicalises back unchanged."""
    r = rng.random()
    if r < 0.6:
        return bsn
    if r < 0.75:
        return bsn[1:] if bsn[0] == "0" else f" {bsn} "
    if r < 0.9:
        return f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}"
    return f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}"


def messy_address(
    postcode: str, huisnummer: str, huisletter: str, toevoeging: str, rng: random.Random
) -> dict[str, str]:
    """Spell a canonical address the way exports do; it canonicalises back unchanged."""
    r = rng.random()
    if r < 0.5:
        pc = postcode
    elif r < 0.7:
        pc = f"{postcode[:4]} {postcode[4:]}"
    elif r < 0.85:
        pc = postcode.lower()
    else:
        pc = f" {postcode[:4]} {postcode[4:].lower()} "
    letter, extra = huisletter, toevoeging
    r = rng.random()
    if r < 0.5:
        # Separate columns; letters in any case, a lone letter sometimes in the wrong column.
        if letter and not extra and r < 0.1:
            return {
                "postcode": pc,
                "huisnummer": huisnummer,
                "huisletter": "",
                "toevoeging": letter.lower(),
            }
        return {
            "postcode": pc,
            "huisnummer": huisnummer,
            "huisletter": letter.lower() if r < 0.25 else letter,
            "toevoeging": extra,
        }
    # One "huisnummer" field holding everything.
    sep = rng.choice(("", "-", " ")) if letter else ""
    combined = huisnummer + sep + (letter.lower() if rng.random() < 0.5 else letter)
    if extra:
        combined += rng.choice(("-", " ", " - "))
        combined += extra.lower() if rng.random() < 0.3 else extra
    return {"postcode": pc, "huisnummer": combined, "huisletter": "", "toevoeging": ""}


@dataclass(frozen=True)
class SyntheticNetwork:
    """Per-partner rows and the ground truth of who holds which household."""

    kind: IdentifierKind
    partners: tuple[str, ...]
    #: partner -> rows, each a mapping of field ("bsn" or "postcode", ...) to spelling.
    rows: Mapping[str, list[dict[str, str]]]
    #: partner -> canonical identifier of each row, parallel to rows.
    ids: Mapping[str, list[bytes]]
    #: canonical identifier -> the partners that hold it (every household).
    truth: Mapping[bytes, frozenset[str]]

    def held_by_at_least(self, k: int) -> set[bytes]:
        """Return the households held by k or more partners."""
        return {cid for cid, holders in self.truth.items() if len(holders) >= k}

    def flagged_for(self, partner: str, threshold: int) -> set[int]:
        """Return the row indices of ``partner`` a round with ``threshold`` flags."""
        return {i for i, cid in enumerate(self.ids[partner]) if len(self.truth[cid]) >= threshold}

    def histogram(self) -> dict[int, int]:
        """Return {number of partners: number of households held by exactly that many}."""
        return dict(sorted(Counter(len(h) for h in self.truth.values()).items()))


def make_network(
    partners: Sequence[str],
    per_partner: int | Mapping[str, int],
    overlaps: Mapping[OverlapKey, int],
    seed: int,
    *,
    kind: IdentifierKind = "address",
    messy: bool = True,
) -> SyntheticNetwork:
    """Build a network of partner client lists with planted overlaps.

    ``overlaps`` plants households at several partners: ``{3: 50}`` puts 50
    households at exactly 3 partners each (chosen at random),
    ``{("gemeente", "corporatie"): 10}`` puts 10 at exactly those two. Every
    other row is a household only its partner holds. Each partner ends with
    exactly its ``per_partner`` rows, shuffled.
    """
    names = tuple(partners)
    if len(set(names)) != len(names) or not names:
        raise ValueError("partners must be a non-empty list of distinct names")
    sizes = dict.fromkeys(names, per_partner) if isinstance(per_partner, int) else dict(per_partner)
    if set(sizes) != set(names) or min(sizes.values()) < 0:
        raise ValueError("per_partner must give a size >= 0 for every partner")
    rng = random.Random(seed)
    room = dict(sizes)
    holders: list[tuple[str, ...]] = []
    for key, count in overlaps.items():
        for _ in range(count):
            if isinstance(key, int):
                if not 1 <= key <= len(names):
                    raise ValueError(f"multiplicity {key} does not fit {len(names)} partners")
                free = [p for p in names if room[p] > 0]
                if len(free) < key:
                    raise ValueError("planted overlaps exceed the partners' sizes")
                chosen = tuple(rng.sample(free, key))
            else:
                chosen = tuple(key)
                if not set(chosen) <= set(names) or len(set(chosen)) != len(chosen):
                    raise ValueError("an overlap names unknown or repeated partners")
                if any(room[p] <= 0 for p in chosen):
                    raise ValueError("planted overlaps exceed the partners' sizes")
            for p in chosen:
                room[p] -= 1
            holders.append(chosen)

    truth: dict[bytes, frozenset[str]] = {}
    rows: dict[str, list[dict[str, str]]] = {p: [] for p in names}
    ids: dict[str, list[bytes]] = {p: [] for p in names}
    alone = {p: frozenset((p,)) for p in names}
    # About a dozen households per postcode, as in the Netherlands (8M addresses, 460k
    # postcodes), so overlapping partners share streets as real ones do.
    total = len(holders) + sum(room.values())
    postcodes = sorted({random_postcode(rng) for _ in range(max(20, total // 12))})
    for chosen in holders:
        _add_household(kind, messy, rng, postcodes, frozenset(chosen), truth, rows, ids)
    for p in names:
        _add_singles(kind, messy, rng, postcodes, alone[p], room[p], truth, rows[p], ids[p])
    for p in names:
        order = list(range(len(rows[p])))
        rng.shuffle(order)
        rows[p] = [rows[p][i] for i in order]
        ids[p] = [ids[p][i] for i in order]
    return SyntheticNetwork(kind=kind, partners=names, rows=rows, ids=ids, truth=truth)


def _add_household(
    kind: IdentifierKind,
    messy: bool,
    rng: random.Random,
    postcodes: Sequence[str],
    holders: frozenset[str],
    truth: dict[bytes, frozenset[str]],
    rows: dict[str, list[dict[str, str]]],
    ids: dict[str, list[bytes]],
) -> None:
    """Draw one new household, record who holds it, and give each holder its spelling."""
    # The canonical form is built directly from the clean parts (the tests check that
    # it equals kruispunt.identifiers' result): this loop runs once per synthetic row.
    while True:
        if kind == "bsn":
            bsn = random_bsn(rng)
            cid = b"bsn:" + bsn.encode("ascii")
        else:
            addr = random_address(rng, postcodes)
            cid = "address:{}:{}:{}:{}".format(*addr).encode("ascii")
        if cid not in truth:
            break
    truth[cid] = holders
    for p in sorted(holders):
        if kind == "bsn":
            spelled = {"bsn": messy_bsn(bsn, rng) if messy else bsn}
        elif messy:
            spelled = messy_address(*addr, rng)
        else:
            spelled = dict(zip(FIELDS["address"], addr, strict=True))
        rows[p].append(spelled)
        ids[p].append(cid)


def _add_singles(
    kind: IdentifierKind,
    messy: bool,
    rng: random.Random,
    postcodes: Sequence[str],
    holder: frozenset[str],
    count: int,
    truth: dict[bytes, frozenset[str]],
    rows: list[dict[str, str]],
    ids: list[bytes],
) -> None:
    """Add ``count`` households held by one partner: _add_household's loop, unrolled for speed."""
    for _ in range(count):
        while True:
            if kind == "bsn":
                bsn = random_bsn(rng)
                cid = b"bsn:" + bsn.encode("ascii")
            else:
                addr = random_address(rng, postcodes)
                cid = "address:{}:{}:{}:{}".format(*addr).encode("ascii")
            if cid not in truth:
                break
        truth[cid] = holder
        if kind == "bsn":
            rows.append({"bsn": messy_bsn(bsn, rng) if messy else bsn})
        elif messy:
            rows.append(messy_address(*addr, rng))
        else:
            rows.append(dict(zip(FIELDS["address"], addr, strict=True)))
        ids.append(cid)


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, str]],
    kind: IdentifierKind,
    *,
    delimiter: str = ";",
    bom: bool = False,
    columns: Mapping[str, str] | None = None,
    objection_column: str | None = None,
    objected: Collection[int] = (),
) -> int:
    """Write rows as a partner export (header from ``columns``, field -> name); return rows.

    With ``objection_column``, rows whose index is in ``objected`` get "ja" there.
    """
    fields = FIELDS[kind]
    names = [(columns or {}).get(f, f) for f in fields]
    marked = set(objected)
    n = 0
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\r\n")
        w.writerow([*names, objection_column] if objection_column else names)
        for n, row in enumerate(rows, 1):
            values = [row.get(k, "") for k in fields]
            if objection_column:
                values.append("ja" if n - 1 in marked else "")
            w.writerow(values)
    return n
