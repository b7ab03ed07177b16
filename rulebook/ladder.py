"""The treatment ladder as inline SVG, drawn here (no script, no network): one column
per stage, left to right, each with the drugs its rules start and the rules themselves,
every box a link (stage -> the rules of the stage, drug -> its page, rule -> its page)."""
from __future__ import annotations

from html import escape

from ..engine import vocabulary as V
from ..engine.ruleset import RuleSet

LADDER = ("topical", "antimalarial", "bridge", "immunosuppressant", "refractory", "specialist")
COL_W, GAP, HEAD_H, DRUG_H, RULE_H, PAD = 200, 34, 34, 26, 17, 10


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start") -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def ladder_svg(ruleset: RuleSet, root: str = "") -> str:
    """The SVG element (links relative to the site's root)."""
    columns: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for rule in ruleset.rules:
        rec = rule.spec.then.recommend
        if rec is None:
            continue
        stage = ruleset.drugs[rec.drug].stage if rec.drug in ruleset.drugs else rule.stage
        key = rec.drug or f"({rec.action.replace('_', ' ')})"
        columns.setdefault(stage, {}).setdefault(key, []).append((rule.spec.priority, rule.id))
    order = LADDER + tuple(s for s in V.STAGES if s not in LADDER)  # the climb, then the rest
    stages = [s for s in order if s in columns] + sorted(set(columns) - set(order))
    heights = []
    for stage in stages:
        h = HEAD_H + PAD
        for rules in columns[stage].values():
            h += DRUG_H + RULE_H * len(rules) + PAD
        heights.append(h)
    width = len(stages) * (COL_W + GAP) - GAP + 2 * PAD
    height = max(heights) + 2 * PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" role="group" '
           f'aria-labelledby="ladder-title" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}">',
           '<title id="ladder-title">The treatment ladder: stages left to right, the drugs '
           'each stage starts, and the rules that recommend them</title>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/>'
           '</marker></defs>']
    for i, stage in enumerate(stages):
        x = PAD + i * (COL_W + GAP)
        out.append(f'<rect x="{x}" y="{PAD}" width="{COL_W}" height="{heights[i]}" rx="6" '
                   f'class="stage-box"/>')
        out.append(f'<a href="{root}rules/index.html#stage-{stage}" '
                   f'aria-label="Stage {escape(stage)}: its rules">'
                   f'<rect x="{x}" y="{PAD}" width="{COL_W}" height="{HEAD_H}" rx="6" '
                   f'class="stage-head"/>'
                   + _text(x + COL_W / 2, PAD + 22, stage, "stage-label", "middle") + "</a>")
        if i + 1 < len(stages):
            y = PAD + HEAD_H / 2
            out.append(f'<line x1="{x + COL_W + 2}" y1="{y}" x2="{x + COL_W + GAP - 2}" '
                       f'y2="{y}" class="step" marker-end="url(#arrow)"/>')
        y = PAD + HEAD_H + PAD
        for drug, rules in sorted(columns[stage].items()):
            label = ruleset.drugs[drug].label if drug in ruleset.drugs else drug
            box = (f'<rect x="{x + 8}" y="{y}" width="{COL_W - 16}" height="{DRUG_H - 4}" '
                   f'rx="4" class="drug-box"/>'
                   + _text(x + 16, y + 16, _short(label, 26), "drug-label"))
            if drug in ruleset.drugs:
                box = (f'<a href="{root}drugs/{drug}.html" aria-label="Drug '
                       f'{escape(label)}">{box}</a>')
            out.append(box)
            y += DRUG_H
            for priority, rid in sorted(rules, key=lambda r: (-r[0], r[1])):
                name = rid.split(".", 1)[1] if "." in rid else rid
                out.append(f'<a href="{root}rules/{rid}.html" aria-label="Rule {escape(rid)}, '
                           f'priority {priority}">'
                           + _text(x + 18, y + 12, _short(f"p{priority} {name}", 30),
                                   "rule-label") + "</a>")
                y += RULE_H
            y += PAD
    out.append("</svg>")
    return "\n".join(out)
