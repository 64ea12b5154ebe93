"""Turn the raw records of window.py into figures, and print them."""
from __future__ import annotations

import os
import platform
import statistics

MIB = 1024 * 1024
WINDOW_GOAL, WINDOW_AIM = 1.15, 1.05
CONCURRENT_GOAL = 0.40          # --mode concurrent: its window / the manual procedure's ...
CONCURRENT_GOAL_BLOBS = 40_000  # ... on registries of 40k blobs and more (the goal's own size)
READ_TOLERANCE = 0.1            # s: "no longer than manual", within the probes' resolution
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
    """gcops' own log events, the client's first/last 405 and the GC process (/proc) as durations."""
    ev = {}
    for e in rec["events"]:
        ev.setdefault(e.get("event"), e)
    gcs = [p for p in rec["procs"] if p[0] == "garbage-collect"]
    t = {k: ev[k]["t"] for k in ("enter_read_only", "entered", "gc", "gc_done", "restore", "restored") if k in ev}
    t.update(start=rec["t0"], end=rec["t1"], W0=rec["write"]["start"], first405=rec["write"]["first_405"],
             last405=rec["write"]["last_405"], W1=rec["write"]["end"])
    if gcs:
        t.update(gc_proc0=gcs[0][2], gc_proc1=gcs[-1][3])
    # The GC node's window is one host-side script (enter -> verify -> GC -> restore): gcops logs
    # `gc` when it starts, `restored` when it returns, `gc_done` once the GC log has been parsed
    # after the window.
    order = [("start", "gc", "start -> window script sent (connect, preflight, measure before)"),
             ("gc", "W0", "script start -> writes refused (lock, intent, watchdog, config)"),
             ("W0", "first405", "writes refused -> first 405 (restart)"),
             ("first405", "gc_proc0", "first 405 -> GC process seen (wait_up, 2 curl probes)"),
             ("gc_proc0", "gc_proc1", "GC process (output to a file on the host)"),
             ("gc_proc1", "last405", "GC process gone -> last 405 (probe, restore.sh, stop)"),
             ("last405", "W1", "last 405 -> writes accepted (restart)"),
             ("W1", "restored", "writes accepted -> `restored` logged (wait_up, probe, SSH return)"),
             ("restored", "gc_done", "`restored` -> GC log parsed (outside the window)"),
             ("gc_done", "end", "GC log parsed -> exit (measure after, record)")]
    return [(label, t[b] - t[a]) for a, b, label in order if t.get(a) is not None and t.get(b) is not None]


def metrics(rec: dict) -> dict:
    """One run's figures, flat, so that rounds can be reduced to medians."""
    w, r = rec["write"], rec["read"]
    m = {"window": w["window"], "span_405": w["span_405"], "down": w["down_seconds"],
         "read_failed": r["failed_seconds"], "read_failed_probes": r["failed_probes"], "read_probes": r["probes"],
         "max_latency": r["max_latency"], "wall": rec["wall"]}
    m.update({"seg:" + k: v for k, v in timeline(rec).items()})
    if "instance" in rec:
        m.update(own_window=rec["instance"]["window_seconds"], cpu=rec["cpu_seconds"])
        m.update({"step:" + k: v for k, v in gcops_steps(rec)})
    return m


def _med(ms: list[dict], key: str):
    vals = [m[key] for m in ms if m.get(key) is not None]
    return statistics.median(vals) if vals else None


def _f(x, unit="s", nd=3):
    return "n/a" if x is None else f"{x:.{nd}f}{unit}"


def _ratio(a, b):
    return None if not a or b is None else b / a


