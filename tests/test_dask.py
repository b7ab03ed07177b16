"""The Dask recipe of docs/cohorts.md on a two-worker LocalCluster bound to
127.0.0.1: same results as the CLI, in partition order. The cluster stops by itself."""
from __future__ import annotations

import json

import pytest

from cledecide import cohort

from conftest import EXAMPLES

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def evaluate_partition(lines, rules_dir=None):
    items = (cohort.Record(f"line {i}", line.encode()) for i, line in enumerate(lines))
    return [cohort.jsonl_line(o) for o in cohort.evaluate_records(items, rules_dir)]


def test_dask_bag_over_json_lines_on_two_workers(tmp_path) -> None:
    import dask.bag as db
    import yaml
    from dask.distributed import Client, LocalCluster

    rows = []
    for i, path in enumerate(sorted(EXAMPLES.glob("*.yaml")) * 3):
        if path.name == "expected.yaml":
            continue
        data = yaml.safe_load(path.read_text())
        data["id"] = f"p{i}"
        rows.append(json.dumps(data, default=str))
    source = tmp_path / "clinic.jsonl"
    source.write_text("\n".join(rows) + "\n")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        bag = db.read_text(str(source), blocksize=2000)
        assert bag.npartitions >= 2
        results = [json.loads(line) for line in
                   bag.map_partitions(evaluate_partition).compute()]

    local = [json.loads(line) for line in
             (cohort.jsonl_line(o) for o in cohort.evaluate_records(
                 cohort.records([str(source)])))]
    assert [r["patient_id"] for r in results] == [r["patient_id"] for r in local]
    strip = ("source", "input_sha256")
    assert [{k: v for k, v in r.items() if k not in strip} for r in results] == \
        [{k: v for k, v in r.items() if k not in strip} for r in local]
