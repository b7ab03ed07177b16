"""`cledecide`: each command parses its options and calls one library function."""
from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import NoReturn, Optional

import typer

from cledecide import CledecideError, evaluate_file, to_json, to_text
SCHEMA_KINDS = ("patient", "result", "rules", "ruleset", "drugs", "evidence")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Decision support for cutaneous lupus erythematosus treatment. "
                       "Suggestions are for a clinician; never an order.")
rules_app = typer.Typer(no_args_is_help=True,
                        help="Reviewer tools: check, test, diff, draw and read the rules.")
app.add_typer(rules_app, name="rules")


class Format(str, Enum):
    text = "text"
    json = "json"


def fail(error: Exception) -> NoReturn:
    """One line on stderr, exit 2: the user's input or rules need fixing."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def internal(error: Exception) -> NoReturn:
    """A bug: a short message and exit 1; a traceback only with CLEDECIDE_DEBUG=1."""
    if os.environ.get("CLEDECIDE_DEBUG") == "1":
        raise error
    typer.echo(f"internal error: {type(error).__name__}: {error} "
               f"(set CLEDECIDE_DEBUG=1 for a traceback)", err=True)
    raise typer.Exit(1)


def guarded(func, *args, **kwargs):
    """Run a library call: user errors exit 2, bugs exit 1, never a traceback."""
    try:
        return func(*args, **kwargs)
    except CledecideError as exc:
        fail(exc)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes exit 1
        internal(exc)


def _version(value: bool) -> None:
    if value:
        from cledecide import __version__
        typer.echo(f"cledecide {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version,
                                              is_eager=True, help="Show the version.")) -> None:
    """Decision support for cutaneous lupus erythematosus treatment; never an order."""


RULES_OPTION = typer.Option(None, "--rules", help="Rules folder (default: the shipped rules).")


@app.command()
def evaluate(patient: Path = typer.Argument(..., help="Patient record (YAML or JSON)."),
             fmt: Format = typer.Option(Format.text, "--format", "-f",
                                        help="text for a clinician, json for programs."),
             rules: Optional[Path] = RULES_OPTION) -> None:
    """Suggest one next treatment step for a patient, with why and why not."""
    explanation = guarded(evaluate_file, patient, rules)
    typer.echo(to_json(explanation) if fmt is Format.json else to_text(explanation),
               nl=False)


@app.command()
def schema(kind: str = typer.Argument(..., help=f"One of: {', '.join(SCHEMA_KINDS)}.")) -> None:
    """Print a JSON Schema (2020-12) for editors and other tools."""
    from cledecide.engine.schema import SCHEMAS, schema as schema_of
    if kind not in SCHEMAS:
        fail(f"unknown schema '{kind}'; choose one of {', '.join(SCHEMAS)}")
    typer.echo(json.dumps(schema_of(kind), indent=2, sort_keys=True))


from cledecide.cli import review  # noqa: E402  (registers the `rules` commands)

review.register(rules_app, guarded, fail)
review.register_more(rules_app, guarded, fail)