def _pair(label: str, pair: dict, run: dict, missed: list[str]) -> None:
    p = print
    man, gc = [metrics(x) for x in pair["manual"]], [metrics(x) for x in pair["gcops"]]
    p(f"\n--- read-only window, garbage {label}: median of {len(man)} rounds (client polls every "
      f"{run['interval'] * 1000:.0f} ms; order per round: {', '.join(pair['order'])}) ---")
    p(f"{'':48s}{'manual':>11s}{'gcops':>11s}{'gcops/manual':>14s}")

    def row(name, key, unit="s", ratio=True):
        a, b = _med(man, key), _med(gc, key)
        r = _ratio(a, b) if ratio else None
        p(f"{name:48s}{_f(a, unit):>11s}{_f(b, unit):>11s}{(f'{r:.3f}' if r is not None else ''):>14s}")
    row("write-refused window (client)", "window")
    row("  of which 405 span (first..last 405)", "span_405")
    row("  of which no connection (restarts)", "down")
    row("read failures: total time", "read_failed", ratio=False)
    p(f"{'read failures: probes failed / probes':48s}{_med(man, 'read_failed_probes'):>6.0f}/{_med(man, 'read_probes'):<4.0f}"
      f"{_med(gc, 'read_failed_probes'):>6.0f}/{_med(gc, 'read_probes'):<4.0f}")
    row("slowest read (latency)", "max_latency", ratio=False)
    row("gcops' own window_seconds", "own_window", ratio=False)
    row("wall time of the whole procedure", "wall")
    row("gcops process CPU time (user+sys)", "cpu", ratio=False)
    p(f"  per round: window manual {[round(m['window'], 3) for m in man]}  gcops {[round(m['window'], 3) for m in gc]}"
      f"  ratio {[round(g['window'] / m['window'], 3) for m, g in zip(man, gc)]}")
    p(f"  per round: read failures manual {[round(m['read_failed'], 3) for m in man]}  "
      f"gcops {[round(m['read_failed'], 3) for m in gc]}")
    p("  where the client-visible window goes (medians):")
    for key in [k for k in man[0] if k.startswith("seg:")]:
        a, b = _med(man, key), _med(gc, key)
        d = None if a is None or b is None else b - a
        p(f"    {key[4:]:44s}{_f(a):>11s}{_f(b):>11s}{('+' if d and d > 0 else '') + _f(d) if d is not None else '':>14s}")
    p(f"  outcomes, last round: writes manual {pair['manual'][-1]['write']['outcomes']}  "
      f"gcops {pair['gcops'][-1]['write']['outcomes']}")
    p(f"                        reads  manual {pair['manual'][-1]['read']['outcomes']}  "
      f"gcops {pair['gcops'][-1]['read']['outcomes']}")
    p("  gcops steps (its JSON log, the client's view, /proc; medians):")
    for key in [k for k in gc[0] if k.startswith("step:")]:
        p(f"    {key[5:]:68s}{_med(gc, key):8.3f}s")
    ratio = _ratio(_med(man, "window"), _med(gc, "window"))
    extra = _med(gc, "read_failed") - _med(man, "read_failed")
    verdict = "ok" if ratio is not None and ratio <= WINDOW_GOAL else "GOAL MISSED"
    aim = " (aim 1.05 reached)" if ratio is not None and ratio <= WINDOW_AIM else ""
    p(f"  window ratio gcops/manual = {_f(ratio, '')} (goal <= {WINDOW_GOAL}){aim}: {verdict}")
    if verdict != "ok":
        missed.append(f"window ratio {label} {_f(ratio, '')} > {WINDOW_GOAL}")
    worst = max(g["read_failed"] for g in gc) - min(m["read_failed"] for m in man)
    verdict = "ok" if extra <= READ_GOAL_EXTRA and worst <= READ_GOAL_EXTRA else "GOAL MISSED"
    p(f"  read-failure time gcops - manual = {extra:+.3f}s median, {worst:+.3f}s worst round against best "
      f"(goal <= +{READ_GOAL_EXTRA}s): {verdict}")
    if verdict != "ok":
        missed.append(f"read failures {label} {extra:+.3f}s (worst {worst:+.3f}s) > +{READ_GOAL_EXTRA}s")


