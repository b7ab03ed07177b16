"""Rules generated from the drug catalogue (drugs.yaml), compiled like any other rule.

A reviewer states each drug's reproductive profile and dosing once, in drugs.yaml; this
module turns them into ordinary rules (exclusions, requests, warnings and stop steps)
that go through the same validation, durable_rules compilation, trace and "why not"
as hand-written ones. Changing acitretin's 3 years is one edit, and a drug added next
year is covered by the same requirements without a new rule file.

Rule ids start with `catalogue.`; their `because` names the drug's requirement and the
named threshold behind it, so the why-not reads "acitretin needs ... for 3 years".
"""
from __future__ import annotations

from typing import Any, Callable

CATALOGUE_FILE = "drugs.yaml"
SUFFICIENT = {"none": ["none", "one_method", "two_methods", "abstinence"],
              "one_method": ["one_method", "two_methods", "abstinence"],
              "two_methods": ["two_methods", "abstinence"]}
CONTRACEPTION_WORDS = {"one_method": "one reliable contraception method (two preferred)",
                       "two_methods": "two reliable contraception methods used together "
                                      "(or continuous abstinence)"}
# Derived once, so that the per-drug rules below test nothing on the patient fact
# (durable_rules fails when more than 64 rules match one fact at once).
MAY_CONCEIVE = "may_conceive"
SINCE_UNKNOWN = "contraception_since_unknown"
CONDOMS_UNKNOWN = "condom_use_unknown"
DERIVED_BASE = (MAY_CONCEIVE, SINCE_UNKNOWN, CONDOMS_UNKNOWN)


def test_fact(w: Any) -> str:
    """The derived fact 'the pre-start pregnancy tests of this kind are missing'."""
    parts = [str(w.tests_before_start), str(w.tests_apart_days_min or 0),
             str(w.tests_apart_days_max or 0), w.last_test_within or "any"]
    return "pregnancy_tests_missing_" + "_".join(parts)


def since_fact(threshold: str) -> str:
    """The derived fact 'contraception in place for less than <threshold>'."""
    return f"contraception_under_{threshold}"
PARTNER = {"any": ["partner_may_conceive", "partner_may_conceive is unknown"]}
WASHOUT_PLANNING_REQUEST_WEEKS = 52  # washouts this long need the patient's plans first


class Catalogue:
    """Names, durations and evidence for generated rules."""

    def __init__(self, drugs: dict[str, Any], thresholds: dict[str, Any],
                 days: Callable[[str], int | None]) -> None:
        self.drugs = drugs
        self.thresholds = thresholds
        self.days = days

    def label(self, drug: str) -> str:
        return self.drugs[drug].label

    def labels(self, drugs: list[str]) -> str:
        names = [self.label(d) for d in drugs]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def span(self, name: str) -> str:
        t = self.thresholds[name]
        unit = t.unit if t.value != 1 else t.unit.rstrip("s")
        return f"{t.value:g} {unit}"

    def weeks(self, name: str) -> float:
        # Rounded exactly as the facts are (facts._num: 3 decimals), so that a patient at
        # exactly the required number of days meets it (1 month = 30 days = 4.286 weeks,
        # not 4.29: an off-by-rounding found by the reproductive property's thorough run).
        return round((self.days(name) or 0) / 7, 3)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _rule(rid: str, title: str, priority: int, when: Any, then: dict[str, Any],
          because: str, evidence: list[str]) -> dict[str, Any]:
    return {"id": rid, "title": title, "stage": "general", "priority": priority,
            "when": when, "then": then, "because": because,
            "evidence": sorted(dict.fromkeys(evidence))}


