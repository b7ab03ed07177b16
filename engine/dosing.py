"""Doses a pharmacy can dispense: a daily limit (mg/kg of the drug's dose basis -- real,
ideal or lean body weight -- or the catalogue's maximum) turned into a real regimen of
whole tablets; and the named formulas of those bases.

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


# ------------------------------------------------------------- the weight a dose is per
# A weight-based limit (drugs.yaml dose_limit) is per kg of one of these bases. Each is a
# named formula with its source beside it. A basis whose data are missing gives None:
# the step then asks for the data and names no dose (never a guess, never a bigger dose).

INCH_CM = 2.54


def ideal_body_weight_devine(height_cm: float, sex: str) -> float:
    """Ideal body weight (kg), Devine formula: 50 kg (men) or 45.5 kg (women) plus 2.3 kg
    per inch of height above 5 feet (60 inches). Source: Devine BJ. Gentamicin therapy.
    Drug Intell Clin Pharm 1974;8:650-5 (evidence key devine-1974). Below 5 feet the
    formula is applied as written (a lower weight; conservative) and never below 0."""
    base = 50.0 if sex == "male" else 45.5
    return max(0.0, base + 2.3 * (height_cm / INCH_CM - 60))


def lean_body_weight_janmahasatian(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body weight (kg), Janmahasatian formula: 9270 x weight / (6680 + 216 x BMI)
    for men, 9270 x weight / (8780 + 244 x BMI) for women, BMI in kg/m2. Source:
    Janmahasatian S, Duffull SB, Ash S, Ward LC, Byrne NM, Green B. Quantification of
    lean bodyweight. Clin Pharmacokinet 2005;44(10):1051-65 (evidence key
    janmahasatian-2005)."""
    bmi = weight_kg / (height_cm / 100) ** 2
    if sex == "male":
        return 9270 * weight_kg / (6680 + 216 * bmi)
    return 9270 * weight_kg / (8780 + 244 * bmi)


@dataclass(frozen=True)
class Basis:
    """One dose basis: its words in the advice, the record fields it needs (each asked
    for when missing) and why."""

    name: str
    words: str
    needs: tuple[str, ...]
    why: str


BASES = {
    "real_body_weight": Basis("real_body_weight", "real body weight",
                              ("demographics.weight_kg",),
                              "weight-based dose limit (real body weight)"),
    "ideal_body_weight": Basis("ideal_body_weight", "ideal body weight (Devine)",
                               ("demographics.weight_kg", "demographics.height_cm"),
                               "dose limit per kg of ideal body weight (Devine formula: "
                               "height and sex; real body weight caps it)"),
    "lean_body_weight": Basis("lean_body_weight", "lean body weight (Janmahasatian)",
                              ("demographics.weight_kg", "demographics.height_cm"),
                              "dose limit per kg of lean body weight (Janmahasatian formula: "
                              "weight, height and sex)"),
}


def basis_weight(basis: str, weight_kg: float | None, height_cm: float | None,
                 sex: str | None) -> float | None:
    """The weight (kg) a dose limit is per, or None when a datum it needs is missing.
    Never above the real body weight (conservative: an underweight patient's ideal
    weight would give a bigger dose than her own weight), so real weight is always
    needed."""
    if weight_kg is None:
        return None
    if basis == "real_body_weight":
        return weight_kg
    if height_cm is None or sex not in ("female", "male"):
        return None
    if basis == "ideal_body_weight":
        value = ideal_body_weight_devine(height_cm, sex)
    elif basis == "lean_body_weight":
        value = lean_body_weight_janmahasatian(weight_kg, height_cm, sex)
    else:
        raise ValueError(f"unknown dose basis '{basis}'")
    return min(value, weight_kg)
