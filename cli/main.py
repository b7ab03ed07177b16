"""`cledecide`: each command parses its options and calls one library function."""
from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn, Optional

import typer

from .. import CledecideError, evaluate_file, to_json, to_text
from ..engine.safetext import visible
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
    jsonl = "jsonl"
    csv = "csv"


def fail(error: Exception | str) -> NoReturn:
    """One line on stderr, exit 2: the user's input or rules need fixing. Characters
    from the input (a newline in a file name, a terminal escape) are shown escaped."""
    typer.echo(f"error: {visible(str(error), one_line=True)}", err=True)
    raise typer.Exit(2)


def emit(text: str) -> None:
    """Write the output. A reader that closed the pipe ends the command quietly, as Unix
    tools do; any other write failure (a full disk) is one line and exit 1."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        # stdout is gone or full: point it at /dev/null so nothing is flushed at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(exc, BrokenPipeError):
            raise typer.Exit(0) from None
        typer.echo(f"error: cannot write the output: {(exc.strerror or str(exc)).lower()}",
                   err=True)
        raise typer.Exit(1) from None


def internal(error: Exception) -> NoReturn:
    """A bug: a short message and exit 1; a traceback only with CLEDECIDE_DEBUG=1."""
    if os.environ.get("CLEDECIDE_DEBUG") == "1":
        raise error
    typer.echo(f"internal error: {type(error).__name__}: "
               f"{visible(str(error), one_line=True)} "
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
        from .. import __version__
        typer.echo(f"cledecide {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version,
                                              is_eager=True, help="Show the version.")) -> None:
    """Decision support for cutaneous lupus erythematosus treatment; never an order."""


RULES_OPTION = typer.Option(None, "--rules", help="Rules folder (default: the shipped rules).")


@app.command()
def evaluate(patients: list[str] = typer.Argument(
                 ..., help="Patient records (YAML or JSON), folders, globs or JSON Lines files."),
             fmt: Optional[Format] = typer.Option(
                 None, "--format", "-f", help="text for a clinician, json for programs; "
                 "jsonl or csv for many patients (the default for more than one)."),
             rules: Optional[Path] = RULES_OPTION,
             jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, max=256,
                                                help="Processes for many patients "
                                                     "(default: the number of cores)."),
             audit: Optional[Path] = typer.Option(None, "--audit", help="Append the "
                                                  "evaluation to this audit database."),
             as_of: Optional[str] = typer.Option(None, "--as-of", help="For FHIR input: "
                                                 "the record as it stood on this date "
                                                 "(default: Bundle.timestamp, else today).")
             ) -> None:
    """Suggest one next treatment step for each patient, with why and why not."""
    from ..cohort.stream import is_one_record
    on = _date_option(as_of)
    if len(patients) == 1 and is_one_record(patients[0]):
        if fmt in (None, Format.text, Format.json):  # one patient: the contract output
            explanation = guarded(_one_or_none, patients[0], rules, on)
            if explanation is None and fmt is not None:
                fail(f"{patients[0]}: holds several patients; use --format jsonl or csv")
            if explanation is not None:
                emit(_one(explanation, fmt, audit, patients[0]))
                return
    from .cohort import run_cohort
    raise typer.Exit(guarded(run_cohort, patients, (fmt or Format.jsonl).value,
                             str(rules) if rules else None, jobs, emit, audit, on))


def _one(explanation, fmt: Optional[Format], audit: Optional[Path], source: str) -> str:
    """One patient's output: the result, or a patient with no advice (deceased, no CLE
    on record: exit 0, not advice)."""
    from .. import NoAdviceResult
    if isinstance(explanation, NoAdviceResult):
        return explanation.json() if fmt is Format.json else explanation.text()
    if audit is not None:
        guarded(_audit, audit, explanation, source)
    return to_json(explanation) if fmt is Format.json else to_text(explanation)


def _audit(path: Path, explanation, source: str) -> None:
    from ..service.audit import open_log, record_result
    from ..engine.render import result_dict
    log = open_log(path, create_key=True)
    try:
        record_result(log, result_dict(explanation), "cli", Path(source).name)
    finally:
        log.close()


def _one_or_none(path: str, rules: Optional[Path], as_of=None):
    """One patient's explanation, or None when the file holds several (a FHIR Bundle
    of a clinic's patients is a cohort)."""
    from .. import ManyPatients
    try:
        return evaluate_file(path, rules, as_of)
    except ManyPatients:
        return None