def _woman_rules(cat: Catalogue) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    women = {d: e.reproductive.woman for d, e in cat.drugs.items() if e.reproductive}
    if not women:
        return out
    ev_all = [k for w in women.values() for k in w.evidence]
    out.append(_rule(
        "catalogue.may-conceive", "A woman who may be able to conceive", 50,
        {"any": ["childbearing_potential", "childbearing_potential is unknown"]},
        {"derive": MAY_CONCEIVE},
        "Pregnancy prevention applies unless childbearing potential is ruled out (fail safe).",
        ev_all))
    out.append(_rule(
        "catalogue.contraception-since.unknown", "Contraception start date not recorded", 50,
        {"all": [MAY_CONCEIVE, "contraception in [one_method, two_methods, abstinence]",
                 "contraception_weeks is unknown"]},
        {"derive": SINCE_UNKNOWN},
        "Contraception is recorded without the date it began.", ev_all))
    for name in sorted({w.before_start for w in women.values() if w.before_start}):
        out.append(_rule(
            f"catalogue.contraception-since.under.{name.replace('_', '-')}",
            f"Contraception in place for less than {cat.span(name)}", 50,
            {"all": [MAY_CONCEIVE, f"contraception_weeks < {cat.weeks(name):g}"]},
            {"derive": since_fact(name)},
            f"The current contraception began less than {cat.span(name)} ago ({name}).",
            ev_all))
    signatures = {test_fact(w): w for w in women.values() if w.tests_before_start}
    for fact, w in sorted(signatures.items()):
        within = cat.days(w.last_test_within) if w.last_test_within else None
        parts: list[Any] = ["days_since_negative_pregnancy_test is unknown"]
        if within is not None:
            parts.append(f"days_since_negative_pregnancy_test > {within}")
        if w.tests_before_start >= 2:
            parts.append("negative_pregnancy_test_gap_days is unknown")
            if w.tests_apart_days_min is not None:
                parts.append(f"negative_pregnancy_test_gap_days < {w.tests_apart_days_min}")
            if w.tests_apart_days_max is not None:
                parts.append(f"negative_pregnancy_test_gap_days > {w.tests_apart_days_max}")
        out.append(_rule(
            "catalogue.tests-missing." + fact.removeprefix("pregnancy_tests_missing_")
            .replace("_", "-"), "Pre-start pregnancy tests not (yet) done", 50,
            {"all": [MAY_CONCEIVE, {"any": parts}]}, {"derive": fact},
            f"The pregnancy tests before a start ({_ask(cat, w)}) are not on record.",
            w.evidence))

    contraindicated = [d for d, w in women.items() if w.pregnancy == "contraindicated"]
    if contraindicated:
        out.append(_rule(
            "catalogue.pregnancy.contraindicated", "No teratogen in pregnancy", 100,
            "pregnant", {"exclude": contraindicated},
            f"Pregnant: {cat.labels(contraindicated)} are contraindicated in pregnancy "
            "(drugs.yaml reproductive.woman.pregnancy).", ev_all))
        out.append(_rule(
            "catalogue.pregnancy.unknown", "Pregnancy status unknown before a teratogen", 100,
            "pregnant is unknown",
            {"exclude": contraindicated,
             "request": [{"field": "reproductive.pregnant", "ask": "pregnancy test",
                          "why": "Pregnancy test before any teratogenic drug (unknown "
                                 "status blocks it)."}]},
            f"Pregnancy status unknown: {cat.labels(contraindicated)} wait for a negative "
            "pregnancy test (fail safe).", ev_all))

    avoid = [d for d, w in women.items() if w.breastfeeding == "avoid"]
    if avoid:
        out.append(_rule(
            "catalogue.breastfeeding.avoid", "Not while breastfeeding", 100, "breastfeeding",
            {"exclude": avoid},
            f"Breastfeeding: {cat.labels(avoid)} are not used while breastfeeding "
            "(drugs.yaml reproductive.woman.breastfeeding).", ev_all))
        out.append(_rule(
            "catalogue.breastfeeding.unknown", "Breastfeeding status unknown", 100,
            # Not only when she may conceive: a woman sterilised after a birth may
            # breastfeed (found by the thorough 'unknown never riskier' property).
            "breastfeeding is unknown",
            {"exclude": avoid,
             "request": [{"field": "reproductive.breastfeeding",
                          "why": "Drugs not used while breastfeeding wait until it is known."}]},
            f"Breastfeeding status unknown: {cat.labels(avoid)} wait (fail safe).", ev_all))
        out.append(_rule(
            "catalogue.breastfeeding.stop", "Stop drugs not used while breastfeeding", 100,
            {"all": ["breastfeeding", {"any": [f"{d}_status == current" for d in avoid]}]},
            {"recommend": {"action": "stop", "among": avoid,
                           "summary": f"Stop {{current_among[{'+'.join(avoid)}]}}: the "
                                      "patient is breastfeeding (keep hydroxychloroquine)"}},
            f"{cat.labels(avoid)} are not used while breastfeeding; hydroxychloroquine and "
            "prednisolone are (drugs.yaml reproductive.woman.breastfeeding).",
            ev_all + ["bsr-2022"]))
        for d in avoid:
            w = women[d]
            out.append(_rule(
                f"catalogue.breastfeeding.stop.{d}", f"{cat.label(d)} while breastfeeding",
                10, {"all": ["breastfeeding", f"{d}_status == current"]},
                {"warn": {"severity": "critical",
                          "message": f"Breastfeeding while taking {cat.label(d)}, which is "
                                     "not used in breastfeeding: stop it, or stop "
                                     "breastfeeding if the drug must continue."}},
                f"{cat.label(d)} is not used while breastfeeding "
                "(drugs.yaml reproductive.woman.breastfeeding).", w.evidence))

    for level in ("two_methods", "one_method"):
        group = [d for d, w in women.items() if w.contraception == level]
        if not group:
            continue
        slug = level.replace("_", "-")
        ok = SUFFICIENT[level]
        short = [c for c in ("none", "one_method", "two_methods") if c not in ok]
        ev = [k for d in group for k in women[d].evidence]
        need = CONTRACEPTION_WORDS[level]
        out.append(_rule(
            f"catalogue.contraception.{slug}", f"Contraception for {cat.labels(group)}", 100,
            {"all": ["childbearing_potential", "not pregnant",
                     f"contraception in [{', '.join(short)}]"]},
            {"exclude": group},
            f"A woman of childbearing potential needs {need} for {cat.labels(group)} "
            "(drugs.yaml reproductive.woman.contraception).", ev))
        out.append(_rule(
            f"catalogue.contraception.{slug}.unknown", "Contraception unknown", 100,
            {"all": [MAY_CONCEIVE, "contraception is unknown"]},
            {"exclude": group,
             "request": [{"field": "reproductive.contraception",
                          "ask": "contraception counselling",
                          "why": f"Contraception counselling: {cat.labels(group)} need {need}."}]},
            f"Contraception unknown in a woman who may be able to conceive: "
            f"{cat.labels(group)} wait for contraception counselling (fail safe).", ev))
        out.append(_rule(
            f"catalogue.contraception.{slug}.childbearing-unknown",
            "Childbearing potential unknown", 100,
            {"all": ["childbearing_potential is unknown",
                     f"contraception not in [{', '.join(ok)}]"]},
            {"exclude": group,
             "request": [{"field": "reproductive.childbearing_potential",
                          "ask": "whether the patient can conceive",
                          "why": f"{cat.labels(group)} need pregnancy prevention if she can "
                                 "conceive."}]},
            f"Whether the patient can conceive is unknown and {need} are not documented: "
            f"{cat.labels(group)} wait (fail safe).", ev))
        for d in group:
            out.append(_rule(
                f"catalogue.contraception.current.{d}",
                f"Taking {cat.label(d)} without the contraception it needs", 100,
                {"all": ["childbearing_potential", f"contraception in [{', '.join(short)}]",
                         f"{d}_status == current"]},
                {"warn": {"severity": "critical",
                          "message": f"Taking {cat.label(d)} without {need}: pregnancy test "
                                     "and contraception counselling now."}},
                f"{cat.label(d)} needs {need} (drugs.yaml).", women[d].evidence))

    for d, w in women.items():
        label = cat.label(d)
        starting = f"{d}_start_considered"
        if w.before_start:
            wk = cat.weeks(w.before_start)
            out.append(_rule(
                f"catalogue.contraception-since.{d}.unknown",
                f"Contraception start date before {label}", 100,
                {"all": [MAY_CONCEIVE, starting, SINCE_UNKNOWN]},
                {"exclude": [d],
                 "request": [{"field": "reproductive.contraception_since",
                              "ask": "contraception start date",
                              "why": f"{label} starts only after contraception has been used "
                                     f"for {cat.span(w.before_start)}."}]},
                f"{label} needs contraception from {cat.span(w.before_start)} before the start "
                f"({w.before_start}); when it began is not recorded (fail safe).", w.evidence))
            out.append(_rule(
                f"catalogue.contraception-since.{d}",
                f"Contraception in place long enough before {label}", 100,
                {"all": [MAY_CONCEIVE, starting, since_fact(w.before_start)]},
                {"exclude": [d]},
                f"{label} needs contraception from {cat.span(w.before_start)} before the start "
                f"({w.before_start}); it has been in place for less: the start waits.",
                w.evidence))
        if w.tests_before_start:
            ask = _ask(cat, w)
            out.append(_rule(
                f"catalogue.pregnancy-tests.{d}", f"Pregnancy tests before {label}", 100,
                {"all": [MAY_CONCEIVE, starting, test_fact(w)]},
                {"exclude": [d],
                 "request": [{"field": "reproductive.negative_pregnancy_tests",
                              "ask": _short_ask(w), "why": f"Before {label}: {ask}."}]},
                f"{label} starts only after {ask} (drugs.yaml reproductive.woman).",
                w.evidence))
        if w.after_last_dose:
            wk = cat.weeks(w.after_last_dose)
            out.append(_rule(
                f"catalogue.washout.{d}", f"Pregnant within {label}'s window after the last dose",
                100, {"all": ["pregnant", f"{d}_status == stopped",
                              f"{d}_weeks_since_stop < {wk:g}"]},
                {"warn": {"severity": "critical",
                          "message": f"Pregnant within {cat.span(w.after_last_dose)} of the last "
                                     f"dose of {label} (stopped {{stop_date[{d}]}}; "
                                     f"contraception is needed for {cat.span(w.after_last_dose)} "
                                     "after it): refer now for teratology counselling."}},
                f"{label} needs contraception for {cat.span(w.after_last_dose)} after the last "
                f"dose ({w.after_last_dose}); a pregnancy inside that window is an exposure.",
                w.evidence))
        if w.stop_before_conception:
            wk = cat.weeks(w.stop_before_conception)
            out.append(_rule(
                f"catalogue.planning.stop.{d}", f"{label} before a planned pregnancy", 10,
                {"all": ["planning_pregnancy", f"{d}_status == current"]},
                {"warn": {"severity": "warning",
                          "message": f"Pregnancy planned: stop {label} at least "
                                     f"{cat.span(w.stop_before_conception)} before conception "
                                     f"(if stopped today, conception from "
                                     f"{{conception_from[{d}]}}). {w.note}".strip()}},
                f"{label} is stopped {cat.span(w.stop_before_conception)} before a planned "
                f"conception ({w.stop_before_conception}); hydroxychloroquine continues "
                "(acr-2020).", w.evidence + ["acr-2020"]))
            out.append(_rule(
                f"catalogue.planning.washout.{d}", f"Conception date after {label}", 10,
                {"all": ["planning_pregnancy", f"{d}_status == stopped",
                         f"{d}_weeks_since_stop < {wk:g}"]},
                {"warn": {"severity": "warning",
                          "message": f"Pregnancy planned: {label} was stopped "
                                     f"{{stop_date[{d}]}}; conception is advised from "
                                     f"{{conception_from[{d}]}}."}},
                f"{label} is stopped {cat.span(w.stop_before_conception)} before conception.",
                w.evidence))
    for d, w in women.items():
        out += _test_schedule(cat, d, w)
    planned = [d for d, w in women.items() if w.stop_before_conception]
    if planned:
        among = "+".join(planned)
        out.append(_rule(
            "catalogue.planning.stop", "Stop teratogens before a planned pregnancy", 81,
            {"all": ["planning_pregnancy",
                     {"any": [f"{d}_status == current" for d in planned]}]},
            {"recommend": {"action": "stop", "among": planned,
                           "summary": f"Stop {{current_among[{among}]}} before the planned "
                                      "pregnancy; keep hydroxychloroquine; conception from "
                                      f"{{conception_after[{among}]}}"}},
            f"Each of {cat.labels(planned)} is stopped its own interval before a planned "
            "conception (drugs.yaml stop_before_conception); hydroxychloroquine continues "
            "(acr-2020).", [k for d in planned for k in women[d].evidence] + ["acr-2020"]))
        out.append(_rule(
            "catalogue.planning.no-start", "No new teratogen while a pregnancy is planned", 100,
            "planning_pregnancy", {"exclude": planned},
            f"Pregnancy planned: {cat.labels(planned)} are not started (each must be stopped "
            "before conception; drugs.yaml stop_before_conception).",
            [k for d in planned for k in women[d].evidence] + ["acr-2020"]))
    long = [d for d, w in women.items() if w.after_last_dose
            and cat.weeks(w.after_last_dose) >= WASHOUT_PLANNING_REQUEST_WEEKS]
    for d in long:
        w = women[d]
        out.append(_rule(
            f"catalogue.planning.unknown.{d}", f"Pregnancy plans before {cat.label(d)}", 100,
            {"all": [MAY_CONCEIVE, "planning_pregnancy is unknown", f"{d}_start_considered"]},
            {"exclude": [d],
             "request": [{"field": "reproductive.planning_pregnancy",
                          "ask": "pregnancy plans",
                          "why": f"{cat.label(d)} rules out pregnancy for "
                                 f"{cat.span(w.after_last_dose)} after the last dose."}]},
            f"{cat.label(d)} needs contraception for {cat.span(w.after_last_dose)} after the "
            "last dose: a poor choice for a woman who may want children, so her plans are "
            "asked first (fail safe).", w.evidence))
    return out


