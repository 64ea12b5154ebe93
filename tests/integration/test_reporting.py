"""The reporting side of gcops on real hosts and the real `gcops` command: `report` in every
format, the Prometheus textfile, hooks, `schedule` through the CLI, and `run --json` purity."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.gcops_cli import (
    gcops_argv, gcops_env, instance_block, json_doc, run_gcops, toml_str, write_config,
)
from tests.integration.conftest import make_garbage, write_probe


# -- helpers -------------------------------------------------------------------------------------

def write_cfg(tmp_path: Path, host, *, file: str = "gcops.toml", names=("reg",), vars: dict | None = None,
              gcops_extra: str = "", tail: str = "") -> Path:
    """A config with one [[instance]] per name (all on `host`), sharing tmp_path/state; `tail` appended."""
    path = write_config(tmp_path / file, [instance_block(n, host, vars=vars) for n in names],
                        state_dir=tmp_path / "state", client_key=host.client_key, known_hosts=host.known_hosts,
                        gcops_extra=gcops_extra)
    if tail:
        path.write_text(path.read_text(encoding="utf-8") + "\n" + tail, encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))  # the test's own config must be valid TOML
    return path


def gcops_run(config: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_gcops("--config", str(config), "run", "--json", *args)
    return proc, json_doc(proc)


def broken_registry(tmp_path: Path) -> Path:
    """TEST FIXTURE: a `registry` binary whose garbage-collect fails (exit 1), like test_faults uses."""
    path = tmp_path / "broken-registry"
    # the message carries markup and a pipe: reports must show it as data
    path.write_text("#!/bin/sh\necho 'failed to garbage collect: injected test failure "
                    "<script>alert(1)</script> a|b' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def iec(n: int) -> str:
    """The human byte figure an admin expects next to an exact one (IEC, one decimal)."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    raise AssertionError(n)


class _Tables(HTMLParser):
    """Every <table>'s header texts and, per body row, its cells as (text, attributes)."""

    def __init__(self):
        super().__init__()
        self.head: list[str] = []
        self.rows: list[list[tuple[str, dict]]] = []
        self._cell: tuple[list[str], dict] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = ([], dict(attrs))

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell[0]).strip()
            if self._in_head:
                self.head.append(text)
            else:
                self.rows[-1].append((text, self._cell[1]))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0].append(data)


# -- 1. report -----------------------------------------------------------------------------------

