"""`cledecide rules ...`: reviewer commands, each a thin layer over cledecide.engine.review."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from cledecide.engine import review


def register(app: typer.Typer, guarded: Callable, fail: Callable) -> None:
    """Attach the reviewer commands to the `rules` group."""

    @app.command("check")
    def check(folder: Optional[Path] = typer.Argument(None, help="Rules folder (default: shipped)."),
              strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings.")) -> None:
        """Check a rule set: errors exit 2, warnings exit 0 (1 with --strict)."""
        report = guarded(review.check, folder)
        typer.echo(review.format_findings(report), nl=False)
        if report.errors:
            raise typer.Exit(2)
        if strict and report.warnings:
            raise typer.Exit(1)

    @app.command("list")
    def list_(folder: Optional[Path] = typer.Argument(None, help="Rules folder.")) -> None:
        """The rules as a table: id, stage, priority, kind, title."""
        typer.echo(guarded(review.list_rules, folder), nl=False)

    @app.command("show")
    def show(rule_id: str = typer.Argument(..., help="A rule id."),
             folder: Optional[Path] = typer.Option(None, "--rules", help="Rules folder.")) -> None:
        """One rule in full, with its evidence."""
        typer.echo(guarded(review.show_rule, rule_id, folder), nl=False)