def _ask(cat: Catalogue, w: Any) -> str:
    """The exact request for the pre-start pregnancy tests of a profile."""
    within = f" within {cat.span(w.last_test_within)} before the start" \
        if w.last_test_within else ""
    if w.tests_before_start >= 2:
        lo, hi = w.tests_apart_days_min, w.tests_apart_days_max
        apart = f"{lo}-{hi} days apart" if lo is not None and hi is not None else "apart"
        return f"two negative pregnancy tests {apart}, the second{within}"
    return f"a negative pregnancy test{within}"


def _short_ask(w: Any) -> str:
    """The same request in a few words (the gather_data summary)."""
    if w.tests_before_start >= 2:
        lo, hi = w.tests_apart_days_min, w.tests_apart_days_max
        if lo is not None and hi is not None:
            return f"two negative pregnancy tests {lo}-{hi} days apart"
        return "two negative pregnancy tests"
    return "a recent negative pregnancy test"


def _test_schedule(cat: Catalogue, d: str, w: Any) -> list[dict[str, Any]]:
    """Pregnancy tests during and after a course, as monitoring items in their window."""
    label = cat.label(d)
    items: list[dict[str, Any]] = []
    if w.tests_start_phase and w.tests_start_phase_until:
        items.append({"what": "pregnancy_test", "drug": d, "when": w.tests_start_phase,
                      "counted_from_start_of": d,
                      "shown_until_day": w.tests_start_phase_until})
    if w.tests_during:
        item = {"what": "pregnancy_test", "drug": d, "when": w.tests_during}
        if w.tests_start_phase and w.tests_start_phase_until:
            item.update(counted_from_start_of=d, shown_from_day=w.tests_start_phase_until)
        items.append(item)
    out = []
    if items:
        out.append(_rule(
            f"catalogue.pregnancy-tests.during.{d}", f"Pregnancy tests on {label}", 10,
            {"all": [MAY_CONCEIVE, {"any": [f"{d}_considered", f"{d}_status == current"]}]},
            {"monitor": items},
            f"{label}: pregnancy tests while a woman who may conceive takes it "
            "(drugs.yaml reproductive.woman).", w.evidence))
    if w.tests_after and w.after_last_dose:
        out.append(_rule(
            f"catalogue.pregnancy-tests.after.{d}", f"Pregnancy tests after {label}", 10,
            {"all": [MAY_CONCEIVE, f"{d}_status == stopped",
                     f"{d}_weeks_since_stop < {cat.weeks(w.after_last_dose):g}"]},
            {"monitor": [{"what": "pregnancy_test", "when": w.tests_after}]},
            f"{label}: pregnancy tests continue for {cat.span(w.after_last_dose)} after the "
            "last dose.", w.evidence))
    return out


