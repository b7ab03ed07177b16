"""The audit trail a reviewer can use (issues 22 and 20 section 4): a chain keyed with a
secret outside the database, `audit verify` read-only and checked against signed
checkpoints kept outside it, `audit show --patient`, every refused request recorded
without a token or patient data, and PostgreSQL as the store of several instances."""
from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from cledecide.service.audit import GENESIS, AuditLog, Keys, open_log
from cledecide.service.store import COLUMNS

from conftest import EXAMPLES
from servicekit import (NAMES, OS, PV, Server, configure, free_port, order, request_for,
                        running)
from test_examples import CLI


def cli(*args: object, key: Path | None = None) -> subprocess.CompletedProcess:
    import os
    env = {**os.environ, **({"CLEDECIDE_AUDIT_KEY_FILE": str(key)} if key else {})}
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def _log_with_rows(path: Path, n: int = 5) -> AuditLog:
    log = open_log(path, create_key=True)
    for i in range(n):
        log.append(kind="evaluate", service="cli", request_id=f"r{i}", ruleset_name="x",
                   ruleset_version="1", ruleset_sha256="s", input_sha256="i",
                   patient_hash=log.patient_hash(f"p{i}"), recommendation={"a": i}, cards=[])
    return log


def _plain_rehash(db: sqlite3.Connection, seq: int) -> None:
    """What someone with only the file would do: recompute the links with sha256."""
    names = ["seq", *COLUMNS, "prev_hash", "row_hash"]
    prev = db.execute("SELECT row_hash FROM audit WHERE seq=?", (seq - 1,)).fetchone()
    row = dict(zip(names, db.execute(f"SELECT {', '.join(names)} FROM audit WHERE seq=?",
                                     (seq,)).fetchone()))
    body = json.dumps([seq, *[row[c] for c in COLUMNS]], separators=(",", ":"))
    digest = hashlib.sha256(((prev[0] if prev else GENESIS) + "\n" + body).encode()).hexdigest()
    db.execute("UPDATE audit SET row_hash=? WHERE seq=?", (digest, seq))
    db.execute("UPDATE meta SET value=? WHERE key='head'", (f"{seq}:{digest}:00",))


def test_a_rewritten_and_rehashed_row_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET recommendation='{\"a\":99}' WHERE seq=5")
        _plain_rehash(db, 5)
    proc = cli("audit", "verify", path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith("TAMPERED: row 5: its content was changed")


def test_a_forged_appended_row_and_a_deleted_middle_row_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    log = _log_with_rows(path)
    rows = list(log.rows())
    log.close()
    with sqlite3.connect(path) as db:
        fake = dict(rows[-1], seq=6, prev_hash=rows[-1]["row_hash"], request_id="forged")
        db.execute(f"INSERT INTO audit ({', '.join(fake)}) VALUES "
                   f"({', '.join('?' for _ in fake)})", tuple(fake.values()))
        _plain_rehash(db, 6)
        db.execute("DELETE FROM audit WHERE seq=2")
    proc = cli("audit", "verify", path)
    assert proc.returncode == 1
    assert "row 3: row(s) 2..2 were removed" in proc.stderr
    assert "row 6: its content was changed" in proc.stderr


def test_a_removed_tail_with_its_head_moved_back_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path).close()
    with sqlite3.connect(path) as db:
        old = db.execute("SELECT row_hash FROM audit WHERE seq=3").fetchone()[0]
        db.execute("DELETE FROM audit WHERE seq > 3")
        db.execute("UPDATE meta SET value=? WHERE key='head'", (f"3:{old}:deadbeef",))
    proc = cli("audit", "verify", path)
    assert proc.returncode == 1 and "chain head was rewritten" in proc.stderr


def test_audit_verify_is_read_only(tmp_path: Path) -> None:
    """A 0-byte file stays 0 bytes (no schema, no key written into it); an audit
    database is byte-identical after verify and no key file appears."""
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    proc = cli("audit", "verify", empty)
    assert proc.returncode == 2 and "not a cledecide audit database" in proc.stderr
    assert empty.stat().st_size == 0 and not Path(str(empty) + ".key").exists()
    path = tmp_path / "a.sqlite"
    _log_with_rows(path).close()
    before = path.read_bytes()
    assert cli("audit", "verify", path).returncode == 0
    assert path.read_bytes() == before
    assert cli("audit", "verify", tmp_path / "nothing.sqlite").returncode == 2
    assert not (tmp_path / "nothing.sqlite").exists()