@app.command()
def schema(kind: str = typer.Argument(..., help=f"One of: {', '.join(SCHEMA_KINDS)}."),
           rules: Optional[Path] = RULES_OPTION) -> None:
    """Print a JSON Schema (2020-12) for editors and other tools; its drugs are those of
    the rule set's catalogue (drugs.yaml)."""
    from ..engine.validate import catalogue_drugs
    from ..schemas import SCHEMAS, schema as schema_of
    if kind not in SCHEMAS:
        fail(f"unknown schema '{kind}'; choose one of {', '.join(SCHEMAS)}")
    drugs = guarded(catalogue_drugs, rules) if rules else None
    emit(json.dumps(schema_of(kind, drugs), indent=2, sort_keys=True) + "\n")


import_app = typer.Typer(help="Read records from other formats (FHIR R4).",
                         no_args_is_help=True)
export_app = typer.Typer(help="Write records in other formats (FHIR R4 test data, the "
                              "rule set as a PlanDefinition).",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


@import_app.command("fhir")
def import_fhir(bundle: Path = typer.Argument(..., help="A FHIR R4 Bundle or CDS Hooks "
                                              "prefetch object (JSON)."),
                rules: Optional[Path] = RULES_OPTION,
                as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluation date "
                                                    "(default: Bundle.timestamp, else today).")
                ) -> None:
    """Print the patient record a FHIR input maps to, and what was used, ignored and why."""
    from ..fhir_r4.files import import_text
    emit(guarded(import_text, bundle, rules, _date_option(as_of)))


@export_app.command("fhir")
def export_fhir(patient: Path = typer.Argument(..., help="A patient record (YAML or JSON)."),
                rules: Optional[Path] = RULES_OPTION,
                ehr: bool = typer.Option(False, "--ehr", help="Write it the way EHRs do: "
                                         "extra resources, several codings, mixed references.")
                ) -> None:
    """Print a patient record as a FHIR R4 Bundle (the FHIR twin of an example)."""
    from ..fhir_r4.files import export_text
    emit(guarded(export_text, patient, rules, ehr))


@export_app.command("plandefinition")
def export_plandefinition(rules: Optional[Path] = RULES_OPTION) -> None:
    """Print the rule set as a FHIR R4 PlanDefinition with its sign-off (validated)."""
    from ..rulebook.plandefinition import export_text as plan_text
    emit(guarded(plan_text, rules))


def _date_option(text: str | None):
    import datetime as dt
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--as-of must be a date written YYYY-MM-DD, got {text!r}")


from . import review  # noqa: E402  (registers the `rules` commands)

review.register(rules_app, guarded, fail, emit)
from . import serve as _serve  # noqa: E402

_serve.register(app, guarded, fail, emit)
review.register_more(rules_app, guarded, fail, emit)


def run() -> None:
    """The console entry point: usage errors (an unknown option, a number out of range)
    are one line and exit 2, like every other input error; no boxes, no tracebacks."""
    try:
        code = _main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _exit(code)


def _main() -> int:
    try:  # typer >= 0.22 vendors click; older versions depend on it
        from typer._click import exceptions as click  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover
        from click import exceptions as click  # type: ignore[no-redef]
    try:
        code = app(standalone_mode=False)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        typer.echo(f"error: {visible(exc.format_message(), one_line=True)}{where}; "
                   "see --help", err=True)
        return 2
    except click.ClickException as exc:
        typer.echo(f"error: {visible(exc.format_message(), one_line=True)}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, getattr(click, "Abort", KeyboardInterrupt)):
        return 130
    return code if isinstance(code, int) else 0


def _exit(code: int) -> NoReturn:
    """Flush what we wrote, then leave without the interpreter's teardown: freeing the
    compiled rules and every module object costs about 60 ms, a fifth of a cold
    `cledecide evaluate`, and does nothing a command needs (files and audit databases
    are closed by the commands themselves)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and code == 0:
                code = 1  # the output did not all arrive
    os._exit(code)
