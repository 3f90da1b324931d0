"""A compiled encoder's plan: one row per linear layer, and its text table."""

from __future__ import annotations

from typing import List

# The keys of a plan row, in the order the table shows them.
PLAN_COLUMNS = ("block", "layer", "kind", "params", "bytes", "us", "exact_us", "layer_error", "alone_loss",
                "model_cosine")


def plan_table(plan: List[dict]) -> str:
    """The plan as aligned text: one line per layer, then the totals."""
    header = ("block", "layer", "operator", "bytes", "µs", "exact µs", "layer err", "alone loss", "model cos")
    lines = []
    for row in plan:
        params = ", ".join(f"{k}={v}" for k, v in sorted(row.get("params", {}).items()))
        lines.append((str(row["block"]), row["layer"], row["kind"] + (f" ({params})" if params else ""),
                      f"{row['bytes']:,}", f"{row['us']:.1f}", f"{row['exact_us']:.1f}",
                      f"{row['layer_error']:.4f}", f"{row['alone_loss']:.2e}", f"{row['model_cosine']:.5f}"))
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i])
              for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]
    if plan:
        us, exact_us = sum(r["us"] for r in plan), sum(r["exact_us"] for r in plan)
        out.append(f"linear layers: {us:.0f} µs against {exact_us:.0f} µs exact ({exact_us / us:.2f}x), "
                   f"{sum(r['bytes'] for r in plan):,} bytes")
    return "\n".join(out)
