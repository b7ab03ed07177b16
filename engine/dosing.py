"""Doses a pharmacy can dispense: a daily limit (mg/kg real body weight, or the
catalogue's maximum) turned into a real regimen of whole tablets.

A limit is never rounded up past itself: the regimen chosen is the one with the highest
mean daily dose that stays within the limit, preferring one dose every day over
alternating days when both reach the same mean. Tablets are never split (the
hydroxychloroquine label says not to divide them).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

MAX_TABLETS_PER_DOSE = 2


@dataclass(frozen=True)
class Regimen:
    """A dispensable regimen: one daily amount, or two amounts on alternate days."""

    amounts: tuple[float, ...]  # one amount (every day) or two (alternate days)
    mean: float                 # mean mg per day

    def text(self, unit: str = "mg", salt: str | None = None,
             base_of: dict[float, float] | None = None) -> str:
        def amount(mg: float) -> str:
            words = f"{mg:g} {unit}"
            if salt:
                words += f" {salt}"
                base = _base(mg, base_of or {})
                if base is not None:
                    words += f" (= {base:g} {unit} base)"
            return words
        if len(self.amounts) == 1:
            return f"{amount(self.amounts[0])} once daily"
        high, low = self.amounts
        if low == 0:
            return f"{amount(high)} every other day (mean {self.mean:g} {unit}/day)"
        return (f"{amount(high)} and {amount(low)} on alternate days "
                f"(mean {self.mean:g} {unit}/day)")


def _base(mg: float, base_of: dict[float, float]) -> float | None:
    """The base in a salt amount made of the catalogue's tablets (None if unknown)."""
    for combo in _combinations(tuple(base_of)):
        if abs(sum(combo) - mg) < 1e-9:
            return round(sum(base_of[t] for t in combo), 1)
    return None


def _combinations(tablets: tuple[float, ...]) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = []
    for n in range(1, MAX_TABLETS_PER_DOSE + 1):
        out += list(itertools.combinations_with_replacement(sorted(tablets), n))
    return out


@lru_cache(maxsize=64)
def _daily_amounts(tablets: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted({round(sum(c), 3) for c in _combinations(tablets)}))


def daily_amounts(tablets: tuple[float, ...]) -> list[float]:
    """Every amount one dose of whole tablets can make (at most two tablets)."""
    return list(_daily_amounts(tablets))


@lru_cache(maxsize=4096)  # pure (a frozen Regimen); asked for each candidate of a patient
def best_regimen(limit_mg_per_day: float, tablets: tuple[float, ...]) -> Regimen | None:
    """The dispensable regimen with the highest mean daily dose within the limit, or
    None when even the smallest tablet every other day is above it."""
    if not tablets or limit_mg_per_day <= 0:
        return None
    amounts = daily_amounts(tablets)
    options: list[tuple[float, int, Regimen]] = []
    for a in amounts:
        if a <= limit_mg_per_day + 1e-9:
            options.append((a, 0, Regimen((a,), a)))
    for high, low in itertools.combinations(sorted(amounts + [0.0], reverse=True), 2):
        mean = (high + low) / 2
        if mean <= limit_mg_per_day + 1e-9 and high > 0:
            options.append((mean, 1, Regimen((high, low), mean)))
    if not options:
        return None
    # Highest mean; one amount every day before alternating days at the same mean.
    return max(options, key=lambda o: (round(o[0], 6), -o[1]))[2]
