"""`cledecide rules ...`: reviewer commands, each a thin layer over cledecide.reviewer.review."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer



class _Lazy:
    """Import the reviewer library only when a reviewer command runs (faster evaluate)."""

    def __getattr__(self, name: str):
        from ..reviewer import review as module
        return getattr(module, name)


review = _Lazy()


def _rules_folder(folder: Optional[Path], option: Optional[Path], fail: Callable
                  ) -> Optional[Path]:
    """Every rules command takes its folder as `--rules DIR`; those that read one
    folder take it as their last argument too (both: they must agree)."""
    if folder is not None and option is not None and folder != option:
        fail(f"two rules folders given ({folder} and --rules {option}); give one")
    return folder if folder is not None else option


RULES_OPTION = "--rules"
MAX_SAMPLES = 100_000  # a search is bounded; more would take hours


def register(app: typer.Typer, guarded: Callable, fail: Callable, emit: Callable) -> None:
    """Attach the reviewer commands to the `rules` group."""

    @app.command("check")
    def check(folder: Optional[Path] = typer.Argument(None,
                                                      help="Rules folder (default: shipped)."),
              rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                   help="Rules folder (or the argument)."),
              strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings."),
              deep: bool = typer.Option(False, "--deep",
                                        help="The deep search: 1,500 patients, hypothesis, "
                                             "and the rules never reached, masked or "
                                             "redundant (about a minute)."),
              samples: Optional[int] = typer.Option(
                  None, "--samples", min=0, max=MAX_SAMPLES,
                  help="Patients searched for conflicts and gaps (default 300; 1,500 "
                       "with --deep)."),
              today: Optional[str] = typer.Option(None, "--today",
                                                  help="Date for review-due checks (YYYY-MM-DD)."),
              scenarios: Optional[Path] = typer.Option(
                  None, "--scenarios", help="Scenario folder (default: scenarios/ beside "
                                            "the rules, or the shipped ones)."),
              no_scenarios: bool = typer.Option(
                  False, "--no-scenarios", help="Do not run the scenarios."),
              hypothesis: Optional[int] = typer.Option(
                  None, "--hypothesis", min=0, max=MAX_SAMPLES,
                  help="Hypothesis examples per finding to refute (unreached or masked "
                       "rules; default 200 with --deep; more than 0 means --deep).")) -> None:
        """Check a rule set: errors exit 2, warnings exit 0 (1 with --strict). Quick by
        default; --deep searches the patient space for rules that never win."""
        import datetime as dt
        try:
            day = dt.date.fromisoformat(today) if today else None
        except ValueError:
            fail(f"--today: must be a date (YYYY-MM-DD), got {today!r}")
        folder = _rules_folder(folder, rules, fail)
        report = guarded(review.check, folder, samples, day, hypothesis, deep, scenarios,
                         not no_scenarios)
        emit(review.format_findings(report))
        if report.errors:
            raise typer.Exit(2)
        if strict and report.warnings:
            raise typer.Exit(1)

    @app.command("review")
    def review_(unit: str = typer.Argument(..., help="A rule id, drug:NAME or threshold:NAME."),
                verdict: str = typer.Option(..., "--verdict",
                                            help="approved, changes_requested or rejected."),
                by: str = typer.Option(..., "--by", help="The reviewer's name."),
                role: str = typer.Option(..., "--role", help="The reviewer's role."),
                comment: str = typer.Option("", "--comment"),
                date: Optional[str] = typer.Option(None, "--date",
                                                   help="Review date (default: today)."),
                folder: Optional[Path] = typer.Option(None, "--rules", help="Rules folder.")
                ) -> None:
        """Sign one unit: append a review record, tied to its content hash, to its file."""
        import datetime as dt
        from ..rulebook.records import write_review
        try:
            day = dt.date.fromisoformat(date) if date else None
        except ValueError:
            fail(f"--date: must be a date (YYYY-MM-DD), got {date!r}")
        target, record = guarded(write_review, unit, verdict, by, role, comment, folder, day)
        emit(f"{target.file}:{target.line}: {target.kind} {target.id}: "
             f"{record.verdict.replace('_', ' ')} by {record.by} ({record.role}), "
             f"{record.date}, content sha256 {record.sha256[:12]}\n")

    @app.command("list")
    def list_(folder: Optional[Path] = typer.Argument(None, help="Rules folder."),
              rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                   help="Rules folder (or the argument)."),
              fmt: str = typer.Option("text", "--format",
                                      help="text (a table) or json (every rule in full, "
                                           "the generated ones too)."),
              all_rules: bool = typer.Option(False, "--all",
                                             help="Also the retired and draft rules, "
                                                  "with their status.")) -> None:
        """The active rules as a table: id, stage, priority, kind, file:line, title."""
        if fmt not in ("text", "json"):
            fail(f"unknown list format '{fmt}'; use text or json")
        emit(guarded(review.list_rules, _rules_folder(folder, rules, fail), fmt, all_rules))

    @app.command("show")
    def show(rule_id: str = typer.Argument(..., help="A rule id."),
             folder: Optional[Path] = typer.Argument(None, help="Rules folder."),
             rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                  help="Rules folder (or the argument).")
             ) -> None:
        """One rule in full, with its evidence and what it outranks (a retired or draft
        rule too, marked so)."""
        emit(guarded(review.show_rule, rule_id, _rules_folder(folder, rules, fail)))

    @app.command("lock")
    def lock(folder: Optional[Path] = typer.Argument(None, help="Rules folder."),
             rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                  help="Rules folder (or the argument).")
             ) -> None:
        """Record the rule set's version with its content hash in versions.lock: `rules
        check` then warns when the rules change and the version does not."""
        path, version, sha, added = guarded(review.lock, _rules_folder(folder, rules, fail))
        emit(f"{path}: version {version}, content sha256 {sha[:12]}"
             f"{'' if added else ' (already recorded)'}\n")


def register_more(app: typer.Typer, guarded: Callable, fail: Callable, emit: Callable) -> None:
    """`rules test`, `rules diff`, `rules graph`."""

    @app.command("test")
    def test(folder: Optional[Path] = typer.Argument(None, help="Rules folder (default: shipped)."),
             scenarios: Optional[Path] = typer.Option(
                 None, "--scenarios", help="Scenario folder (default: scenarios/ beside the "
                                           "rules, or the shipped ones)."),
             coverage: bool = typer.Option(True, "--coverage/--no-coverage"),
             rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                  help="Rules folder (or the argument).")
             ) -> None:
        """Run the scenario files; print failures as expected-vs-got and a closing line."""
        report = guarded(review.test, _rules_folder(folder, rules, fail), scenarios)
        emit(review.format_test(report, coverage))
        if report.failed:
            raise typer.Exit(1)

    @app.command("diff")
    def diff_(old: Path = typer.Argument(..., help="The rules folder before the change."),
              new: Path = typer.Argument(..., help="The rules folder after the change."),
              scenarios: Optional[Path] = typer.Option(None, "--scenarios"),
              examples: Optional[Path] = typer.Option(None, "--examples",
                                                      help="Also compare these patients."),
              patients: Optional[list[str]] = typer.Option(
                  None, "--patients", help="A cohort (folder, files, glob or JSON Lines): "
                  "how many patients change step, old -> new, with examples.")) -> None:
        """Rules added, removed and changed, and every patient whose step changes."""
        emit(review.format_diff(guarded(review.diff, old, new, scenarios, examples,
                                        patients)))

    @app.command("site")
    def site(out: Path = typer.Argument(..., help="Folder to write the rulebook into."),
             folder: Optional[Path] = typer.Option(None, "--rules", help="Rules folder."),
             since: Optional[str] = typer.Option(
                 None, "--since", help="The version to compare with on the changes page: "
                 "a rules folder or a git ref (default: the newest commit whose "
                 "ruleset.yaml is approved)."),
             patients: Optional[list[str]] = typer.Option(
                 None, "--patients", help="A cohort for the changes page's impact table."),
             scenarios: Optional[Path] = typer.Option(None, "--scenarios")) -> None:
        """Write the rule set as a static HTML rulebook that opens from disk."""
        from ..rulebook.site import build
        report = guarded(build, out, folder, since, patients, scenarios)
        total = {s: sum(report.counts[k][s] for k in report.counts) for s in
                 ("approved", "stale", "changes_requested", "rejected", "unreviewed")}
        emit(f"{report.out}/index.html: {report.pages} pages ({report.rules} rules, "
             f"{report.drugs} drugs, {report.thresholds} thresholds); status "
             f"{report.status}; sign-off: " + ", ".join(f"{n} {s.replace('_', ' ')}"
                                                       for s, n in total.items() if n)
             + f"; scenarios {report.scenarios - report.failed}/{report.scenarios} pass\n")

    @app.command("graph")
    def graph(folder: Optional[Path] = typer.Argument(None, help="Rules folder."),
              rules: Optional[Path] = typer.Option(None, RULES_OPTION,
                                                   help="Rules folder (or the argument)."),
              fmt: str = typer.Option("mermaid", "--format", help="mermaid or dot."),
              drug: Optional[str] = typer.Option(
                  None, "--drug", help="Only what leads to this drug (its starts and "
                                       "exclusions, and the facts they rest on)."),
              stage: Optional[str] = typer.Option(
                  None, "--stage", help="Only what leads to this stage's drugs and the "
                                        "rules written for it.")) -> None:
        """The ladder as a flowchart (Mermaid renders in Markdown viewers); each edge
        carries its rule's id, priority and whole condition."""
        if fmt not in ("mermaid", "dot"):
            fail(f"unknown graph format '{fmt}'; use mermaid or dot")
        emit(guarded(review.graph, _rules_folder(folder, rules, fail), fmt, drug, stage))