def test_the_patient_key_is_not_in_the_database(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    _log_with_rows(path).close()
    secret = Keys.read(Path(str(path) + ".key")).secret
    data = path.read_bytes() + Path(str(path) + "-wal").read_bytes() \
        if Path(str(path) + "-wal").exists() else path.read_bytes()
    assert secret.hex().encode() not in data and secret not in data
    assert b"p1" not in data  # patient ids only as keyed hashes


def test_cli_evaluate_audit_appends_one_row(tmp_path: Path) -> None:
    path = tmp_path / "cli.sqlite"
    proc = cli("evaluate", EXAMPLES / "hcq-inadequate.yaml", "--audit", path)
    assert proc.returncode == 0, proc.stderr
    log = open_log(path, read_only=True)
    (row,) = list(log.rows())
    assert row["service"] == "cli" and "example-hcq" not in json.dumps(row)
    assert row["patient_hash"] == log.patient_hash("example-hcq-inadequate")
    assert row["engine_sha256"] and log.verify() == []


def test_cli_cohort_audit_appends_a_row_per_patient(tmp_path: Path) -> None:
    path = tmp_path / "cohort.sqlite"
    files = [str(EXAMPLES / f"{n}.yaml") for n in NAMES]
    proc = cli("evaluate", *files, "--format", "csv", "--jobs", "1", "--audit", path)
    assert proc.returncode == 0, proc.stderr
    log = open_log(path, read_only=True)
    rows = list(log.rows())
    assert len(rows) == len(NAMES) and {r["service"] for r in rows} == {"cli-cohort"}
    assert log.verify() == []


# ------------------------------------------------------------------ through the service

@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("audited"), checkpoint_every_rows=5) as srv:
        yield srv


def test_order_sign_rows_keep_the_verdict_per_draft_order(served: Server) -> None:
    body = request_for("widespread-scle-new", "order-sign",
                       [order("thalidomide", 100), order("hydroxychloroquine", 300)])
    cards = served.post(OS, body).json()["cards"]
    (row,) = [r for r in served.rows() if r["request_id"] == body["hookInstance"]]
    kept = json.loads(row["cards"])
    assert [c["uuid"] for c in kept] == [c["uuid"] for c in cards]
    assert [(c["drug"], c["verdict"]) for c in kept] == [("thalidomide", "critical"),
                                                         ("hydroxychloroquine", "info")]


def test_audit_show_answers_what_we_suggested_for_this_patient(served: Server) -> None:
    body = request_for("hcq-inadequate")
    card = served.post(PV, body).json()["cards"][0]
    served.post(PV, request_for("widespread-scle-new"))
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                        "outcomeTimestamp": "2026-11-29T10:00:00Z"}]}
    assert served.post(f"{PV}/feedback", fb).status_code == 200
    today = served.rows()[-1]["time"][:10]
    proc = cli("audit", "show", served.audit, "--config", served.config,
               "--patient", "example-hcq-inadequate", "--since", today)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert body["hookInstance"] in out and card["uuid"] in out
    assert "feedback: overridden" in out and "cle-default" in out and "engine " in out
    assert "example-hcq" not in "".join(r["patient_hash"] for r in served.rows())
    assert "widespread" not in out.lower()  # another patient's answers are not shown
    on_day = cli("audit", "show", served.audit, "--config", served.config,
                 "--patient", "example-hcq-inadequate", "--date", "2001-01-01")
    assert on_day.stdout == "no rows\n"


def test_refused_requests_are_recorded_without_token_or_patient_data(served: Server) -> None:
    token = served.token()
    before = len(served.rows())
    assert served.post(PV, request_for("hcq-inadequate"), token="abc.def.ghi").status_code == 401
    big = json.dumps({"hook": "patient-view", "pad": "x" * 1_100_000}).encode()
    assert served.post(PV, big, token).status_code == 413
    body = request_for("hcq-inadequate")
    body["prefetch"]["patient"]["gender"] = "unknown"
    assert served.post(PV, body).status_code == 422
    rows = served.rows()[before:]
    assert [(r["kind"], r["status"]) for r in rows] == [("rejected", "401"),
                                                       ("rejected", "413"),
                                                       ("rejected", "422")]
    text = json.dumps(rows)
    assert token not in text and "abc.def" not in text and "example-hcq" not in text
    assert rows[0]["patient_hash"] == "" and rows[1]["patient_hash"] == ""