def _concurrent(label: str, pair: dict, run: dict, missed: list[str]) -> None:
    """manual vs readonly vs concurrent, side by side (the same hosts, fresh copies, alternating order)."""
    p = print
    cols = [("manual", "manual"), ("gcops", "readonly"), ("concurrent", "concurrent")]
    cols = [(k, name) for k, name in cols if pair.get(k)]
    ms = {k: [metrics(x) for x in pair[k]] for k, _ in cols}
    p(f"\n--- --mode concurrent, registry {label}: median of {len(ms['concurrent'])} rounds "
      f"(order per round: {', '.join(pair['order'])}) ---")
    p(f"{'':44s}" + "".join(f"{name:>12s}" for _, name in cols) + f"{'conc/manual':>13s}")

    def row(name, key, ratio=True):
        vals = [_med(ms[k], key) for k, _ in cols]
        r = _ratio(_med(ms["manual"], key), _med(ms["concurrent"], key)) if ratio else None
        p(f"{name:44s}" + "".join(f"{_f(v):>12s}" for v in vals) + f"{(f'{r:.3f}' if r is not None else ''):>13s}")
    row("write-refused window (client)", "window")
    row("  of which 405 span (first..last 405)", "span_405")
    row("  of which no connection (restarts)", "down")
    row("read failures: total time", "read_failed", ratio=False)
    row("gcops' own window_seconds", "own_window", ratio=False)
    row("wall time of the whole procedure", "wall")
    for k, name in cols:
        p(f"  per round: window {name:10s} {[round(m['window'], 3) for m in ms[k]]}  "
          f"read failures {[round(m['read_failed'], 3) for m in ms[k]]}")
    conc = pair["concurrent"][-1]
    ev = {e.get("event"): e for e in conc["events"]}
    swept = ev.get("concurrent_swept", {})
    marked = ev.get("marked", {})
    p(f"  concurrent, last round: mark (GC dry-run, writes accepted) {_f(marked.get('gc_seconds'))}, "
      f"candidates {marked.get('candidates')}, delta links {swept.get('links')}, swept {swept.get('swept')}")
    p(f"  in its window, last round: delta (stat of the watched directories) {_f(swept.get('delta_seconds'))}, "
      f"sweep {_f(swept.get('sweep_seconds'))}")
    p("  where the client-visible window goes (medians; /proc sees the collector's gc.sh as no GC process):")
    for key in [k for k in ms["manual"][0] if k.startswith("seg:")]:
        p(f"    {key[4:]:40s}" + "".join(f"{_f(_med(ms[k], key)):>12s}" for k, _ in cols))
    steps = [metrics(x) for x in pair["concurrent"]]
    p("  concurrent steps (its JSON log, the client's view; medians):")
    for key in [k for k in steps[0] if k.startswith("step:")]:
        p(f"    {key[5:]:68s}{_med(steps, key):8.3f}s")
    ratio = _ratio(_med(ms["manual"], "window"), _med(ms["concurrent"], "window"))
    blobs = run.get("built", {}).get(label, {}).get("blobs", 0)
    if blobs >= CONCURRENT_GOAL_BLOBS:
        verdict = "ok" if ratio is not None and ratio <= CONCURRENT_GOAL else "GOAL MISSED"
        p(f"  window ratio concurrent/manual = {_f(ratio, '')} (goal <= {CONCURRENT_GOAL}): {verdict}")
        if verdict != "ok":
            missed.append(f"concurrent window ratio {label} {_f(ratio, '')} > {CONCURRENT_GOAL}")
    else:   # the restarts and probes every window has weigh more the smaller the registry
        p(f"  window ratio concurrent/manual = {_f(ratio, '')} (the goal <= {CONCURRENT_GOAL} is set for "
          f"registries of {CONCURRENT_GOAL_BLOBS:,} blobs and more; this one has {blobs:,}: for comparison)")
    extra = _med(ms["concurrent"], "read_failed") - _med(ms["manual"], "read_failed")
    verdict = "ok" if extra <= READ_TOLERANCE else "GOAL MISSED"
    p(f"  read-failure time concurrent - manual = {extra:+.3f}s median (goal <= +{READ_TOLERANCE}s, the "
      f"probes' resolution): {verdict}")
    if verdict != "ok":
        missed.append(f"concurrent read failures {label} {extra:+.3f}s")