def _man_rules(cat: Catalogue) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    men = {d: e.reproductive.man for d, e in cat.drugs.items()
           if e.reproductive and e.reproductive.man}
    condoms = [d for d, m in men.items() if m.condoms]
    if condoms:
        ev = [k for d in condoms for k in men[d].evidence]
        after = "; ".join(f"{cat.label(d)} {cat.span(men[d].after_last_dose)}"
                          for d in condoms if men[d].after_last_dose)
        out.append(_rule(
            "catalogue.male.condoms", "Condoms for men on the drug", 100,
            {"all": ["sex == male", PARTNER, "condom_use == false"]},
            {"exclude": condoms},
            f"A man whose partner may conceive uses condoms during {cat.labels(condoms)} and "
            f"after the last dose ({after}); he does not.", ev))
        out.append(_rule(
            "catalogue.male.condoms.unknown", "Condom use unknown", 50,
            {"all": ["sex == male", PARTNER, "condom_use is unknown"]},
            {"derive": CONDOMS_UNKNOWN},
            "A man whose partner may conceive, and condom use is not recorded.", ev))
        for d in condoms:
            out.append(_rule(
                f"catalogue.male.condoms.{d}.unknown", f"Condom use before {cat.label(d)}", 100,
                {"all": [CONDOMS_UNKNOWN, f"{d}_start_considered"]},
                {"exclude": [d],
                 "request": [{"field": "reproductive.condom_use", "ask": "condom use",
                              "why": f"Men on {cat.label(d)} use condoms when a partner may "
                                     "conceive."}]},
                f"Condom use is unknown for a man whose partner may conceive: "
                f"{cat.label(d)} waits (fail safe).", men[d].evidence))
        for d in condoms:
            m = men[d]
            out.append(_rule(
                f"catalogue.male.condoms.current.{d}", f"Condoms on {cat.label(d)}", 10,
                {"all": ["sex == male", f"{d}_status == current",
                         PARTNER, {"any": ["condom_use == false", "condom_use is unknown"]}]},
                {"warn": {"severity": "critical",
                          "message": f"A man on {cat.label(d)} whose partner may conceive uses "
                                     "condoms during treatment and for "
                                     f"{cat.span(m.after_last_dose)} after the last dose; "
                                     "condom use is not documented."}},
                f"{cat.label(d)}: condoms during treatment and for "
                f"{cat.span(m.after_last_dose)} after ({m.after_last_dose}).", m.evidence))
    for d, m in men.items():
        if not m.stop_before_conception:
            continue
        note = f" {m.disagreement}" if m.disagreement else ""
        out.append(_rule(
            f"catalogue.father.stop.{d}", f"{cat.label(d)} before fathering a child", 10,
            {"all": ["sex == male", "planning_to_father", f"{d}_status == current"]},
            {"warn": {"severity": "warning",
                      "message": (f"Planning to father a child: stop {cat.label(d)} at least "
                                  f"{cat.span(m.stop_before_conception)} before conception "
                                  f"(conservative default).{note}")}},
            f"{cat.label(d)} is stopped {cat.span(m.stop_before_conception)} before a "
            f"planned conception ({m.stop_before_conception}).{note}", m.evidence))
    fathers = [d for d, m in men.items() if m.stop_before_conception]
    if fathers:
        among = "+".join(fathers)
        out.append(_rule(
            "catalogue.father.stop", "Stop drugs before fathering a child", 82,
            {"all": ["sex == male", "planning_to_father",
                     {"any": [f"{d}_status == current" for d in fathers]}]},
            {"recommend": {"action": "stop", "among": fathers,
                           "summary": f"Stop {{current_among[{among}]}} before trying to "
                                      f"conceive; conception from {{conception_after[{among}]}}"}},
            f"Men planning to father a child stop {cat.labels(fathers)} their interval before "
            "conception (conservative reading; where sources disagree the warning says so).",
            [k for d in fathers for k in men[d].evidence]))
        out.append(_rule(
            "catalogue.father.no-start", "No new drug with a paternal washout", 100,
            {"all": ["sex == male", "planning_to_father"]}, {"exclude": fathers},
            f"Planning to father a child: {cat.labels(fathers)} are not started (conservative "
            "reading of the labels; drugs.yaml reproductive.man).",
            [k for d in fathers for k in men[d].evidence]))
    return out


