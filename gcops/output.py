"""Human tables for check, plan, recover and dry-run (run and report tables live in report/)."""
from __future__ import annotations

import io
import sys

from rich.console import Console
from rich.table import Table

from gcops.report.fit import Column, fit_table, terminal_width
from gcops.report.rows import human_bytes


def _render(table: Table) -> str:
    buf = io.StringIO()
    # on a terminal, fit it; otherwise (pipes, files, logs) keep the natural width so nothing is cut
    width = Console().width if sys.stdout.isatty() else 200
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


def check_table(doc: dict) -> str:
    table = Table(title="gcops check")
    for col in ("instance", "check", "ok", "detail"):
        table.add_column(col, overflow="fold")
    for inst in doc["instances"]:
        for i, check in enumerate(inst["checks"]):
            table.add_row(inst["name"] if i == 0 else "", check["name"], "yes" if check["ok"] else "NO",
                          check["detail"])
    return _render(table)


def plan_table(doc: dict) -> str:
    table = Table(title="gcops plan (registry GC dry-run; nothing changed)")
    for col in ("instance", "eligible blobs", "eligible manifests", "reclaimable", "storage", "error"):
        table.add_column(col, overflow="fold", justify="right" if col not in ("instance", "error") else "left")
    for inst in doc["instances"]:
        table.add_row(inst["name"], _n(inst["eligible_blobs"]), _n(inst["eligible_manifests"]),
                      human_bytes(inst["reclaimable_bytes"]), human_bytes(inst["storage_bytes"]),
                      inst.get("error") or "")
    notes = [f"{inst['name']}: mode concurrent, a run would:\n" + "".join(f"  - {line}\n" for line in inst["concurrent"])
             for inst in doc["instances"] if inst.get("concurrent")]
    return _render(table) + retention_table(doc) + "".join(notes)


def retention_table(doc: dict) -> str:
    """The tags retention would delete, one row each; "" when none."""
    rows = [(inst["name"], d) for inst in doc["instances"] for d in (inst.get("retention") or {}).get("delete", [])]
    if not rows:
        return ""
    table = Table(title="tags retention would delete (the bytes are in 'reclaimable' above)")
    for col in ("instance", "repository", "tag", "age", "digest", "rule"):
        table.add_column(col, overflow="fold", justify="right" if col == "age" else "left")
    for name, d in rows:
        table.add_row(name, d["repository"], d["tag"], _age(d["age_seconds"]), d["digest"][:19], d["rule"])
    return _render(table)


def _age(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d{rest // 3600:02d}h" if days else f"{rest // 3600}h{rest % 3600 // 60:02d}m"


def recover_table(doc: dict) -> str:
    table = Table(title="gcops recover")
    for col in ("instance", "host", "action", "ok", "detail"):
        table.add_column(col, overflow="fold")
    for inst in doc["instances"]:
        for node in inst["nodes"]:
            table.add_row(inst["name"], node["host"], node["action"], "yes" if node["ok"] else "NO", node["detail"])
    return _render(table)


def dry_run_text(doc: dict) -> str:
    """Each instance's steps with the command each would send (host scripts by name, long values summarised)."""
    from gcops.actions.dry_run import display

    out = []
    for inst in doc["instances"]:
        out.append(f"instance {inst['name']} ({', '.join(inst['hosts'])}, mode {inst['mode']}"
                   f"{', delete untagged' if inst['delete_untagged'] else ''}): dry run, nothing will be changed")
        if inst["refused"]:
            out.append(f"  ! a real run would be refused: {inst['refused']}")
        if inst.get("explain"):
            out.append(f"  mode {inst['mode']}, step by step:")
            out.extend(f"    - {line}" for line in inst["explain"])
        for n, step in enumerate(inst["steps"], 1):
            out.append(f"  {n:2}. [{step['node']}] {step['step']}: {display(step['command'])}")
            if step.get("stdin"):
                out.append(f"        stdin: {step['stdin']}")
        if inst.get("diff"):
            out.append("  the read-only config differs from the current one by:")
            out.extend(f"        {line}" for line in inst["diff"].rstrip("\n").splitlines())
    return "\n".join(out) + "\n"


def _n(value) -> str:
    return "-" if value is None else f"{value:,}"


def run_table(doc: dict, width: int | None = None) -> str:
    """One row per instance with what an admin looks at first; errors are printed below by the CLI.

    ``width``: fit that many columns (default: the terminal's; natural width off a terminal).
    Instance names and byte figures are never cut: less important columns go first.
    """
    columns = [Column("instance", fold=True), Column("status"), Column("before", right=True),
               Column("after", right=True), Column("reclaimed", right=True), Column("window", right=True),
               Column("tags deleted", right=True, drop_order=2), Column("blobs deleted", right=True, drop_order=3),
               Column("duration", right=True, drop_order=1)]
    rows = [[inst["name"], inst["status"], human_bytes(inst["storage_bytes_before"]),
             human_bytes(inst["storage_bytes_after"]), human_bytes(inst["reclaimed_bytes"]),
             _secs(inst["window_seconds"]), _n(len(inst.get("tags_deleted") or [])), _n(inst["blobs_deleted"]),
             _secs(inst["duration_seconds"])]
            for inst in doc["instances"]]
    table, _ = fit_table(f"gcops run {doc['run_id']}", columns, rows, width or terminal_width())
    totals = doc["totals"]
    return table + "\n" + (f"reclaimed {human_bytes(totals['reclaimed_bytes'])} ({totals['reclaimed_bytes']:,} bytes); "
                           f"{totals['instances_ok']} ok, {totals['instances_failed']} not ok; "
                           f"exit {doc['exit_code']}\n")


def _secs(value) -> str:
    return "-" if value is None else f"{value:.1f}s"
