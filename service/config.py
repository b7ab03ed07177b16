"""The service's config (YAML): where the audit lives, the secrets kept outside it, the
trusted issuers, limits, CORS origins and the checkpoint policy. Relative paths are
relative to the config file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engine.errors import InputError


@dataclass
class Config:
    service_url: str
    issuers: dict[str, dict[str, str]]
    audit: str                       # a SQLite file path or a postgresql:// URL
    audit_key_file: Path | None = None
    checkpoint_key_file: Path | None = None
    checkpoints: Path | None = None
    checkpoint_every_rows: int = 1000
    checkpoint_every_minutes: float = 60.0
    max_body_bytes: int = 1_000_000
    request_timeout: float = 10.0
    fhir_timeout: float = 5.0
    fhir_connections: int = 20
    evaluation_threads: int = 2
    cors_origins: tuple[str, ...] = ()
    insecure: bool = False
    base: Path = field(default_factory=Path.cwd)

    @property
    def is_postgres(self) -> bool:
        return self.audit.startswith(("postgresql://", "postgres://"))


def _path(base: Path, value: Any) -> Path | None:
    return None if value in (None, "") else base / str(value)


def load_config(path: Path | str) -> Config:
    """The config at `path`; one clear line when it cannot be used."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the config: {exc}".split("\n")[0], str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("issuers"), dict) \
            or not data.get("service_url") or not data["issuers"]:
        raise InputError("the config needs service_url and at least one issuer "
                         "(issuers: {NAME: {jwks_file: ...} or {jwks_url: ...}})", str(path))
    base = path.resolve().parent
    audit = str(data.get("audit", "audit.sqlite"))
    if not audit.startswith(("postgresql://", "postgres://")):
        audit = str(base / audit)
    origins = data.get("cors_origins") or []
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise InputError("cors_origins must be a list of origins "
                         "(e.g. https://ehr.example.org)", str(path), None, "cors_origins")
    try:
        return Config(
            service_url=str(data["service_url"]).rstrip("/"),
            issuers={str(k): dict(v) for k, v in data["issuers"].items()}, audit=audit,
            audit_key_file=_path(base, data.get("audit_key_file")),
            checkpoint_key_file=_path(base, data.get("checkpoint_key_file")),
            checkpoints=_path(base, data.get("checkpoints")),
            checkpoint_every_rows=int(data.get("checkpoint_every_rows", 1000)),
            checkpoint_every_minutes=float(data.get("checkpoint_every_minutes", 60)),
            max_body_bytes=int(data.get("max_body_bytes", 1_000_000)),
            request_timeout=float(data.get("request_timeout_seconds", 10)),
            fhir_timeout=float(data.get("fhir_timeout_seconds", 5)),
            fhir_connections=int(data.get("fhir_connections", 20)),
            evaluation_threads=int(data.get("evaluation_threads", 2)),
            cors_origins=tuple(o.rstrip("/") for o in origins), base=base)
    except (TypeError, ValueError) as exc:
        raise InputError(f"a config value has the wrong type: {exc}", str(path)) from None
