"""Rules generated from the drug catalogue (drugs.yaml), compiled like any other rule.

A reviewer states each drug's reproductive profile and dosing once, in drugs.yaml; the
rule templates of rules/reproductive-templates.yaml say, in YAML a reviewer reads, which
rules a reproductive profile makes, and this module fills them in (`expand`). Dose and
combination checks are made here. The results are ordinary rules (exclusions, requests,
warnings and stop steps) that go through the same validation, durable_rules
compilation, trace and "why not" as hand-written ones: changing acitretin's 3 years is
one edit, and a drug added next year is covered without a new rule.

Rule ids start with `catalogue.`; their `because` names the drug's requirement and the
named threshold behind it, so the why-not reads "acitretin needs ... for 3 years".
The template language is described at the top of the template file.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

CATALOGUE_FILE = "drugs.yaml"
TEMPLATE_FILE = "reproductive-templates.yaml"
PROFILES = ("woman", "man")  # drugs.<name>.reproductive.<profile>

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]


class _Strict(BaseModel):
    # defer_build: the validators are built when a rules folder is checked, not at every
    # start (a cached rule set never needs them; ~20 ms of each cold start).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              defer_build=True)


class Level(_Strict):
    """What one contraception level asks of a woman who may conceive."""

    needs: Text                      # in words, as the advice says it
    met_by: list[Name] = Field(min_length=1)
    short_of: list[Name] = Field(min_length=1)


class Choice(_Strict):
    """A form of a phrase used only when the profile meets `if`."""

    if_: Text = Field(alias="if")
    text: str


class EachDrug(_Strict):
    """A phrase made once per drug of the rule and joined."""

    for_each_drug: Text = Field(alias="for each drug")
    joined_by: str = Field(alias="joined by")


Phrase = Union[list[Union[str, Choice]], EachDrug]
FOR = r"^(each drug|drugs together|each value of [a-z_]+(, [a-z_]+)*)$"


class Template(_Strict):
    """A rule with {{placeholders}}, made for the drugs whose profile meets `where`."""

    id: Text
    for_: Annotated[str, Field(pattern=FOR)] = Field(alias="for")
    where: Text | None = None
    title: Text
    priority: int = Field(ge=0, le=100)
    when: Any
    then: dict[str, Any]
    because: Text
    evidence: list[str] = Field(default_factory=list)


class TemplateFile(_Strict):
    contraception: dict[Literal["one_method", "two_methods"], Level] = Field(
        default_factory=dict)
    phrases: dict[Name, Phrase] = Field(default_factory=dict)
    woman: list[Template] = Field(default_factory=list)
    man: list[Template] = Field(default_factory=list)


class TemplateError(ValueError):
    """A template that cannot be filled: the message and where in the file."""

    def __init__(self, message: str, path: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.path = path


class Generated(dict[str, Any]):
    """A rule made from the catalogue, as rule-file data that remembers the template
    it came from (its path in the template file; None: made by the code below)."""

    def __init__(self, data: dict[str, Any], template: tuple[Any, ...] | None = None):
        super().__init__(data)
        self.template = template


class Catalogue:
    """Names, durations and evidence for generated rules."""

    def __init__(self, drugs: dict[str, Any], thresholds: dict[str, Any],
                 days: Callable[[str], int | None]) -> None:
        self.drugs = drugs
        self.thresholds = thresholds
        self.days = days

    def label(self, drug: str) -> str:
        return str(self.drugs[drug].label)

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


# ---------------------------------------------------------------- the template filler

PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
EXPRESSION = re.compile(r"\s*([a-z_][a-z0-9_]*)(?:\.([a-z_]+))?(?:\s+or\s+(\S+))?\s*$")
DURATION_ATTRS = ("span", "weeks", "days")
GROUP_NAMES = ("drugs", "drugs_plus", "labels", "evidence", "all_evidence")
DRUG_NAMES = ("drug", "label", "evidence", "all_evidence")


@dataclass(frozen=True)
class Scope:
    """What a template is filled for: its drugs and, for one drug or one shared value,
    the profile fields it may name."""

    drugs: tuple[str, ...]
    profiles: dict[str, dict[str, Any]]     # drug -> its profile (every drug of the kind)
    fields: frozenset[str]                  # profile fields this scope may name
    single: bool = False                    # for each drug: {{drug}} and {{label}}

    @property
    def profile(self) -> dict[str, Any]:
        """The fields named: the drug's, or those the drugs share (of the last one)."""
        return self.profiles[self.drugs[-1]]

    def one(self, drug: str) -> "Scope":
        return _single(self.profiles, drug)