def test_the_service_signs_a_checkpoint_every_n_rows(served: Server) -> None:
    for name in NAMES[:5]:
        served.post(PV, request_for(name))
    lines = (served.folder / "checkpoints.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x)["seq"] % 5 == 0 for x in lines)
    proc = cli("audit", "verify", served.audit, "--config", served.config)
    assert proc.returncode == 0 and "checkpoint(s) hold" in proc.stdout, proc.stderr


def test_truncation_behind_a_checkpoint_is_named(tmp_path: Path) -> None:
    """Even someone holding the chain key (who can move the head back with a valid MAC)
    cannot shorten or rewrite the chain behind a signed checkpoint kept elsewhere."""
    configure(tmp_path, free_port())
    config, db = tmp_path / "config.yaml", tmp_path / "audit.sqlite"
    keyfile = tmp_path / "secrets" / "audit.key"
    log = open_log(db, keyfile)
    for i in range(6):
        log.append(kind="evaluate", service="cli", request_id=f"r{i}", cards=[])
    proc = cli("audit", "checkpoint", db, "--config", config)
    assert proc.returncode == 0 and json.loads(proc.stdout)["seq"] == 6
    assert cli("audit", "verify", db, "--config", config).returncode == 0
    keys = log.keys
    log.close()
    with sqlite3.connect(db) as conn:  # the insider: drop rows 5-6, re-MAC the head
        link = conn.execute("SELECT row_hash FROM audit WHERE seq=4").fetchone()[0]
        mac = hmac.new(keys.chain, f"head:4:{link}".encode(), hashlib.sha256).hexdigest()
        conn.execute("DELETE FROM audit WHERE seq > 4")
        conn.execute("UPDATE meta SET value=? WHERE key='head'", (f"4:{link}:{mac}",))
    assert cli("audit", "verify", db, key=keyfile).returncode == 0  # the chain alone can't
    proc = cli("audit", "verify", db, "--config", config)
    assert proc.returncode == 1
    assert "truncated behind checkpoint 1 of checkpoints.jsonl (row 6" in proc.stderr


def test_serve_dev_setup_writes_checkpoints_and_secrets_outside_the_database(
        tmp_path: Path) -> None:
    proc = cli("serve", "dev-setup", tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "config.yaml").read_text()
    assert "checkpoints: checkpoints.jsonl" in text and "audit_key_file:" in text
    assert (tmp_path / "secrets" / "audit.key").stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------ PostgreSQL

def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's postgresql package) on a free loopback
    port in a temp dir, run as the `postgres` user; skipped where it is absent."""
    import os
    import pwd
    import shutil
    bindir = _postgres_bin()
    if bindir is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; .ci/run "
                    "installs it): the shared-store tests did not run")
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run PostgreSQL as")
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="cledecide-pg-"))  # pytest's own is root-only
    data, port = folder / "data", free_port()
    os.chown(folder, user.pw_uid, user.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "--no-sync"], check=True, capture_output=True, timeout=120)
    subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-l",
                    str(folder / "log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start"], check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_instances_share_one_postgresql_chain_and_token_store(
        postgres: str, tmp_path: Path) -> None:
    """Two services (separate processes, as on two machines behind a load balancer) on
    one PostgreSQL store: 40 concurrent requests spread over both leave one gap-free,
    intact chain, and a token is good once whichever instance sees it."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                        "'cledecide[postgres]')")
    a, b = tmp_path / "a", tmp_path / "b"
    with running(a, audit=postgres) as one:
        shared = {"audit": postgres, "audit_key_file": str(a / "secrets" / "audit.key"),
                  "service_url": one.base,  # one public URL behind the load balancer
                  "issuers": {"dev-ehr": {"jwks_file": str(a / "jwks.json")}}}
        with running(b, **shared) as two:
            jobs = [(srv, request_for(NAMES[i % len(NAMES)]))
                    for i, srv in enumerate([one, two] * 20)]
            tokens = [one.token() for _ in jobs]
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                codes = list(pool.map(lambda j: j[0][0].post(PV, j[0][1], j[1]).status_code,
                                      zip(jobs, tokens)))
            assert codes == [200] * 40
            replay = [srv.post(PV, jobs[0][1], tokens[0]).status_code for srv in (one, two)]
            assert replay == [401, 401]
            fresh = one.token()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                both = sorted(pool.map(lambda s: s.post(PV, jobs[1][1], fresh).status_code,
                                       (one, two)))
            assert both == [200, 401]
    log = open_log(postgres, a / "secrets" / "audit.key", read_only=True)
    try:
        seqs = [r["seq"] for r in log.rows()]
        assert seqs == list(range(1, len(seqs) + 1)) and log.verify() == []
        assert sum(1 for r in log.rows() if r["status"] == "200") == 41
    finally:
        log.close()
    proc = cli("audit", "verify", postgres, "--config", a / "config.yaml")
    assert proc.returncode == 0, proc.stderr


def test_group_commit_keeps_the_chain_whole_under_many_threads(tmp_path: Path) -> None:
    """Rows written at once share a transaction (one fsync); each writer gets its own
    sequence number, and an error reaches every writer of the failed batch."""
    from cledecide.service.groupcommit import GroupCommit
    log = open_log(tmp_path / "g.sqlite", create_key=True)
    writer = GroupCommit(log)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        seqs = list(pool.map(lambda i: writer.append(kind="evaluate", service="t",
                                                     request_id=f"r{i}", cards=[]),
                             range(200)))
    assert sorted(seqs) == list(range(1, 201)) and log.verify() == []
    by_request = {r["request_id"]: r["seq"] for r in log.rows()}
    assert all(by_request[f"r{i}"] == s for i, s in enumerate(seqs))
    log.close()
    with pytest.raises(Exception):  # noqa: B017 (whichever error the closed log raises)
        writer.append(kind="evaluate", service="t", request_id="after close", cards=[])


def test_the_service_signs_a_checkpoint_every_m_minutes(tmp_path: Path) -> None:
    import time
    with running(tmp_path, checkpoint_every_minutes=0.01) as srv:
        assert srv.post(PV, request_for("hcq-inadequate")).status_code == 200
        out = tmp_path / "checkpoints.jsonl"
        for _ in range(600):  # waits for the service's timer, asserts nothing on time
            if out.exists() and out.read_text().strip():
                break
            time.sleep(0.1)
        assert [json.loads(x)["seq"] for x in out.read_text().splitlines()][0] == 1