def print_report(run: dict) -> list[str]:
    """Print everything; return the list of missed goals."""
    missed: list[str] = []
    p = print
    p("\n=== gcops performance benchmark ===")
    p("command: " + run["command"])
    for line in machine():
        p("machine: " + line)
    p(f"registries and hosts in {run['storage']}")
    for label, b in run["built"].items():
        p(f"registry {label}: {b['repos']} repositories, {b['blobs']} blobs ({b['blob_bytes'] / MIB:.1f} MiB), "
          f"garbage {b['garbage_blobs']} blobs ({100 * b['garbage_blobs'] / b['blobs']:.0f}%, "
          f"{b['garbage_bytes'] / MIB:.1f} MiB), tags kept {b['tags_kept']} / deleted {b['tags_deleted']}; "
          f"built in {b['seconds']:.1f}s, each copy (cp -a) {b['copy_seconds']:.1f}s")
    p("checks: " + "; ".join(run["checks"]))
    for label, pair in run["pairs"].items():
        if pair.get("gcops"):
            _pair(label, pair, run, missed)
        if pair.get("concurrent"):
            _concurrent(label, pair, run, missed)
    mem = run["memory"]
    p("\n--- gcops peak memory (control side, gcops process incl. children; highest of the rounds) ---")
    peak = {}
    for label, rounds in mem.items():
        peak[label] = max(x["maxrss"] for x in rounds)
        sampled = max(x["rss_sampled_peak"] for x in rounds)
        p(f"garbage {label:3s}: ru_maxrss {peak[label] / MIB:6.1f} MiB (rounds {[round(x['maxrss'] / MIB, 1) for x in rounds]}) | "
          f"sampled peak RSS {sampled / MIB:6.1f} MiB | GC output lines {rounds[0]['gc_lines']} | "
          f"blobs deleted {rounds[0]['blobs_deleted']}")
    labels = list(mem)
    if len(labels) == 2:
        a, b = mem[labels[0]][0], mem[labels[1]][0]
        r = peak[labels[1]] / peak[labels[0]]
        p(f"ratio {labels[1]}/{labels[0]}: {r:.3f} (GC output lines x{b['gc_lines'] / max(1, a['gc_lines']):.2f}, "
          f"garbage x{b['blobs_deleted'] / max(1, a['blobs_deleted']):.2f})")
        ok = r <= RSS_RATIO_GOAL and max(peak.values()) < RSS_LIMIT
        p(f"  goal: ratio <= {RSS_RATIO_GOAL} and < {RSS_LIMIT // MIB} MiB: {'ok' if ok else 'GOAL MISSED'}")
        if not ok:
            missed.append(f"memory ratio {r:.3f} / peak {max(peak.values()) / MIB:.1f} MiB")
    m = run["measure"]
    if m is None:
        p(f"\ntotal benchmark time {run['total_seconds']:.1f}s (storage measurement timing skipped)")
        p("RESULT: " + ("all goals met" if not missed else "GOAL MISSED: " + "; ".join(missed)))
        return missed
    p(f"\n--- storage measurement time ({m['entries']} entries in the tree, median of {m['reps']}, {m['where']}) ---")
    agree = (m["gcops_bytes"], m["gcops_blobs"]) == (m["du_bytes"], m["du_blobs"])
    p(f"gcops measure_command: {m['gcops_bytes']} bytes, {m['gcops_blobs']} blobs | du -sB1 + find: "
      f"{m['du_bytes']} bytes, {m['du_blobs']} blobs | {'agree' if agree else 'DIFFER'}")
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
