"""tags_deleted in the run table, the report formats and the metrics (issue 12)."""
from __future__ import annotations

import csv
import io

from gcops.output import plan_table, run_table
from gcops.report.metrics import write_metrics
from gcops.report.render import render_report
from tests.unit.test_metrics import result, run, value

TAGS = [{"repository": "g/app", "tag": f"dev-{i}", "digest": "sha256:" + f"{i:064x}"} for i in range(3)]


def with_tags(tags, **kw) -> dict:
    return {**result("reg", **kw), "tags_deleted": tags}


def test_metrics_count_the_tags_of_the_last_successful_run(tmp_path):
    prom = tmp_path / "gcops.prom"
    write_metrics(prom, run("2026-11-29T02:03:12Z", with_tags(TAGS)))
    assert value(prom, "gcops_tags_deleted", "reg") == 3
    write_metrics(prom, run("2026-11-30T02:03:12Z", with_tags([], status="failed")))
    assert value(prom, "gcops_tags_deleted", "reg") == 3          # a failed run leaves the figures
    write_metrics(prom, run("2026-12-01T02:03:12Z", with_tags([])))
    assert value(prom, "gcops_tags_deleted", "reg") == 0


def test_report_has_a_tags_deleted_column_unknown_for_older_runs():
    older = result("reg")                                         # recorded before retention existed
    runs = [run("2026-11-28T02:03:12Z", older), run("2026-11-29T02:03:12Z", with_tags(TAGS))]
    rows = list(csv.DictReader(io.StringIO(render_report(runs, "csv"))))
    assert [r["tags_deleted"] for r in rows] == ["", "3"]
    table = render_report(runs, "table")
    assert "Tags deleted" in table
    assert "| Tags deleted |" in render_report(runs, "markdown")


def test_run_table_counts_tags_and_plan_table_lists_them():
    doc = {"run_id": "r", "exit_code": 0, "instances": [with_tags(TAGS)],
           "totals": {"reclaimed_bytes": 1, "instances_ok": 1, "instances_failed": 0}}
    assert "tags deleted" in run_table(doc)
    plan = {"instances": [{"name": "reg", "eligible_blobs": 1, "eligible_manifests": 1, "reclaimable_bytes": 9,
                           "storage_bytes": 99, "error": None,
                           "retention": {"delete": [{**TAGS[0], "age_seconds": 20 * 86400 + 3600,
                                                     "rule": "retention[0]"}]}}]}
    text = plan_table(plan)
    assert "dev-0" in text and "20d01h" in text and "retention[0]" in text
