"""Progress of long calls: a caller's callable, or a tqdm bar when tqdm is installed."""

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


def progress_bar(enabled: bool, total=None, desc: str = "", unit: str = "it"):
    """A tqdm bar on stderr, or None when not asked for or tqdm is not installed."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm  # optional, as above
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit)
