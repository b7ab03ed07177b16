"""`cledecide serve` (the CDS Hooks service), its development issuer, and `cledecide
audit`: thin commands over cledecide.service.server and cledecide.service.audit."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

serve_app = typer.Typer(help="Run the CDS Hooks 2.0 service the EHR calls.",
                        invoke_without_command=True)
audit_app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)


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
                  audience: Optional[str] = typer.Option(None, "--aud")) -> None:
        """Print a signed token from the development issuer (what an EHR sends)."""
        from ..service.server import dev_token as token
        emit(guarded(token, folder, audience) + "\n")

    @audit_app.command("verify")
    def verify(path: Path = typer.Argument(..., help="The audit database.")) -> None:
        """Walk the hash chain; name the first row changed, removed or inserted."""
        from ..service.audit import verify as check
        count, problems = guarded(check, path)
        if problems:
            for p in problems:
                typer.echo(f"TAMPERED: {p}", err=True)
            raise typer.Exit(1)
        emit(f"intact: {count} rows, hash chain verified\n")

    @audit_app.command("show")
    def show(path: Path = typer.Argument(..., help="The audit database."),
             limit: int = typer.Option(50, "--limit", min=1, max=100000)) -> None:
        """List the latest rows (patient ids appear only as keyed hashes)."""
        from ..service.audit import show as rows
        emit(guarded(rows, path, limit))
