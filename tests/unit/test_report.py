"""Rendering recorded runs in every report format, and the `report` action."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone

import pytest

from gcops.actions.report import parse_moment, report
from gcops.state.history import SqliteHistory, db_path
from gcops.report.render import FORMATS, render_report
from gcops.report.rows import human_bytes


def result(name: str, reclaimed: int | None, status: str = "ok", error: str | None = None) -> dict:
    known = reclaimed is not None
    return {
        "name": name, "hosts": [f"{name}.example.com"], "playbook": "distribution",
        "status": status, "error": error, "mode": "readonly", "delete_untagged": True,
        "storage_bytes_before": 8_000_000_000 if known else None,
        "storage_bytes_after": 8_000_000_000 - reclaimed if known else None,
        "reclaimed_bytes": reclaimed,
        "fs_used_bytes_before": None, "fs_used_bytes_after": None,
        "blobs_before": 900 if known else None, "blobs_after": 700 if known else None,
        "blobs_deleted": 200 if known else None, "manifests_deleted": 17 if known else None,
        "window_seconds": 95.5 if known else None, "gc_seconds": 80.0 if known else None,
        "duration_seconds": 120.0,
    }


def run(run_id: str, started_at: str, *results: dict) -> dict:
    return {"run_id": run_id, "command": "run", "dry_run": False, "started_at": started_at,
            "finished_at": started_at, "exit_code": 0, "instances": list(results),
            "totals": {"reclaimed_bytes": sum(r["reclaimed_bytes"] or 0 for r in results),
                       "instances_ok": sum(r["status"] == "ok" for r in results),
                       "instances_failed": sum(r["status"] != "ok" for r in results)}}


RUNS = [
    run("20261128T020000Z-aaaa", "2026-11-28T02:00:00Z", result("gitlab-prod", 3_221_225_472),
        result("registry-ha", None, status="failed", error='config <unreadable> & "odd" | [x]')),
    run("20261129T020000Z-bbbb", "2026-11-29T02:00:00Z", result("gitlab-prod", 1_288_490_188)),
]
TOTAL = 3_221_225_472 + 1_288_490_188


def test_json_totals_sum_every_run():
    document = json.loads(render_report(RUNS, "json"))

    assert document["totals"] == {"reclaimed_bytes": TOTAL, "runs": 2}
    assert document["runs"] == RUNS


def test_csv_has_one_row_per_instance_result_with_every_figure():
    rows = list(csv.DictReader(io.StringIO(render_report(RUNS, "csv"))))

    assert [(r["run_id"], r["instance"], r["status"]) for r in rows] == [
        ("20261128T020000Z-aaaa", "gitlab-prod", "ok"),
        ("20261128T020000Z-aaaa", "registry-ha", "failed"),
        ("20261129T020000Z-bbbb", "gitlab-prod", "ok"),
    ]
    assert sum(int(r["reclaimed_bytes"]) for r in rows if r["reclaimed_bytes"]) == TOTAL
    assert rows[0]["started_at"] == "2026-11-28T02:00:00Z"
    assert rows[0]["blobs_deleted"] == "200" and rows[0]["window_seconds"] == "95.5"
    assert rows[1]["reclaimed_bytes"] == "" and rows[1]["storage_bytes_before"] == ""  # unknown
    assert rows[1]["error"] == 'config <unreadable> & "odd" | [x]'
    for figure in ("storage_bytes_before", "storage_bytes_after", "fs_used_bytes_before",
                   "fs_used_bytes_after", "blobs_before", "blobs_after", "manifests_deleted",
                   "gc_seconds", "duration_seconds"):
        assert figure in rows[0]


def test_markdown_shows_human_figures_and_totals():
    text = render_report(RUNS, "markdown")
    table_rows = [line for line in text.splitlines() if line.startswith("| 2026-")]

    assert len(table_rows) == 3
    assert "3.0 GiB" in table_rows[0] and "1.2 GiB" in table_rows[2]
    assert f"{TOTAL:,} bytes" in text and human_bytes(TOTAL) in text
    # the failed result: unknown figures are "-", and its error cannot break the table
    assert " - |" in table_rows[1]
    assert table_rows[1].count(" | ") == table_rows[0].count(" | ")


def test_table_shows_human_figures_and_totals():
    text = render_report(RUNS, "table")

    assert "gitlab-prod" in text and "registry-ha" in text
    assert "3.0 GiB" in text and "1.2 GiB" in text
    assert f"Total reclaimed: {human_bytes(TOTAL)} ({TOTAL:,} bytes) over 2 runs" in text
    assert "[x]" in text  # an error's brackets are text, not rich markup
    assert "\x1b[" not in text


def test_html_is_a_self_contained_page_with_figures_and_chart():
    page = render_report(RUNS, "html")

    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "Reclaimed per run" in page
    assert f'data-value="{3_221_225_472}"' in page and "3.0 GiB" in page
    assert f'data-reclaimed-bytes="{TOTAL}"' in page
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "<script" not in page and "src=" not in page and "@import" not in page


def test_html_escapes_every_text_value():
    page = render_report(RUNS, "html")

    assert "config &lt;unreadable&gt; &amp; &quot;odd&quot;" in page
    assert "<unreadable>" not in page


def test_unknown_figures_render_in_every_format():
    only_failed = [run("20261130T020000Z-cccc", "2026-11-30T02:00:00Z",
                       result("registry-ha", None, status="skipped", error="locked"))]
    for fmt in FORMATS:
        assert render_report(only_failed, fmt)
    assert json.loads(render_report(only_failed, "json"))["totals"]["reclaimed_bytes"] == 0
    assert "No reclaimed bytes recorded" in render_report(only_failed, "html")
    assert render_report([], "csv").count("\n") == 0  # header only


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        render_report(RUNS, "xml")


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-29", datetime(2026, 11, 29, tzinfo=timezone.utc)),
    ("2026-11-29T02:30:00Z", datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)),
    ("2026-11-29T03:30:00+01:00", datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)),
    ("2026-11-29 02:30", datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)),  # naive = UTC
    ("7d", datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)),
    ("24h", datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)),
])
def test_dates_relative_ages_and_datetimes_are_understood(text, expected):
    assert parse_moment(text, option="--since", now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7 days", "2026-13-01", "-3d", ""])
def test_bad_dates_are_one_line_errors(text):
    with pytest.raises(ValueError, match="--since") as caught:
        parse_moment(text, option="--since", now=NOW)
    assert "\n" not in str(caught.value)


def test_report_filters_history_and_writes_files(tmp_path):
    for recorded in RUNS:
        SqliteHistory(db_path(tmp_path)).record_run(recorded)

    last_day = json.loads(report(SqliteHistory(db_path(tmp_path)), since="2026-11-29", until=None, instance=None,
                                 fmt="json", output=None))
    assert [r["run_id"] for r in last_day["runs"]] == ["20261129T020000Z-bbbb"]

    first_day = json.loads(report(SqliteHistory(db_path(tmp_path)), since=None, until="2026-11-28", instance=None,
                                  fmt="json", output=None))  # a date-only until includes that day
    assert [r["run_id"] for r in first_day["runs"]] == ["20261128T020000Z-aaaa"]

    out = tmp_path / "report.csv"
    assert report(SqliteHistory(db_path(tmp_path)), since=None, until=None, instance="registry-ha", fmt="csv",
                  output=out) == ""
    rows = list(csv.DictReader(out.open()))
    assert [r["instance"] for r in rows] == ["registry-ha"]
    assert out.read_text().endswith("\n")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_report_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="--format"):
        report(SqliteHistory(db_path(tmp_path)), since=None, until=None, instance=None, fmt="xml", output=None)
    with pytest.raises(ValueError, match="is not before"):
        report(SqliteHistory(db_path(tmp_path)), since="2026-11-29", until="2026-11-01", instance=None, fmt="json",
               output=None)
    assert json.loads(report(SqliteHistory(db_path(tmp_path)), since=None, until=None, instance=None, fmt="json",
                             output=None)) == {"runs": [], "totals": {"reclaimed_bytes": 0, "runs": 0}}
