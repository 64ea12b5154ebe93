"""Human tables on narrow terminals: names and byte figures stay whole; less important columns go first."""
from __future__ import annotations

import pytest

from gcops.output import run_table
from gcops.report.rows import human_bytes
from gcops.report.text import render_table
from tests.unit.test_report import RUNS, result, run

LONG = "registry-eu-west-prod-1"
WIDE_RUNS = RUNS + [run("20261130T020000Z-cccc", "2026-11-30T02:00:00Z", result(LONG, 123_456_789))]


def rows_of(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


@pytest.mark.parametrize("width", [80, 100, 160])
def test_report_keeps_every_name_and_figure_whole(width):
    text = render_table(WIDE_RUNS, width=width)
    table = text.split("Total reclaimed")[0]
    assert max(len(line) for line in table.splitlines()) <= width
    for run_doc in WIDE_RUNS:
        for inst in run_doc["instances"]:
            if inst["reclaimed_bytes"] is None:
                continue
            row = [line for line in rows_of(table, inst["name"]) if human_bytes(inst["reclaimed_bytes"]) in line]
            assert row, (inst["name"], table)
            assert human_bytes(inst["storage_bytes_before"]) in row[0]
            assert human_bytes(inst["storage_bytes_after"]) in row[0]
    # the error of the failed result is never lost: in its column or under the table
    assert 'config <unreadable> & "odd" | [x]' in text


def test_narrow_report_says_what_it_left_out_and_wide_keeps_everything():
    narrow = render_table(WIDE_RUNS, width=80)
    assert "not shown: GC, Duration, Blobs deleted, Manifests deleted" in narrow
    wide = render_table(WIDE_RUNS, wide=True)
    assert "Manifests deleted" in wide and "not shown" not in wide


def test_run_table_fits_80_columns_with_long_names():
    doc = {"run_id": "r", "exit_code": 0, "totals": {"reclaimed_bytes": 1, "instances_ok": 2, "instances_failed": 0},
           "instances": [result(LONG, 1_288_490_188), result("gitlab-omnibus-ci-cache", 3_221_225_472)]}
    text = run_table(doc, width=80)
    assert max(len(line) for line in text.splitlines()[:-1]) <= 80
    for inst in doc["instances"]:
        [row] = rows_of(text, inst["name"])
        assert human_bytes(inst["reclaimed_bytes"]) in row and human_bytes(inst["storage_bytes_before"]) in row


def test_large_tables_are_built_directly_exactly_as_rich_lays_them_out(monkeypatch):
    from gcops.report import fit
    from benchmarks.history_report import runs

    odd = [run("20261201T020000Z-dddd", "2026-12-01T02:00:00Z", result("ünïcødé-名前", 5_000),
               result("broken", None, status="failed"))]
    odd[0]["instances"][1]["error"] = "x" * 300       # too wide for a plain line: rich folds it
    many = runs(120, 3) + WIDE_RUNS + odd
    cases = [(many[:-1], w) for w in (None, 60, 80, 120, 200)] + [(many, None), (many, 100)]
    direct = [render_table(r, width=w, wide=w is None) for r, w in cases]
    monkeypatch.setattr(fit, "_plain_fits", lambda *args: False)
    assert direct == [render_table(r, width=w, wide=w is None) for r, w in cases]

