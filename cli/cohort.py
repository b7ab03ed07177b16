"""`cledecide evaluate` with many patients: streams records through the library's
cohort runner, writes one line (or row) per patient as it comes, and closes with a
summary table on stderr. A progress bar shows on a terminal only."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import typer

from .. import CledecideError
from ..cohort import stream as cohort


def run_cohort(paths: list[str], fmt: str, rules_dir: str | None, jobs: int | None,
               emit: Callable[[str], None], audit: Any = None, as_of: Any = None) -> int:
    """Evaluate every record; 0 when all were evaluated, 2 when any failed. With an
    audit database, each evaluated patient is one row of its chain."""
    cohort.load_rules(rules_dir)  # a broken rule set: one error, nothing run
    log = None
    if audit is not None:
        from ..service.audit import open_log, record_result
        log = open_log(audit, create_key=True)
    summary = cohort.Summary()
    view = "jsonl" if fmt == "json" else fmt
    outcomes = cohort.evaluate_stream(cohort.records(paths), rules_dir,
                                      jobs or cohort.default_jobs(), view=view,
                                      keep_result=log is not None, as_of=as_of)
    if fmt == "csv":
        emit(cohort.csv_header())
    progress = _progress() if sys.stderr.isatty() else None
    task = progress.add_task("patients", total=None, rate="") if progress else None
    started = time.monotonic()
    try:
        for outcome in outcomes:
            summary.add(outcome)
            if log is not None and outcome.result is not None \
                    and "recommendation" in outcome.result:  # no advice: nothing to audit
                record_result(log, outcome.result, "cli-cohort", outcome.source)
            if outcome.error:
                typer.echo(f"error: {outcome.error}", err=True)
            emit(outcome.line or "")
            if progress is not None:
                rate = summary.total / max(time.monotonic() - started, 1e-6)
                progress.update(task, advance=1, rate=f"{rate:.0f}/s")
    finally:
        if progress is not None:
            progress.stop()
        if log is not None:
            log.close()
    if summary.total == 0:
        raise CledecideError(f"no patient records in {', '.join(paths)} (*.yaml, *.yml, "
                             "*.json, or lines of *.jsonl)")
    typer.echo(summary.text(), err=True, nl=False)
    return 2 if summary.failed else 0


def _progress():
    from rich.console import Console
    from rich.progress import (MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                        MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    progress.start()
    return progress