def _dose_rules(cat: Catalogue) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d, e in cat.drugs.items():
        dosing = e.dosing
        if dosing is None:
            continue
        label = cat.label(d)
        if dosing.unit == "mg_per_week":
            out.append(_rule(
                f"catalogue.dose-unit.{d}", f"{label} recorded as a daily dose", 100,
                f"{d}_dose_wrong_unit",
                {"warn": {"severity": "critical",
                          "message": f"{_cap(label)} is recorded as {{recorded_dose[{d}]}}, but it "
                                     "is dosed once WEEKLY "
                                     f"(at most {dosing.max_mg:g} mg per week). Daily dosing "
                                     "of a weekly drug has caused fatal errors: check the "
                                     "prescription and what the patient takes."}},
                f"{label} is a once-weekly drug (drugs.yaml dosing.unit); a daily dose is a "
                "known cause of fatal errors.", dosing.evidence))
        if dosing.max_mg is not None:
            unit = "mg per week" if dosing.unit == "mg_per_week" else "mg per day"
            out.append(_rule(
                f"catalogue.max-dose.{d}", f"{label} above the catalogue maximum", 100,
                f"{d}_dose_above_max",
                {"warn": {"severity": "critical",
                          "message": f"{_cap(label)} {{recorded_dose[{d}]}} is above the maximum of "
                                     f"{dosing.max_mg:g} {unit}: check the dose, its unit "
                                     "and the prescription."}},
                f"{label}: at most {dosing.max_mg:g} {unit} (drugs.yaml dosing.max_mg).",
                dosing.evidence))
    return out


