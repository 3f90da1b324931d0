"""Which settings are worth it: the speed/accuracy frontier and what beats MADDNESS.

A setting is on the frontier of its product at a thread count when no other setting is
at least as fast and at least as accurate (relative error on held-out rows), and better
in one of the two.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

# The families the issue asks to compare MADDNESS against by name.
RIVALS = ("int8", "lowrank")


def frontier(points: Sequence[dict], threads: str) -> List[dict]:
    """The non-dominated records among ``points``, fastest first."""
    ordered = sorted(points, key=lambda r: (-r["speedup"][threads], r["error"]))
    kept, best_error = [], float("inf")
    for record in ordered:
        if record["error"] < best_error:
            kept.append(record)
            best_error = record["error"]
    return kept


def dominates(a: dict, b: dict, threads: str) -> bool:
    faster, lower = a["speedup"][threads], a["error"]
    return (faster >= b["speedup"][threads] and lower <= b["error"]
            and (faster > b["speedup"][threads] or lower < b["error"]))


def by_product(measurements: Sequence[dict]) -> Dict[str, List[dict]]:
    groups: Dict[str, List[dict]] = {}
    for record in measurements:
        groups.setdefault(record["product"], []).append(record)
    return groups


def mark_frontiers(measurements: Sequence[dict], thread_counts: Sequence[int]) -> None:
    """Sets ``record["frontier"][threads]`` on every record."""
    for records in by_product(measurements).values():
        for n in thread_counts:
            on = {id(r) for r in frontier(records, str(n))}
            for record in records:
                record["frontier"][str(n)] = id(record) in on


def maddness_verdicts(records: Sequence[dict], threads: str) -> List[str]:
    """Sentences on where MADDNESS stands against int8 and low-rank at one thread count."""
    maddness = [r for r in records if r["family"] == "maddness"]
    if not maddness:
        return []
    rivals = [r for r in records if r["family"] in RIVALS]
    lines = []
    for m in sorted(maddness, key=lambda r: r["params"]["ncodebooks"]):
        beaten_by = [r for r in rivals if dominates(r, m, threads)]
        if beaten_by:
            best = max(beaten_by, key=lambda r: r["speedup"][threads])
            lines.append(f"{m['label']} loses to {best['label']}: {best['speedup'][threads]:.2f}x at error "
                         f"{best['error']:.4f}, against {m['speedup'][threads]:.2f}x at error {m['error']:.4f}.")
    on = [m["label"] for m in maddness if m["frontier"][threads]]
    if on:
        lines.append("On the frontier: " + ", ".join(on) + ".")
    else:
        lines.append("No MADDNESS setting is on the frontier.")
    if rivals:
        fastest_m = max(maddness, key=lambda r: r["speedup"][threads])
        fastest_r = max(rivals, key=lambda r: r["speedup"][threads])
        if fastest_m["speedup"][threads] > fastest_r["speedup"][threads]:
            lines.append(f"MADDNESS reaches speed-ups no int8 or low-rank setting does ({fastest_m['label']}: "
                         f"{fastest_m['speedup'][threads]:.2f}x against {fastest_r['label']}: "
                         f"{fastest_r['speedup'][threads]:.2f}x), at error {fastest_m['error']:.4f}.")
    return lines


def maddness_trend(records: Sequence[dict]) -> str:
    """Whether MADDNESS's error falls with C, and what its 8-bit tables cost against float tables."""
    maddness = sorted((r for r in records if r["family"] == "maddness" and r["params"].get("leaves", 16) == 16),
                      key=lambda r: r["params"]["ncodebooks"])
    if len(maddness) < 2:
        return ""
    errors = [r["error"] for r in maddness]
    falls = all(b < a for a, b in zip(errors, errors[1:]))
    text = ("MADDNESS error falls with C" if falls else "MADDNESS error does not fall with C at every step") + ": " + \
        ", ".join(f"C={r['params']['ncodebooks']} {r['error']:.4f}" for r in maddness)
    floats = [r["info"].get("error_float_tables") for r in maddness]
    if all(f is not None for f in floats):
        text += "; with float tables instead of 8-bit ones: " + ", ".join(
            f"C={r['params']['ncodebooks']} {f:.4f}" for r, f in zip(maddness, floats))
        lossy = [f"C={r['params']['ncodebooks']}" for r, f in zip(maddness, floats) if r["error"] > 1.25 * f + 0.01]
        if lossy:
            text += (". The 8-bit tables lose much of the accuracy here (" + ", ".join(lossy) + "): one scale for "
                     "all tables cannot hold outputs of very different sizes")
    return text + "." + wide_trees_line(records)


def wide_trees_line(records: Sequence[dict]) -> str:
    """64-leaf trees against 16-leaf ones at the same C: error and one-thread speed-up."""
    by_c = {}
    for r in records:
        if r["family"] == "maddness":
            by_c.setdefault(r["params"]["ncodebooks"], {})[r["params"].get("leaves", 16)] = r
    pairs = [(c, k[16], k[64]) for c, k in sorted(by_c.items()) if 16 in k and 64 in k]
    if not pairs:
        return ""
    return " With 64-leaf trees at the same C (error, one-thread speed-up, 16 leaves then 64): " + ", ".join(
        f"C={c} {a['error']:.4f} at {a['speedup']['1']:.1f}x, {b['error']:.4f} at {b['speedup']['1']:.1f}x"
        for c, a, b in pairs) + "."