def test_report_every_format_after_two_runs(host_factory, tmp_path):
    h = host_factory("report")
    # two instances on the one host, each run on its own: `--instance` then has something to filter
    prom = tmp_path / "gcops.prom"
    config = write_cfg(tmp_path, h, names=("alpha", "beta"), gcops_extra=f"metrics_textfile = {toml_str(prom)}")
    original = h.config_file.read_bytes()

    make_garbage(h, tmp_path, repo="team/one", seed=1)
    proc1, run1 = gcops_run(config, "alpha")
    assert proc1.returncode == 0, proc1.stderr
    make_garbage(h, tmp_path, kept=1, deleted=3, repo="team/two", seed=2)
    proc2, run2 = gcops_run(config, "beta")
    assert proc2.returncode == 0, proc2.stderr
    assert h.config_file.read_bytes() == original
    r1, r2 = run1["instances"][0]["reclaimed_bytes"], run2["instances"][0]["reclaimed_bytes"]
    assert r1 > 0 and r2 > 0 and r1 != r2   # told apart in every format
    assert run1["totals"]["reclaimed_bytes"] == r1 and run2["totals"]["reclaimed_bytes"] == r2
    runs = [run1, run2]
    # the textfile keeps alpha's series when only beta ran
    series = read_metrics(prom)
    assert m(series, "gcops_reclaimed_bytes", "alpha") == r1 and m(series, "gcops_reclaimed_bytes", "beta") == r2
    assert m(series, "gcops_last_success_timestamp_seconds", "alpha") == epoch(run1["finished_at"])
    assert m(series, "gcops_last_success_timestamp_seconds", "beta") == epoch(run2["finished_at"])

    def report(*args: str) -> subprocess.CompletedProcess:
        p = run_gcops("--config", str(config), "report", *args)
        assert p.returncode == 0, p.stderr
        return p

    # JSON: both runs, exactly as `run --json` printed them, and the totals
    doc = json.loads(report("--format", "json").stdout)
    assert [r["run_id"] for r in doc["runs"]] == [run1["run_id"], run2["run_id"]]
    assert doc["runs"] == runs
    assert doc["totals"] == {"reclaimed_bytes": r1 + r2, "runs": 2}

    # CSV: one row per (run, instance) with the exact figures
    rows = list(csv.DictReader(io.StringIO(report("--format", "csv").stdout)))
    assert [(r["run_id"], r["instance"], r["status"]) for r in rows] == [
        (run1["run_id"], "alpha", "ok"), (run2["run_id"], "beta", "ok")]
    for row, run in zip(rows, runs):
        inst = run["instances"][0]
        assert row["started_at"] == run["started_at"]
        for key in ("reclaimed_bytes", "storage_bytes_before", "storage_bytes_after", "blobs_deleted",
                    "manifests_deleted", "blobs_before", "blobs_after"):
            assert int(row[key]) == inst[key], key
        assert float(row["window_seconds"]) == pytest.approx(inst["window_seconds"])

    # Markdown: one table row per run (human figures), exact total in the totals line
    md = report("--format", "markdown").stdout
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table_rows) == 2, md
    for line, run in zip(table_rows, runs):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[0] == run["started_at"] and cells[1] == run["instances"][0]["name"] and cells[2] == "ok"
        assert iec(run["instances"][0]["reclaimed_bytes"]) in cells, (cells, run["instances"][0])
    assert f"{r1 + r2:,} bytes" in md and "over 2 runs" in md

    # Table (default format): both instances and the exact total
    table = report().stdout
    assert "alpha" in table and "beta" in table and f"{r1 + r2:,} bytes" in table

    # HTML: exact per-run figures in the table, total, an inline SVG chart, nothing fetched
    page = report("--format", "html").stdout
    assert page.lstrip().startswith("<!DOCTYPE html>") and "<svg" in page
    assert "<script" not in page.lower()
    for match in re.finditer(r"https?://[^\s\"'<>]*", page):
        before = page[max(0, match.start() - 30):match.start()]
        assert re.search(r"\bxmlns(:\w+)?=[\"']$", before), f"URL in the HTML report: {match.group()}"
    assert f'data-reclaimed-bytes="{r1 + r2}"' in page
    parsed = _Tables()
    parsed.feed(page)
    col = parsed.head.index("Reclaimed")
    assert len(parsed.rows) == 2
    for cells, run in zip(parsed.rows, runs):
        texts = [t for t, _ in cells]
        assert run["run_id"] in texts and run["instances"][0]["name"] in texts
        assert cells[col][1].get("data-value") == str(run["instances"][0]["reclaimed_bytes"])
        assert cells[col][0] == iec(run["instances"][0]["reclaimed_bytes"])

    # -o FILE: the file, nothing on stdout
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    p = report("--format", "json", "-o", str(out_json))
    assert p.stdout == ""
    assert json.loads(out_json.read_text()) == doc
    p = report("--format", "html", "-o", str(out_html))
    assert p.stdout == ""
    assert out_html.read_text().lstrip().startswith("<!DOCTYPE html>") and "<svg" in out_html.read_text()

    # --instance filters (runs without that instance are left out, totals follow)
    only = json.loads(report("--format", "json", "--instance", "alpha").stdout)
    assert [r["run_id"] for r in only["runs"]] == [run1["run_id"]]
    assert only["totals"] == {"reclaimed_bytes": r1, "runs": 1}
    only = json.loads(report("--format", "json", "--instance", "beta").stdout)
    assert [r["run_id"] for r in only["runs"]] == [run2["run_id"]]
    assert only["totals"] == {"reclaimed_bytes": r2, "runs": 1}
    assert [r["instance"] for r in csv.DictReader(io.StringIO(
        report("--format", "csv", "--instance", "beta").stdout))] == ["beta"]
    none = json.loads(report("--format", "json", "--instance", "no-such").stdout)
    assert none == {"runs": [], "totals": {"reclaimed_bytes": 0, "runs": 0}}

    # --since/--until: a date after the runs gives none; the runs' own days give both
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    later = json.loads(report("--format", "json", "--since", tomorrow).stdout)
    assert later == {"runs": [], "totals": {"reclaimed_bytes": 0, "runs": 0}}
    assert list(csv.DictReader(io.StringIO(report("--format", "csv", "--since", tomorrow).stdout))) == []
    day = run1["started_at"][:10]
    assert json.loads(report("--format", "json", "--since", day).stdout)["totals"]["runs"] == 2
    assert json.loads(report("--format", "json", "--since", "1h").stdout)["totals"]["runs"] == 2
    until_day = run2["started_at"][:10]   # the whole day is included
    assert json.loads(report("--format", "json", "--until", until_day).stdout)["totals"]["runs"] == 2
    assert json.loads(report("--format", "json", "--since", run2["started_at"]).stdout)["runs"] == [run2]
    yesterday = (datetime.fromisoformat(run1["started_at"]) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert json.loads(report("--format", "json", "--until", yesterday).stdout)["runs"] == []
    bad = run_gcops("--config", str(config), "report", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr and bad.stdout == ""


# -- 2. metrics ----------------------------------------------------------------------------------

def read_metrics(path: Path) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def m(series: dict, name: str, instance: str = "reg", **labels) -> float:
    key = (name, frozenset({"instance": instance, **labels}.items()))
    assert key in series, f"{name}{{instance={instance!r}, {labels}}} missing from {sorted(series)}"
    return series[key]


FIGURE_METRICS = (
    ("reclaimed_bytes", "gcops_reclaimed_bytes", {}),
    ("storage_bytes_before", "gcops_storage_bytes", {"when": "before"}),
    ("storage_bytes_after", "gcops_storage_bytes", {"when": "after"}),
    ("window_seconds", "gcops_readonly_window_seconds", {}),
    ("gc_seconds", "gcops_gc_duration_seconds", {}),
    ("blobs_deleted", "gcops_blobs_deleted", {}),
)


def test_metrics_textfile_after_success_then_failure(host_factory, tmp_path):
    h = host_factory("metrics")
    prom = tmp_path / "textfile_collector" / "gcops.prom"   # the directory does not exist yet
    extra = f"metrics_textfile = {toml_str(prom)}"
    make_garbage(h, tmp_path, kept=1, deleted=2)
    proc, doc = gcops_run(write_cfg(tmp_path, h, gcops_extra=extra))
    assert proc.returncode == 0, proc.stderr
    inst = doc["instances"][0]
    assert inst["status"] == "ok" and inst["reclaimed_bytes"] > 0

    text = prom.read_text(encoding="utf-8")
    line = re.search(r'^gcops_reclaimed_bytes\{instance="reg"\} (\S+)$', text, re.MULTILINE)
    assert line and float(line.group(1)) == inst["reclaimed_bytes"], text
    series = read_metrics(prom)
    assert m(series, "gcops_last_run_success") == 1
    assert m(series, "gcops_last_success_timestamp_seconds") == epoch(doc["finished_at"])
    assert m(series, "gcops_last_run_timestamp_seconds") == epoch(doc["finished_at"])
    for field, name, labels in FIGURE_METRICS:
        assert m(series, name, **labels) == pytest.approx(inst[field]), field
    assert m(series, "gcops_storage_bytes", when="before") - m(series, "gcops_storage_bytes", when="after") \
        == inst["reclaimed_bytes"]
    # written atomically: no temporary file left beside it (the .lock serialises writers)
    assert {p.name for p in prom.parent.iterdir()} <= {"gcops.prom", "gcops.prom.lock"}

    # a failing run: last_run_success 0, the earlier success timestamp kept
    original = h.config_file.read_bytes()
    failing = write_cfg(tmp_path, h, file="gcops-broken.toml", gcops_extra=extra,
                        vars={"registry": str(broken_registry(tmp_path))})
    proc, bad = gcops_run(failing)
    assert proc.returncode == 1, proc.stderr
    bad_inst = bad["instances"][0]
    assert bad_inst["status"] == "failed" and "injected test failure" in bad_inst["error"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    after = read_metrics(prom)
    assert m(after, "gcops_last_run_success") == 0
    assert m(after, "gcops_last_success_timestamp_seconds") == epoch(doc["finished_at"])
    assert m(after, "gcops_last_run_timestamp_seconds") == epoch(bad["finished_at"])
    for field, name, labels in FIGURE_METRICS:   # figures stay those of the last successful run
        assert m(after, name, **labels) == pytest.approx(inst[field]), field

    # the report of these two runs: the failure is listed, its unknown figures are not summed as 0,
    # and its error (markup, a pipe) is data in every format
    def report(fmt: str) -> str:
        p = run_gcops("--config", str(failing), "report", "--format", fmt)
        assert p.returncode == 0, p.stderr
        return p.stdout

    rep = json.loads(report("json"))
    assert [r["run_id"] for r in rep["runs"]] == [doc["run_id"], bad["run_id"]]
    assert rep["runs"][1]["instances"][0]["status"] == "failed"
    assert rep["totals"] == {"reclaimed_bytes": inst["reclaimed_bytes"], "runs": 2}
    rows = list(csv.DictReader(io.StringIO(report("csv"))))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error"] == bad_inst["error"] and rows[1]["reclaimed_bytes"] == "0"
    md = report("markdown")
    failed_row = next(line for line in md.splitlines() if "| failed |" in line)

    def cells(line: str) -> list[str]:
        return re.split(r"(?<!\\)\|", line.strip())[1:-1]
    assert len(cells(failed_row)) == len(cells(md.splitlines()[0])), failed_row   # pipes escaped
    assert "<script>" not in md
    page = report("html")
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- 3. hooks ------------------------------------------------------------------------------------

def hooks_table(dir: Path, *, after: str | None = None) -> str:
    """[hooks] whose commands write their GCOPS_* environment (and the run document) into dir."""
    d = shlex.quote(str(dir))

    def dump(kind: str) -> str:
        return (f"env | grep '^GCOPS_' | sort > {d}/{kind}.env; "
                f"cp \"$GCOPS_REPORT_JSON\" {d}/{kind}.json; "
                f"stat -c %a \"$GCOPS_REPORT_JSON\" > {d}/{kind}.mode")
    return "\n".join(["[hooks]", f"before = {toml_str(dump('before'))}",
                      f"after = {toml_str(after or dump('after'))}",
                      f"on_error = {toml_str(dump('on_error'))}"]) + "\n"


def hook_env(dir: Path, kind: str) -> dict[str, str]:
    text = (dir / f"{kind}.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_hooks_see_the_outcome_and_never_change_it(host_factory, tmp_path):
    h = host_factory("hooks")
    original = h.config_file.read_bytes()
    seen = tmp_path / "hooks-seen"
    seen.mkdir()
    config = write_cfg(tmp_path, h, tail=hooks_table(seen))
    assert "hooks" in tomllib.loads(config.read_text())  # [hooks] after the instances is valid TOML

    # a successful run: before and after ran, on_error did not
    make_garbage(h, tmp_path, kept=1, deleted=1, repo="team/one", seed=1)
    proc, doc = gcops_run(config)
    assert proc.returncode == 0, proc.stderr
    before, after = hook_env(seen, "before"), hook_env(seen, "after")
    assert before["GCOPS_HOOK"] == "before" and before["GCOPS_RUN_ID"] == doc["run_id"]
    assert before["GCOPS_INSTANCES"] == "reg" and "GCOPS_EXIT_CODE" not in before
    assert after["GCOPS_HOOK"] == "after" and after["GCOPS_RUN_ID"] == doc["run_id"]
    assert int(after["GCOPS_RECLAIMED_BYTES"]) == doc["totals"]["reclaimed_bytes"] > 0
    assert after["GCOPS_EXIT_CODE"] == "0" and after["GCOPS_STATUS"] == "ok"
    assert after["GCOPS_INSTANCES_OK"] == "1" and after["GCOPS_INSTANCES_FAILED"] == "0"
    assert after["GCOPS_FAILED_INSTANCES"] == ""
    assert json.loads((seen / "after.json").read_text()) == doc
    assert (seen / "after.mode").read_text().strip() == "600"   # the document may name internal hosts
    assert not Path(after["GCOPS_REPORT_JSON"]).exists()   # the temporary document is cleaned up
    assert not (seen / "on_error.env").exists()

    # a failing run: after and on_error ran with exit code 1
    for f in seen.iterdir():
        f.unlink()
    failing = write_cfg(tmp_path, h, file="gcops-broken.toml", tail=hooks_table(seen),
                        vars={"registry": str(broken_registry(tmp_path))})
    proc, bad = gcops_run(failing)
    assert proc.returncode == 1, proc.stderr
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    on_error = hook_env(seen, "on_error")
    assert on_error["GCOPS_HOOK"] == "on_error" and on_error["GCOPS_RUN_ID"] == bad["run_id"]
    assert on_error["GCOPS_EXIT_CODE"] == "1" and on_error["GCOPS_STATUS"] == "failed"
    assert on_error["GCOPS_FAILED_INSTANCES"] == "reg" and on_error["GCOPS_INSTANCES_FAILED"] == "1"
    assert hook_env(seen, "after")["GCOPS_EXIT_CODE"] == "1"
    assert json.loads((seen / "on_error.json").read_text()) == bad

    # a failing `after` hook changes neither the exit code nor the restore
    for f in seen.iterdir():
        f.unlink()
    make_garbage(h, tmp_path, kept=1, deleted=1, repo="team/two", seed=2)
    marker = seen / "after-ran"
    broken_after = write_cfg(tmp_path, h, file="gcops-after-fails.toml",
                             tail=hooks_table(seen, after=f"touch {shlex.quote(str(marker))}; "
                                                         "echo 'hook broke' >&2; exit 1"))
    proc, doc3 = gcops_run(broken_after)
    assert marker.exists()
    assert proc.returncode == 0 and doc3["exit_code"] == 0, proc.stderr
    assert doc3["instances"][0]["status"] == "ok" and doc3["instances"][0]["reclaimed_bytes"] > 0
    assert "hook_failed" in proc.stderr
    assert not (seen / "on_error.env").exists()
    assert h.config_file.read_bytes() == original
    assert write_probe(h) == 400   # writable again (an invalid manifest is refused with 400, not 405)


# -- 4. schedule ---------------------------------------------------------------------------------

def gcops_private_etc(cron_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """gcops in a private mount namespace whose /etc/cron.d is `cron_dir`: the machine's is never touched."""
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" /etc/cron.d && shift && exec "$@"', "sh", str(cron_dir), *gcops_argv(*args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=gcops_env(), cwd=str(cwd),
                          stdin=subprocess.DEVNULL)


def exec_start(service: str) -> list[str]:
    lines = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, service
    return shlex.split(lines[0][len("ExecStart="):])


def test_schedule_systemd_units_and_cron_via_cli(tmp_path):
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare (a private /etc/cron.d for the test)")
    real_cron = Path("/etc/cron.d/gcops")
    real_before = real_cron.read_bytes() if real_cron.exists() else None
    cron_dir, units = tmp_path / "cron.d", tmp_path / "units"
    cron_dir.mkdir()
    write_config(tmp_path / "gcops.toml", [instance_block("reg", "local")], state_dir=tmp_path / "state")

    def gcops(*args: str) -> subprocess.CompletedProcess:   # relative --config, cwd = tmp_path
        p = gcops_private_etc(cron_dir, tmp_path, "--config", "gcops.toml", *args)
        assert p.returncode == 0, p.stdout + p.stderr
        return p

    p = gcops("schedule", "install", "--at", "03:15", "--unit-dir", str(units))
    service, timer = units / "gcops.service", units / "gcops.timer"
    assert f"wrote {service}" in p.stdout and f"wrote {timer}" in p.stdout
    argv = exec_start(service.read_text())
    assert os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK)
    assert argv[-1] == "run"
    assert argv[argv.index("--config") + 1] == str((tmp_path / "gcops.toml").resolve())
    timer_text = timer.read_text()
    on_calendar = [line for line in timer_text.splitlines() if line.startswith("OnCalendar=")]
    assert len(on_calendar) == 1 and "03:15" in on_calendar[0], timer_text
    assert "Persistent=true" in timer_text.splitlines()
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify", str(timer), str(service)], capture_output=True,
                           text=True, timeout=60)
        assert v.returncode == 0, v.stdout + v.stderr

    shown = gcops("schedule", "show", "--unit-dir", str(units)).stdout
    assert str(service) in shown and str(timer) in shown
    assert on_calendar[0] in shown and "ExecStart=" in shown

    # cron.d, in the private /etc/cron.d
    p = gcops("schedule", "install", "--cron", "--at", "03:15", "reg")
    entry = cron_dir / "gcops"
    assert "wrote /etc/cron.d/gcops" in p.stdout
    assert entry.stat().st_mode & 0o777 == 0o644   # cron ignores group/other-writable files
    jobs = [line for line in entry.read_text().splitlines() if line and not line.startswith("#") and "=" not in line]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    assert fields[:6] == ["15", "3", "*", "*", "*", "root"], jobs
    cmd = shlex.split(fields[6])
    assert cmd[cmd.index("--config") + 1] == str((tmp_path / "gcops.toml").resolve())
    assert cmd[cmd.index("run") + 1] == "reg"

    p = gcops("schedule", "remove", "--unit-dir", str(units))
    assert not service.exists() and not timer.exists() and not entry.exists()
    assert "removed" in p.stdout
    assert "No gcops schedule installed" in gcops("schedule", "show", "--unit-dir", str(units)).stdout
    assert "nothing to remove" in gcops("schedule", "remove", "--unit-dir", str(units)).stdout
    # the machine's own /etc/cron.d was never touched
    assert (real_cron.read_bytes() if real_cron.exists() else None) == real_before


def _gcops_importable_without_caller_env() -> bool:
    """Whether this interpreter finds gcops from / without PYTHONPATH (as a systemd service would)."""
    probe = subprocess.run([sys.executable, "-c", "import gcops"], cwd="/", env={"PATH": os.defpath},
                           capture_output=True, timeout=60)
    return probe.returncode == 0


def test_scheduled_service_command_runs_as_systemd_would(tmp_path):
    """The ExecStart command works in systemd's environment: cwd /, no PYTHONPATH, minimal PATH.
    Where gcops is not installed for this Python (only found through PYTHONPATH), install refuses."""
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", "local")], state_dir=tmp_path / "state")
    units = tmp_path / "units"
    p = run_gcops("--config", str(config), "schedule", "install", "--unit-dir", str(units))
    if not _gcops_importable_without_caller_env():
        assert p.returncode == 2 and "not installed" in p.stderr, p.stderr
        assert not units.exists() or not any(units.iterdir())
        return
    assert p.returncode == 0, p.stderr
    argv = exec_start((units / "gcops.service").read_text())
    assert argv[-1] == "run"
    check = subprocess.run([*argv[:-1], "config", "validate"], cwd="/", capture_output=True, text=True,
                           env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                           stdin=subprocess.DEVNULL, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{config}: ok" in check.stdout


# -- 5. run --json purity --------------------------------------------------------------------------

def test_run_json_is_one_document_even_verbose(host_factory, tmp_path):
    h = host_factory("jsonout")
    config = write_cfg(tmp_path, h)
    make_garbage(h, tmp_path, kept=1, deleted=1)
    proc = run_gcops("--config", str(config), "-v", "run", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)          # fails on anything else on stdout
    assert doc["command"] == "run" and doc["instances"][0]["reclaimed_bytes"] > 0
    assert proc.stdout.lstrip().startswith("{") and proc.stdout.rstrip().endswith("}")
    assert "run_finished" in proc.stderr   # the logs went to stderr
    # machine logs: stderr is JSON lines, stdout still exactly one document
    proc = run_gcops("--config", str(config), "--log-format", "json", "-v", "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 0
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert any(e.get("event") == "run_finished" for e in events)