def _single(profiles: dict[str, dict[str, Any]], drug: str) -> Scope:
    return Scope((drug,), profiles, frozenset(profiles[drug]), True)


def _attribute(cat: Catalogue, file: TemplateFile, name: str, value: Any, attr: str,
               path: tuple[Any, ...]) -> Any:
    """{{name.attr}}: a named duration in words, weeks or days; a slug; a text without
    its last line break; or a column of the table named like the field."""
    if attr in DURATION_ATTRS:
        if value not in cat.thresholds:
            raise TemplateError(f"{{{{{name}.{attr}}}}}: '{value}' is not a named "
                                "threshold", path)
        return cat.span(value) if attr == "span" else \
            cat.weeks(value) if attr == "weeks" else cat.days(value)
    if attr == "slug":
        return str(value).replace("_", "-")
    if attr == "trimmed":
        return str(value).rstrip() or None
    table = file.contraception if name == "contraception" else None
    if table is not None and value in table and attr in Level.model_fields:
        return getattr(table[value], attr)
    raise TemplateError(f"{{{{{name}.{attr}}}}}: unknown (span, weeks, days, slug, "
                        "trimmed, or a column of the table named like the field)", path)


class _Tests:
    """The tests of a profile (`where`, `if`): fields, comparisons, and, or, not."""

    cat: Catalogue
    file: TemplateFile
    fields: frozenset[str]
    kind: str

    def test(self, text: str, scope: Scope, path: tuple[Any, ...]) -> bool:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            raise TemplateError(f"'{text}': not a test (use fields, ==, !=, <, <=, >, >=, "
                                "and, or, not)", path) from None
        return bool(self._truth(tree.body, scope, path, text))

    def _truth(self, node: ast.AST, scope: Scope, path: tuple[Any, ...], text: str) -> Any:
        if isinstance(node, ast.BoolOp):
            values = (self._truth(v, scope, path, text) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._truth(node.operand, scope, path, text)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                type(node.ops[0]) in _COMPARE:
            left = self._operand(node.left, scope, path, text, False)
            right = self._operand(node.comparators[0], scope, path, text, True)
            if left is None or right is None:
                return False  # a value that is not given meets no comparison
            try:
                return _COMPARE[type(node.ops[0])](left, right)
            except TypeError:
                raise TemplateError(f"'{text}': compares {left!r} with {right!r}",
                                    path) from None
        return self._operand(node, scope, path, text, False)

    def _operand(self, node: ast.AST, scope: Scope, path: tuple[Any, ...], text: str,
                 word: bool) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name) and word and node.id not in self.fields:
            return node.id  # `contraception == two_methods`: a word
        if isinstance(node, ast.Name):
            return self._field(node.id, scope, path)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            value = self._field(node.value.id, scope, path)
            if value is None:
                return None
            return _attribute(self.cat, self.file, node.value.id, value, node.attr, path)
        raise TemplateError(f"'{text}': not a test (use fields, ==, !=, <, <=, >, >=, "
                            "and, or, not)", path)

    def _field(self, name: str, scope: Scope, path: tuple[Any, ...]) -> Any:
        if name not in scope.fields:
            raise TemplateError(f"'{name}' is not a field of the {self.kind}'s profile "
                                "here", path)
        return scope.profile[name]


