"""Progress of long fits: a caller's callable, or a tqdm bar when tqdm is installed."""

from __future__ import annotations


def progress_callback(progress):
    """(callback for the C++ fit, tqdm bar to close or None)."""
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    try:
        from tqdm.auto import tqdm  # an optional dependency, imported only when a bar is asked for
    except ImportError:
        return None, None
    bar = tqdm(total=0, desc="lutmul fit", unit="step")
    current = {"stage": None}

    def update(stage: str, done: int, total: int) -> None:
        if current["stage"] != stage:
            current["stage"] = stage
            bar.reset(total=total)
            bar.set_description(f"lutmul fit: {stage}", refresh=False)
        bar.n = done
        bar.refresh()

    return update, bar