def _combination_rules(cat: Catalogue) -> list[dict[str, Any]]:
    """Two current drugs that the catalogue never combines (a never_with pair:
    critical) or does not list as combinable (warning: one usually replaces the other)."""
    out: list[dict[str, Any]] = []
    names = [d for d, e in cat.drugs.items() if not e.course.adjunct]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ea, eb = cat.drugs[a], cat.drugs[b]
            never = b in ea.never_with or a in eb.never_with
            if not never and (b in ea.course.combines_with or a in eb.course.combines_with):
                continue
            if "specialist" in (ea.stage, eb.stage) and not never:
                continue  # biologics are a specialist's decision
            pair = f"{cat.label(a)} and {cat.label(b)}"
            message = (f"{_cap(pair)} are taken together, but they are never combined "
                       "(drugs.yaml never_with): stop one." if never else
                       f"{_cap(pair)} are taken together, but the catalogue does not combine "
                       "them (one replaces the other): review whether both are intended.")
            out.append(_rule(
                f"catalogue.combination.{a}.{b}", f"{_cap(pair)} together", 10,
                {"all": [f"{a}_status == current", f"{b}_status == current"]},
                {"warn": {"severity": "critical" if never else "warning", "message": message}},
                f"{pair}: " + ("never taken together (drugs.yaml never_with)." if never else
                               "neither lists the other in course.combines_with."),
                sorted(set(ea.evidence) | set(eb.evidence))))
    return out


def generated_rules(drugs: dict[str, Any], thresholds: dict[str, Any],
                    days: Callable[[str], int | None]) -> list[dict[str, Any]]:
    """Every rule the catalogue implies, as rule-file data (validated like any rule)."""
    cat = Catalogue(drugs, thresholds, days)
    return (_woman_rules(cat) + _man_rules(cat) + _dose_rules(cat)
            + _combination_rules(cat))