class _Values(_Tests):
    """The values of placeholders and phrases for one profile kind."""

    def __init__(self, cat: Catalogue, file: TemplateFile, kind: str,
                 fields: frozenset[str]) -> None:
        self.cat, self.file, self.kind, self.fields = cat, file, kind, fields
        self.profiles = {d: _profile(getattr(e.reproductive, kind, None))
                         for d, e in cat.drugs.items() if e.reproductive
                         and getattr(e.reproductive, kind, None) is not None}

    def value(self, expr: str, scope: Scope, path: tuple[Any, ...]) -> Any:
        """One placeholder's value (None: it has none)."""
        m = EXPRESSION.match(expr)
        if not m:
            raise TemplateError(f"'{{{{{expr}}}}}' is not a placeholder (NAME, NAME.WHAT "
                                "or NAME or DEFAULT)", path)
        name, attr, default = m.groups()
        value = self._named(name, scope, path)
        if attr is not None and value is not None:
            value = _attribute(self.cat, self.file, name, value, attr, path)
        return default if value is None and default is not None else value

    def _named(self, name: str, scope: Scope, path: tuple[Any, ...]) -> Any:
        if name in self.file.phrases:
            return self.phrase(name, scope, path)
        drugs = list(scope.drugs)
        if scope.single and name in ("drug", "label"):
            return drugs[0] if name == "drug" else self.cat.label(drugs[0])
        if name in ("drugs", "drugs_plus", "labels") and not scope.single:
            return drugs if name == "drugs" else \
                "+".join(drugs) if name == "drugs_plus" else self.cat.labels(drugs)
        if name == "evidence":
            return [k for d in drugs for k in self.profiles[d]["evidence"] or []]
        if name == "all_evidence":
            return [k for p in self.profiles.values() for k in p["evidence"] or []]
        if name == "evidence_of_last_drug" and not scope.single and scope.fields:
            return list(scope.profile["evidence"] or [])
        if name in scope.fields:
            return scope.profile[name]
        known = ("a field of the drug's profile" if scope.single else
                 "one of the fields of `for`" if scope.fields else "a list of drugs")
        raise TemplateError(f"{{{{{name}}}}}: unknown here (this template names "
                            f"{known}; see the top of {TEMPLATE_FILE})", path)

    def text(self, template: str, scope: Scope, path: tuple[Any, ...]) -> str | None:
        """A text with its placeholders filled, or None when one has no value."""
        missing = False

        def one(m: re.Match[str]) -> str:
            nonlocal missing
            value = self.value(m.group(1), scope, path)
            if value is None:
                missing = True
                return ""
            return _words(value)

        out = PLACEHOLDER.sub(one, template)
        return None if missing else out

    def phrase(self, name: str, scope: Scope, path: tuple[Any, ...]) -> str | None:
        """The first form of a phrase whose placeholders all have values."""
        forms = self.file.phrases[name]
        where = ("phrases", name)
        if isinstance(forms, EachDrug):
            each = [self.text(forms.for_each_drug, scope.one(d), where) for d in scope.drugs]
            return forms.joined_by.join(m for m in each if m is not None)
        for i, form in enumerate(forms):
            if isinstance(form, Choice) and not self.test(form.if_, scope, where + (i, "if")):
                continue
            made = self.text(form.text if isinstance(form, Choice) else form, scope,
                             where + (i,))
            if made is not None:
                return made
        return None


