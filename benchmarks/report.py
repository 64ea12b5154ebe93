"""Turn the raw records of window.py into figures, and print them."""
from __future__ import annotations

import os
import platform

MIB = 1024 * 1024
WINDOW_GOAL, WINDOW_AIM = 1.15, 1.05
READ_GOAL_EXTRA = 0.5
RSS_RATIO_GOAL, RSS_LIMIT = 1.25, 200 * MIB


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    u = platform.uname()
    return [f"nproc {os.cpu_count()} | {cpu} | memory {mem / 2**30:.1f} GiB | kernel {u.release} ({u.machine})",
            f"python {platform.python_version()} | registry: {_registry_version()}"]


def _registry_version() -> str:
    import subprocess
    try:
        return subprocess.run(["/usr/bin/docker-registry", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return "?"


def timeline(rec: dict) -> dict:
    """Where the client-visible window goes: segments between observable moments.

    W0/W1: start/end of the write-refused window (client); first/last 405 (client);
    GC process first/last seen (/proc scan). Every figure comes from outside the procedure."""
    w, gcs = rec["write"], [p for p in rec["procs"] if p[0] == "garbage-collect"]
    gc0, gc1 = (gcs[0][2], gcs[-1][3]) if gcs else (None, None)
    pts = [("W0", w["start"]), ("405a", w["first_405"]), ("gc0", gc0), ("gc1", gc1), ("405b", w["last_405"]),
           ("W1", w["end"])]
    seg = {}
    names = {("W0", "405a"): "restart into read-only (no answer)", ("405a", "gc0"): "read-only, before GC starts",
             ("gc0", "gc1"): "GC process runs", ("gc1", "405b"): "read-only, after GC ended",
             ("405b", "W1"): "restart back to writable (no answer)"}
    for (a, ta), (b, tb) in zip(pts, pts[1:]):
        seg[names[(a, b)]] = (tb - ta) if ta is not None and tb is not None else None
    return seg


def gcops_steps(rec: dict) -> list[tuple[str, float]]:
    """gcops' own log events turned into durations, plus the GC process as /proc saw it."""
    ev = {}
    for e in rec["events"]:
        ev.setdefault(e.get("event"), e)
    gcs = [p for p in rec["procs"] if p[0] == "garbage-collect"]
    t = {k: ev[k]["t"] for k in ("enter_read_only", "entered", "gc", "gc_done", "restore", "restored") if k in ev}
    t.update(start=rec["t0"], end=rec["t1"])
    if gcs:
        t.update(gc_proc0=gcs[0][2], gc_proc1=gcs[-1][3])
    order = [("start", "enter_read_only", "start -> enter (connect, preflight, measure before)"),
             ("enter_read_only", "entered", "enter script (lock, intent, watchdog, config, restart, wait)"),
             ("entered", "gc", "entered -> gc step"),
             ("gc", "gc_proc0", "gc step -> GC process seen (channel, probes)"),
             ("gc_proc0", "gc_proc1", "GC process"),
             ("gc_proc1", "gc_done", "GC process gone -> gc_done logged"),
             ("gc_done", "restore", "gc_done -> restore step"),
             ("restore", "restored", "leave script (probe, restore.sh: config, restart, wait, probe)"),
             ("restored", "end", "restored -> exit (measure after, record)")]
    return [(label, t[b] - t[a]) for a, b, label in order if a in t and b in t]


def _f(x, unit="s", nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}{unit}"


def _ratio(a, b):
    return None if not a or b is None else b / a


def print_report(run: dict) -> list[str]:
    """Print everything; return the list of missed goals."""
    missed: list[str] = []
    p = print
    p("\n=== gcops performance benchmark ===")
    p("command: " + run["command"])
    for line in machine():
        p("machine: " + line)
    for label, b in run["built"].items():
        p(f"registry {label}: {b['repos']} repositories, {b['blobs']} blobs ({b['blob_bytes'] / MIB:.1f} MiB), "
          f"garbage {b['garbage_blobs']} blobs ({100 * b['garbage_blobs'] / b['blobs']:.0f}%, "
          f"{b['garbage_bytes'] / MIB:.1f} MiB), tags kept {b['tags_kept']} / deleted {b['tags_deleted']}; "
          f"built in {b['seconds']:.1f}s, twin copied in {b['copy_seconds']:.1f}s")
    p("checks: " + "; ".join(run["checks"]))
    for label, pair in run["pairs"].items():
        man, gc = pair["manual"], pair["gcops"]
        p(f"\n--- read-only window, garbage {label} (client polls every {run['interval'] * 1000:.0f} ms; "
          f"order: {' then '.join(pair['order'])}) ---")
        p(f"{'':46s}{'manual':>12s}{'gcops':>12s}{'gcops/manual':>14s}")

        def row(name, a, b, unit="s", ratio=True):
            r = _ratio(a, b) if ratio else None
            p(f"{name:46s}{_f(a, unit):>12s}{_f(b, unit):>12s}{(f'{r:.3f}' if r is not None else ''):>14s}")
        row("write-refused window (client)", man["write"]["window"], gc["write"]["window"])
        row("  of which 405 span (first..last 405)", man["write"]["span_405"], gc["write"]["span_405"])
        row("  of which no connection (restarts)", man["write"]["down_seconds"], gc["write"]["down_seconds"])
        row("read failures: total time", man["read"]["failed_seconds"], gc["read"]["failed_seconds"], ratio=False)
        p(f"{'read failures: probes failed / probes':46s}{man['read']['failed_probes']:>7d}/{man['read']['probes']:<4d}"
          f"{gc['read']['failed_probes']:>7d}/{gc['read']['probes']:<4d}")
        row("slowest read (latency)", man["read"]["max_latency"], gc["read"]["max_latency"], ratio=False)
        row("gcops' own window_seconds", None, gc["instance"]["window_seconds"], ratio=False)
        row("wall time of the whole procedure", man["wall"], gc["wall"])
        p("  where the client-visible window goes:")
        tm, tg = timeline(man), timeline(gc)
        for k in tm:
            d = None if tm[k] is None or tg[k] is None else tg[k] - tm[k]
            p(f"    {k:42s}{_f(tm[k]):>12s}{_f(tg[k]):>12s}{('+' if d and d > 0 else '') + _f(d) if d is not None else '':>14s}")
        p(f"  write outcomes  manual {man['write']['outcomes']}  gcops {gc['write']['outcomes']}")
        p(f"  read outcomes   manual {man['read']['outcomes']}  gcops {gc['read']['outcomes']}")
        p(f"  read failure periods (start epoch, seconds, probes): manual {man['read']['periods']}  "
          f"gcops {gc['read']['periods']}")
        p("  gcops steps (its JSON log + /proc):")
        for name, secs in gcops_steps(gc):
            p(f"    {name:66s}{secs:8.3f}s")
        ratio = _ratio(man["write"]["window"], gc["write"]["window"])
        extra = gc["read"]["failed_seconds"] - man["read"]["failed_seconds"]
        verdict = "ok" if ratio is not None and ratio <= WINDOW_GOAL else "GOAL MISSED"
        aim = " (aim 1.05 reached)" if ratio is not None and ratio <= WINDOW_AIM else ""
        p(f"  window ratio gcops/manual = {_f(ratio, '')} (goal <= {WINDOW_GOAL}){aim}: {verdict}")
        if verdict != "ok":
            missed.append(f"window ratio {label} {_f(ratio, '')} > {WINDOW_GOAL}")
        verdict = "ok" if extra <= READ_GOAL_EXTRA else "GOAL MISSED"
        p(f"  read-failure time gcops - manual = {extra:+.3f}s (goal <= +{READ_GOAL_EXTRA}s): {verdict}")
        if verdict != "ok":
            missed.append(f"read failures {label} {extra:+.3f}s > +{READ_GOAL_EXTRA}s")
    mem = run["memory"]
    p("\n--- gcops peak memory (control side, gcops process incl. children) ---")
    for label, m in mem.items():
        p(f"garbage {label:3s}: ru_maxrss {m['maxrss'] / MIB:7.1f} MiB | sampled peak RSS (psutil, {m['rss_samples']} samples) "
          f"{m['rss_sampled_peak'] / MIB:7.1f} MiB | GC output lines {m['gc_lines']} | blobs deleted {m['blobs_deleted']}")
    labels = list(mem)
    if len(labels) == 2:
        a, b = mem[labels[0]], mem[labels[1]]
        r = b["maxrss"] / a["maxrss"]
        rs = b["rss_sampled_peak"] / a["rss_sampled_peak"] if a["rss_sampled_peak"] else float("nan")
        p(f"ratio {labels[1]}/{labels[0]}: ru_maxrss {r:.3f}, sampled {rs:.3f} (GC output lines x"
          f"{b['gc_lines'] / max(1, a['gc_lines']):.2f}, garbage x{b['blobs_deleted'] / max(1, a['blobs_deleted']):.2f})")
        ok = r <= RSS_RATIO_GOAL and max(a["maxrss"], b["maxrss"]) < RSS_LIMIT
        p(f"  goal: ratio <= {RSS_RATIO_GOAL} and < {RSS_LIMIT // MIB} MiB: {'ok' if ok else 'GOAL MISSED'}")
        if not ok:
            missed.append(f"memory ratio {r:.3f} / peak {max(a['maxrss'], b['maxrss']) / MIB:.1f} MiB")
    m = run["measure"]
    p(f"\n--- storage measurement time ({m['entries']} entries in the tree, median of {m['reps']}) ---")
    p(f"gcops measure_command: {m['gcops_bytes']} bytes, {m['gcops_blobs']} blobs | du -sB1 + find: "
      f"{m['du_bytes']} bytes, {m['du_blobs']} blobs | {'agree' if (m['gcops_bytes'], m['gcops_blobs']) == (m['du_bytes'], m['du_blobs']) else 'DIFFER'}")
    for phase in ("cold", "warm"):
        if phase in m:
            g, d = m[phase]["gcops"], m[phase]["du"]
            p(f"{phase}: gcops {g:.3f}s  du+find {d:.3f}s  ratio {g / d:.2f}   "
              f"(all gcops {[round(x, 3) for x in m[phase]['gcops_all']]}, du {[round(x, 3) for x in m[phase]['du_all']]})")
    if not m["cold_possible"]:
        p("cold: not measured (cannot write /proc/sys/vm/drop_caches)")
    p(f"\ntotal benchmark time {run['total_seconds']:.1f}s")
    p("RESULT: " + ("all goals met" if not missed else "GOAL MISSED: " + "; ".join(missed)))
    return missed
