"""The Prometheus textfile written after each run."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gcops.report.metrics import write_metrics

FIRST_FINISHED = 1_795_917_792.0   # 2026-11-29T02:03:12Z
SECOND_FINISHED = 1_796_004_192.0  # 2026-11-30T02:03:12Z


def result(name: str, status: str = "ok", reclaimed: int | None = 123_456_789) -> dict:
    known = reclaimed is not None
    return {"name": name, "hosts": ["h"], "playbook": "distribution", "status": status,
            "error": None if status == "ok" else "gc failed", "mode": "readonly",
            "delete_untagged": False,
            "storage_bytes_before": 1_000_000_000 if known else None,
            "storage_bytes_after": 1_000_000_000 - reclaimed if known else None,
            "reclaimed_bytes": reclaimed, "fs_used_bytes_before": None, "fs_used_bytes_after": None,
            "blobs_before": 50 if known else None, "blobs_after": 40 if known else None,
            "blobs_deleted": 10 if known else None, "manifests_deleted": 2 if known else None,
            "window_seconds": 12.5 if known else None, "gc_seconds": 9.0 if known else None,
            "duration_seconds": 20.0}


def run(finished_at: str, *results: dict, dry_run: bool = False) -> dict:
    return {"run_id": "r", "command": "run", "dry_run": dry_run,
            "started_at": finished_at.replace("03:12", "00:00"), "finished_at": finished_at,
            "exit_code": 0, "instances": list(results), "totals": {}}


def samples(path) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text())
            for s in family.samples}


def value(path, name: str, instance: str, **labels: str) -> float | None:
    return samples(path).get((name, tuple(sorted({"instance": instance, **labels}.items()))))


def test_a_successful_run_writes_every_gauge(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))

    text = path.read_text()
    assert 'gcops_reclaimed_bytes{instance="x"} 1.23456789e+08' in text
    assert value(path, "gcops_reclaimed_bytes", "x") == 123_456_789
    assert value(path, "gcops_last_run_success", "x") == 1
    assert value(path, "gcops_last_run_timestamp_seconds", "x") == FIRST_FINISHED
    assert value(path, "gcops_last_success_timestamp_seconds", "x") == FIRST_FINISHED
    assert value(path, "gcops_readonly_window_seconds", "x") == 12.5
    assert value(path, "gcops_gc_duration_seconds", "x") == 9.0
    assert value(path, "gcops_blobs_deleted", "x") == 10
    assert value(path, "gcops_storage_bytes", "x", when="before") == 1_000_000_000
    assert value(path, "gcops_storage_bytes", "x", when="after") == 1_000_000_000 - 123_456_789
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == ["gcops.prom"]


def test_a_run_of_another_instance_keeps_the_first_ones_series(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))
    write_metrics(path, run("2026-11-30T02:03:12Z", result("y", reclaimed=5)))

    assert value(path, "gcops_last_success_timestamp_seconds", "x") == FIRST_FINISHED
    assert value(path, "gcops_reclaimed_bytes", "x") == 123_456_789
    assert value(path, "gcops_storage_bytes", "x", when="after") == 1_000_000_000 - 123_456_789
    assert value(path, "gcops_last_success_timestamp_seconds", "y") == SECOND_FINISHED
    assert value(path, "gcops_reclaimed_bytes", "y") == 5


def test_a_failed_run_keeps_the_earlier_success_timestamp(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))
    write_metrics(path, run("2026-11-30T02:03:12Z", result("x", status="failed", reclaimed=None)))

    assert value(path, "gcops_last_run_success", "x") == 0
    assert value(path, "gcops_last_run_timestamp_seconds", "x") == SECOND_FINISHED
    assert value(path, "gcops_last_success_timestamp_seconds", "x") == FIRST_FINISHED
    # the figures stay those of the last successful run
    assert value(path, "gcops_reclaimed_bytes", "x") == 123_456_789


def test_a_failed_run_does_not_mix_its_figures_into_the_last_successful_set(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))
    failed = {**result("x", status="failed", reclaimed=None), "storage_bytes_before": 7, "window_seconds": 99.0}
    write_metrics(path, run("2026-11-30T02:03:12Z", failed))
    assert value(path, "gcops_storage_bytes", "x", when="before") == 1_000_000_000
    assert value(path, "gcops_readonly_window_seconds", "x") == 12.5


def test_an_instance_that_never_succeeded_has_last_success_zero(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x", status="not_restored", reclaimed=None)))

    assert value(path, "gcops_last_run_success", "x") == 0
    assert value(path, "gcops_last_success_timestamp_seconds", "x") == 0
    assert value(path, "gcops_reclaimed_bytes", "x") is None


def test_skipped_instances_and_dry_runs_change_nothing(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))
    before = path.read_text()

    write_metrics(path, run("2026-11-30T02:03:12Z", result("x", status="skipped", reclaimed=None)))
    write_metrics(path, run("2026-11-30T02:03:12Z", result("x", status="failed"), dry_run=True))
    write_metrics(path, {**run("2026-11-30T02:03:12Z", result("x", status="failed")),
                         "command": "plan"})

    assert path.read_text() == before


def test_dry_run_writes_no_file(tmp_path):
    path = tmp_path / "gcops.prom"
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x"), dry_run=True))
    assert not path.exists()


def test_an_unparsable_previous_file_is_replaced(tmp_path):
    path = tmp_path / "gcops.prom"
    path.write_text("this is { not prometheus\n")
    write_metrics(path, run("2026-11-29T02:03:12Z", result("x")))

    assert value(path, "gcops_last_run_success", "x") == 1
