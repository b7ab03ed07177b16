"""`cledecide serve` (the CDS Hooks service), its development issuer, and `cledecide
audit`: thin commands over cledecide.service.server and cledecide.service.audit."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

serve_app = typer.Typer(help="Run the CDS Hooks 2.0 service the EHR calls.",
                        invoke_without_command=True)
audit_app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)
CONFIG = typer.Option(None, "--config", help="The service config: its audit key, and the "
                      "checkpoints to check (else $CLEDECIDE_AUDIT_KEY_FILE or DB.key).")


def register(app: typer.Typer, guarded, fail, emit) -> None:
    app.add_typer(serve_app, name="serve")
    app.add_typer(audit_app, name="audit")

    @serve_app.callback()
    def serve(ctx: typer.Context,
              host: str = typer.Option("127.0.0.1", "--host"),
              port: int = typer.Option(8080, "--port", min=1, max=65535),
              rules: Optional[Path] = typer.Option(None, "--rules", help="Rules folder."),
              config: Optional[Path] = typer.Option(None, "--config", help="Service config: "
                                                    "service_url, trusted issuers, audit."),
              insecure_dev: bool = typer.Option(False, "--insecure-dev", help="No "
                                                "authentication; binds to loopback only."),
              workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker "
                                          "processes; they share the audit chain and the "
                                          "seen tokens (see docs/service.md before "
                                          "raising it)."),
              allow_draft: bool = typer.Option(False, "--allow-draft", help="Serve a rule "
                                               "set that is not clinically approved (for "
                                               "testing; every card says so).")
              ) -> None:
        """Serve discovery, patient-view, order-sign and feedback (CDS Hooks 2.0)."""
        if ctx.invoked_subcommand is not None:
            return
        from ..service.server import serve as run
        guarded(run, host, port, str(rules) if rules else None,
                str(config) if config else None, insecure_dev, workers, allow_draft)

    @serve_app.command("dev-setup")
    def dev_setup(folder: Path = typer.Argument(..., help="Folder for the development "
                                                "key, JWKS and config."),
                  port: int = typer.Option(8080, "--port", min=1, max=65535)) -> None:
        """Make a development issuer (key pair, JWKS) and a config for 127.0.0.1."""
        from ..service.server import dev_setup as setup
        emit(guarded(setup, folder, port) + "\n")

    @serve_app.command("dev-token")
    def dev_token(folder: Path = typer.Argument(..., help="The dev-setup folder."),
                  audience: Optional[str] = typer.Option(None, "--aud", help="Default: "
                                                         "the service's endpoint URL."),
                  service: str = typer.Option("cledecide-patient-view", "--service")) -> None:
        """Print a signed token from the development issuer (what an EHR sends), for one
        endpoint: its `aud` is that endpoint's URL."""
        from ..service.server import dev_token as token
        emit(guarded(token, folder, audience, 300, service) + "\n")

    def _config(config: Optional[Path]):
        from ..service.config import load_config
        return None if config is None else guarded(load_config, config)

    @audit_app.command("verify")
    def verify(path: str = typer.Argument(..., help="The audit database (file or "
                                          "postgresql:// URL)."),
               config: Optional[Path] = CONFIG) -> None:
        """Check the MAC chain and every signed checkpoint (read-only); name the first
        row changed, removed or inserted and the checkpoint a truncation breaks."""
        from ..service.checkpoint import verify_log
        rows, held, problems = guarded(verify_log, path, _config(config))
        if problems:
            for p in problems:
                typer.echo(f"TAMPERED: {p}", err=True)
            raise typer.Exit(1)
        note = (f"; {held} signed checkpoint(s) hold" if config is not None else
                "; no checkpoints checked (give --config)")
        emit(f"intact: {rows} rows, MAC chain verified{note}\n")

    @audit_app.command("checkpoint")
    def checkpoint(path: str = typer.Argument(..., help="The audit database."),
                   config: Path = typer.Option(..., "--config", help="Service config "
                                               "(checkpoint_key_file, checkpoints).")) -> None:
        """Sign the chain's head now; append it to the checkpoints file and print it."""
        import json

        from ..service.checkpoint import checkpoint_now
        emit(json.dumps(guarded(checkpoint_now, path, _config(config))) + "\n")

    @audit_app.command("show")
    def show(path: str = typer.Argument(..., help="The audit database."),
             config: Optional[Path] = CONFIG,
             patient: Optional[str] = typer.Option(None, "--patient", help="A patient id "
                                                   "(keyed with the audit key to find it)."),
             since: Optional[str] = typer.Option(None, "--since", help="From this day "
                                                 "(YYYY-MM-DD, UTC)."),
             date: Optional[str] = typer.Option(None, "--date", help="On this day only."),
             limit: int = typer.Option(50, "--limit", min=1, max=100000)) -> None:
        """What was suggested, when, under which rule set and engine; with the cards,
        their hookInstance and what the clinician did with them."""
        from ..service.trail import show as rows
        cfg = _config(config)
        emit(guarded(rows, path, cfg.audit_key_file if cfg else None, patient, since, date,
                     limit))
