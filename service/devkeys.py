"""A development issuer and its config: `cledecide serve dev-setup DIR` makes an ES384
key pair (the EHR's), its JWKS, the audit secret and the checkpoint signing key (kept in
DIR/secrets, outside the audit database) and a config for 127.0.0.1;
`serve dev-token DIR` signs a token as the EHR would."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .config import load_config

PATIENT_VIEW = "cledecide-patient-view"


def dev_setup(folder: Path | str, port: int = 8080) -> str:
    """The development issuer, keys and config; the config's path."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from .audit import Keys
    from .checkpoint import make_key
    folder = Path(folder)
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    (folder / "secrets").chmod(0o700)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (folder / "dev-private-key.pem").write_bytes(pem)
    (folder / "dev-private-key.pem").chmod(0o600)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "dev-1", "alg": "ES384", "use": "sig"})
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=1))
    if not (folder / "secrets" / "audit.key").exists():
        Keys.read(folder / "secrets" / "audit.key", create=True)
    if not (folder / "secrets" / "checkpoint-key.pem").exists():
        make_key(folder / "secrets" / "checkpoint-key.pem")
    url = f"http://127.0.0.1:{port}/cds-services"
    (folder / "config.yaml").write_text(
        "# cledecide serve --config: a DEVELOPMENT issuer (its private key is beside it)\n"
        f"service_url: {url}\nissuers:\n  dev-ehr: {{jwks_file: jwks.json}}\n"
        "audit: audit.sqlite            # or postgresql://USER@HOST/DB (shared store)\n"
        "# secrets outside the audit database: the chain and patient-id key, and the key\n"
        "# that signs checkpoints (keep both off the database's disk and backups)\n"
        "audit_key_file: secrets/audit.key\n"
        "checkpoint_key_file: secrets/checkpoint-key.pem\n"
        "checkpoints: checkpoints.jsonl   # copy its lines to a store no one here can edit\n"
        "checkpoint_every_rows: 1000\ncheckpoint_every_minutes: 60\n"
        "max_body_bytes: 1000000\nrequest_timeout_seconds: 10\nfhir_timeout_seconds: 5\n"
        "evaluation_threads: 2\ncors_origins: []  # e.g. [https://ehr.example.org]\n")
    return str(folder / "config.yaml")


def dev_token(folder: Path | str, audience: str | None = None, lifetime: int = 300,
              service: str = PATIENT_VIEW) -> str:
    """A signed token from the development issuer, for one endpoint (its `aud`)."""
    import uuid

    import jwt
    folder = Path(folder)
    config = load_config(folder / "config.yaml")
    now = int(time.time())
    claims = {"iss": "dev-ehr", "aud": audience or f"{config.service_url}/{service}",
              "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4()),
              "sub": "dev-ehr-client"}
    return jwt.encode(claims, (folder / "dev-private-key.pem").read_bytes(),
                      algorithm="ES384", headers={"kid": "dev-1", "typ": "JWT"})