class Filler(_Values):
    """Fills one profile kind's templates from the catalogue: which drugs each is made
    for, then its structure (lists, mappings, conditional and per-drug items)."""

    def scopes(self, t: Template, path: tuple[Any, ...]) -> list[Scope]:
        chosen = [d for d in self.profiles if t.where is None
                  or self.test(t.where, _single(self.profiles, d), path + ("where",))]
        if t.for_ == "each drug":
            return [_single(self.profiles, d) for d in chosen]
        if t.for_ == "drugs together":
            return [Scope(tuple(chosen), self.profiles, frozenset())] if chosen else []
        keys = frozenset(value_keys(t))
        groups: dict[Any, list[str]] = {}  # drugs whose values give one rule id share it
        for d in chosen:
            rid = self.fill(t.id, Scope((d,), self.profiles, keys), path + ("id",))
            groups.setdefault(rid, []).append(d)
        return [Scope(tuple(g), self.profiles, keys) for g in groups.values()]

    def fill(self, node: Any, scope: Scope, path: tuple[Any, ...]) -> Any:
        """A template value filled in; None when it is left out."""
        if isinstance(node, str):
            whole = PLACEHOLDER.fullmatch(node)
            if whole:
                return self.value(whole.group(1), scope, path)
            return self.text(node, scope, path)
        if isinstance(node, dict):
            out = {k: self.fill(v, scope, path + (k,)) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not None}
        if isinstance(node, list):
            return self._items(node, scope, path)
        return node

    def _items(self, items: list[Any], scope: Scope, path: tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        for i, item in enumerate(items):
            where = path + (i,)
            if isinstance(item, dict) and set(item) == {"if", "add"}:
                if self.test(item["if"], scope, where + ("if",)):
                    out += self._items(list(item["add"] or []), scope, where + ("add",))
                continue
            if isinstance(item, dict) and set(item) == {"for each drug"}:
                for d in scope.drugs:
                    out += self._items([item["for each drug"]], scope.one(d), where)
                continue
            value = self.fill(item, scope, where)
            if isinstance(value, list) and isinstance(item, str):
                out += value            # a list placeholder spliced in
            elif value is not None:
                out.append(value)
        return out

    def rules(self, t: Template, path: tuple[Any, ...]) -> list[dict[str, Any]]:
        out = []
        for scope in self.scopes(t, path):
            data = {key: self.fill(getattr(t, key), scope, path + (key,))
                    for key in ("id", "title", "when", "then", "because", "evidence")}
            data.update(stage="general", priority=t.priority,
                        evidence=sorted(dict.fromkeys(data["evidence"] or [])))
            out.append({k: v for k, v in data.items() if v is not None})
        return out


def value_keys(t: Template) -> list[str]:
    """The fields of `for: each value of F1, F2` (none for the other kinds)."""
    if not t.for_.startswith("each value of "):
        return []
    return [k.strip() for k in t.for_.removeprefix("each value of ").split(",")]


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def _profile(model: Any) -> dict[str, Any]:
    """A profile's fields; an empty text is a field not given."""
    return {k: (None if v == "" else v) for k, v in dict(model).items()}


def _words(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def expand(file: TemplateFile, cat: Catalogue,
           fields: dict[str, frozenset[str]]) -> list[Generated]:
    """Every rule the templates make from the catalogue's reproductive profiles;
    `fields` are the fields of each profile kind (drugs.yaml's models)."""
    out: list[Generated] = []
    for kind in PROFILES:
        filler = Filler(cat, file, kind, fields[kind])
        for i, t in enumerate(getattr(file, kind)):
            out += [Generated(data, (kind, i)) for data in filler.rules(t, (kind, i))]
    return out


# ------------------------------------------------------------------ the static check

_TEST_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
               ast.Compare, ast.Name, ast.Attribute, ast.Constant, ast.Load,
               *(_COMPARE))
ATTRS = (*DURATION_ATTRS, "slug", "trimmed")


def check(file: TemplateFile, fields: dict[str, frozenset[str]]) -> list[TemplateError]:
    """Mistakes no catalogue could fill (an unknown placeholder, field or test), found
    whether or not a drug meets the template today."""
    out: list[TemplateError] = []
    for kind in PROFILES:
        every = fields[kind]
        each_drug = (frozenset(DRUG_NAMES) | every, every)
        for i, t in enumerate(getattr(file, kind)):
            path: tuple[Any, ...] = (kind, i)
            keys = frozenset(value_keys(t))
            if keys - every:
                out.append(TemplateError(f"'{sorted(keys - every)[0]}' is not a field of "
                                         f"the {kind}'s profile", path + ("for",)))
                continue  # its placeholders would only repeat the mistake
            if t.where:
                _check_test(t.where, every, every, path + ("where",), out)
            if t.for_ == "each drug":
                names = each_drug
            elif keys:
                names = (frozenset(GROUP_NAMES) | {"evidence_of_last_drug"} | keys, keys)
            else:
                names = (frozenset(GROUP_NAMES), frozenset())
            for key in ("id", "title", "when", "then", "because", "evidence"):
                _Walk(file, every, each_drug, out).node(getattr(t, key), names, path + (key,))
    return out


def _check_test(text: str, allowed: frozenset[str], every: frozenset[str],
                path: tuple[Any, ...], out: list[TemplateError]) -> None:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        tree = None
    if tree is None or not all(isinstance(n, _TEST_NODES) for n in ast.walk(tree)):
        out.append(TemplateError(f"'{text}': not a test (use fields, ==, !=, <, <=, >, >=, "
                                 "and, or, not)", path))
        return
    words = {c.id for n in ast.walk(tree) if isinstance(n, ast.Compare)
             for c in n.comparators if isinstance(c, ast.Name) and c.id not in every}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id not in allowed and n.id not in words:
            out.append(TemplateError(f"'{n.id}' in '{text}': not a field of the profile "
                                     "here", path))
        elif isinstance(n, ast.Attribute) and n.attr not in ATTRS and not (
                isinstance(n.value, ast.Name) and n.value.id == "contraception"
                and n.attr in Level.model_fields):
            out.append(TemplateError(f"'.{n.attr}' in '{text}': unknown ({', '.join(ATTRS)}, "
                                     "or a column of the table contraception)", path))


@dataclass
class _Walk:
    """Walks a template (and the phrases it uses) for names it may not use."""

    file: TemplateFile
    every: frozenset[str]
    each_drug: tuple[frozenset[str], frozenset[str]]
    out: list[TemplateError]

    def node(self, node: Any, names: tuple[frozenset[str], frozenset[str]],
             path: tuple[Any, ...], phrases: tuple[str, ...] = ()) -> None:
        if isinstance(node, str):
            for expr in PLACEHOLDER.findall(node):
                self.placeholder(expr, names, path, phrases)
        elif isinstance(node, dict) and set(node) == {"if", "add"}:
            _check_test(str(node["if"]), names[1], self.every, path + ("if",), self.out)
            self.node(node["add"], names, path + ("add",), phrases)
        elif isinstance(node, dict) and set(node) == {"for each drug"}:
            self.node(node["for each drug"], self.each_drug, path, phrases)
        elif isinstance(node, dict):
            for k, v in node.items():
                self.node(v, names, path + (k,), phrases)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.node(v, names, path + (i,), phrases)

    def placeholder(self, expr: str, names: tuple[frozenset[str], frozenset[str]],
                    path: tuple[Any, ...], phrases: tuple[str, ...]) -> None:
        m = EXPRESSION.match(expr)
        used = f" (phrase {phrases[-1]})" if phrases else ""
        if not m:
            self.out.append(TemplateError(f"'{{{{{expr}}}}}'{used}: not a placeholder "
                                          "(NAME, NAME.WHAT or NAME or DEFAULT)", path))
            return
        name, attr, _ = m.groups()
        if name in self.file.phrases:
            if name in phrases:
                self.out.append(TemplateError(f"phrase {name} uses itself", path))
            else:
                self.phrase(name, names, path, phrases + (name,))
        elif name not in names[0]:
            self.out.append(TemplateError(f"{{{{{name}}}}}{used}: unknown here (see the top "
                                          f"of {TEMPLATE_FILE})", path))
        elif attr is not None and attr not in ATTRS and not (
                name == "contraception" and attr in Level.model_fields):
            self.out.append(TemplateError(f"{{{{{name}.{attr}}}}}{used}: unknown "
                                          f"({', '.join(ATTRS)}, or a column of the table "
                                          "contraception)", path))

    def phrase(self, name: str, names: tuple[frozenset[str], frozenset[str]],
               path: tuple[Any, ...], phrases: tuple[str, ...]) -> None:
        forms = self.file.phrases[name]
        if isinstance(forms, EachDrug):
            self.node(forms.for_each_drug, self.each_drug, path, phrases)
            return
        for form in forms:
            if isinstance(form, Choice):
                _check_test(form.if_, names[1], self.every, path, self.out)
            self.node(form.text if isinstance(form, Choice) else form, names, path, phrases)


def static_derived(file: TemplateFile) -> set[str]:
    """Facts the templates derive whatever the catalogue holds (no placeholder)."""
    return {t.then["derive"] for kind in PROFILES for t in getattr(file, kind)
            if isinstance(t.then.get("derive"), str) and "{{" not in t.then["derive"]}


# ------------------------------------------------------- drugs chosen by their properties

# What a rule may select the catalogue's drugs by: `{drugs where: TEST}` in a list of
# drugs (exclude, among, about), so that a drug added to drugs.yaml with a property is
# covered by every rule about that property without editing the rule.
SELECT_FIELDS = ("class", "stage", "teratogenic", "myelosuppressive", "pregnancy",
                 "breastfeeding", "adjunct")


def properties(entry: Any) -> dict[str, Any]:
    """A drug's properties as selections read them; a property the entry does not state
    takes its conservative value (not established in pregnancy or breastfeeding;
    contraindicated and avoided for a teratogen)."""
    return {"class_": entry.drug_class, "stage": entry.stage,
            "teratogenic": entry.teratogenic, "myelosuppressive": entry.myelosuppressive,
            "pregnancy": entry.pregnancy or (
                "contraindicated" if entry.teratogenic else "not_established"),
            "breastfeeding": entry.breastfeeding or (
                "avoid" if entry.teratogenic else "not_established"),
            "adjunct": entry.course.adjunct}


class SelectError(ValueError):
    """A selection test that cannot be read."""


def select(drugs: dict[str, Any], test: str) -> list[str]:
    """The catalogue's drugs, in its order, whose properties meet a test
    (`teratogenic`, `pregnancy == not_established`, `myelosuppressive and not
    teratogenic`, `class == retinoid or class == immunomodulator`)."""
    try:
        # `class` is a word of the catalogue (and of Python): read as a name.
        tree = ast.parse(re.sub(r"\bclass\b", "class_", test.strip()), mode="eval")
    except SyntaxError:
        raise SelectError(f"'{test}': not a test (use properties, ==, !=, and, or, "
                          "not)") from None
    return [name for name, entry in drugs.items()
            if _meets(tree.body, properties(entry), test)]


def _meets(node: ast.AST, props: dict[str, Any], test: str) -> bool:
    if isinstance(node, ast.BoolOp):
        values = [_meets(v, props, test) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _meets(node.operand, props, test)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
            isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
        left = _value(node.left, props, test, False)
        right = _value(node.comparators[0], props, test, True)
        return (left == right) == isinstance(node.ops[0], ast.Eq)
    if isinstance(node, ast.Name):
        return bool(_value(node, props, test, False))
    raise SelectError(f"'{test}': not a test (use properties, ==, !=, and, or, not)")


def _value(node: ast.AST, props: dict[str, Any], test: str, word: bool) -> Any:
    if isinstance(node, ast.Name) and node.id in props:
        return props[node.id]
    if isinstance(node, ast.Name) and word:
        # `pregnancy == not_established`: a word (true and false: yes and no)
        return {"true": True, "false": False}.get(node.id, node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool, int)):
        return node.value
    name = (node.id if isinstance(node, ast.Name) else ast.unparse(node)).replace(
        "class_", "class")
    raise SelectError(f"'{name}' in '{test}' is not a property of a drug (one of "
                      f"{', '.join(SELECT_FIELDS)})")


# ---------------------------------------------------------- dose and combination rules

def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _rule(rid: str, title: str, priority: int, when: Any, then: dict[str, Any],
          because: str, evidence: list[str]) -> dict[str, Any]:
    return {"id": rid, "title": title, "stage": "general", "priority": priority,
            "when": when, "then": then, "because": because,
            "evidence": sorted(dict.fromkeys(evidence))}


def _dose_rules(cat: Catalogue) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d, e in cat.drugs.items():
        dosing = e.dosing
        if dosing is None:
            continue
        label = cat.label(d)
        if dosing.unit == "mg_per_week":
            # The step, not only a warning (reader D, p07): a sevenfold dose is held the
            # same day until what the patient takes is confirmed. Below the emergencies
            # (fever with a low count, an overdose with signs: 100), above the rest.
            out.append(_rule(
                f"catalogue.dose-unit.{d}", f"{label} recorded as a daily dose", 99,
                f"{d}_dose_wrong_unit",
                {"recommend": {
                    "action": "stop", "drug": d, "holds_starts": True,
                    "summary": f"Hold {label} today: it is recorded as {{recorded_dose[{d}]}} "
                               "but is dosed once WEEKLY; confirm what the patient takes "
                               "before the next dose; if it has been taken daily, treat it "
                               "as an overdose: same-day assessment; blood count, liver and "
                               "renal function today"},
                 "monitor": [{"what": "cbc", "when": "today", "first_in_days": 0},
                             {"what": "liver_function", "when": "today", "first_in_days": 0},
                             {"what": "renal_function", "when": "today", "first_in_days": 0}],
                 "warn": {"severity": "critical",
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
                          "message": f"{_cap(label)} {{recorded_dose[{d}]}} is above the "
                                     f"maximum of {dosing.max_mg:g} {unit}: check the dose, "
                                     "its unit "
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
                       "(additive harm): stop one." if never else
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


def _monitoring_rules(cat: Catalogue) -> list[dict[str, Any]]:
    """A drug's own monitoring (drugs.yaml `monitoring`), shown when it is taken or is
    the step, like a monitoring rule's items that name the drug."""
    out: list[dict[str, Any]] = []
    for d, e in cat.drugs.items():
        if e.monitoring is None:
            continue
        items = [{**item.model_dump(mode="json", exclude_none=True), "drug": d}
                 for item in e.monitoring.items]
        rule = _rule(f"catalogue.monitoring.{d}", f"Monitoring on {cat.label(d)}", 10,
                     {"any": [f"{d}_considered", f"{d}_status == current"]},
                     {"monitor": items}, e.monitoring.because, e.monitoring.evidence)
        out.append({**rule, "stage": "monitoring"})
    return out


def generated_rules(drugs: dict[str, Any], thresholds: dict[str, Any],
                    days: Callable[[str], int | None], templates: TemplateFile,
                    fields: dict[str, frozenset[str]]) -> list[Generated]:
    """Every rule the catalogue implies, as rule-file data (validated like any rule)."""
    cat = Catalogue(drugs, thresholds, days)
    return expand(templates, cat, fields) + [
        Generated(data) for data in _dose_rules(cat) + _combination_rules(cat)
        + _monitoring_rules(cat)]
