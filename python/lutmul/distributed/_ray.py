"""Ray, imported when first needed, and the connection to a cluster.

``import lutmul.distributed`` does not import Ray (its import takes a second and more);
the functions that use it call :func:`import_ray`, which names the extra to install.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional

INSTALL_HINT = "pip install 'lutmul[distributed]'"


def import_ray():
    """The ``ray`` module; ``ImportError`` naming the extra when Ray is not installed."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"lutmul.distributed needs Ray: {INSTALL_HINT}") from error
    return ray


def check_address(address: Optional[str]) -> Optional[str]:
    """``None`` (start a local cluster), ``"auto"``, ``"ray://host:port"`` or ``"host:port"``."""
    if address is None:
        return None
    if not isinstance(address, str):
        raise TypeError(f"address must be None or a str such as 'auto' or 'ray://host:10001', "
                        f"got {type(address).__name__}")
    if address != "auto" and not address.startswith("ray://") and ":" not in address:
        raise ValueError(f"address must be None, 'auto', 'ray://host:port' or 'host:port', got {address!r}")
    return address


# Ray Client's proxy starts a server process for each client; on a busy machine that start
# sometimes fails at once and the next attempt succeeds: "Starting Ray client server failed"
# (its logs empty), or "Initialization failure from server" when the proxy finds the new
# server already dead (psutil.ZombieProcess; ray-project/ray#63202, a race in the proxy's fork).
CLIENT_CONNECT_ATTEMPTS = 3
TRANSIENT_CLIENT_FAILURES = ("client server failed", "Initialization failure from server")


def _join(ray, address: str, options: dict) -> None:
    for attempt in range(1, CLIENT_CONNECT_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionError as error:
            transient = any(failure in str(error) for failure in TRANSIENT_CLIENT_FAILURES)
            if not address.startswith("ray://") or not transient or attempt == CLIENT_CONNECT_ATTEMPTS:
                raise
            ray.shutdown()  # what the failed attempt set up
            time.sleep(attempt)


@contextlib.contextmanager
def connected(address: Optional[str], num_cpus: Optional[int] = None) -> Iterator[bool]:
    """Connects this process to Ray for the ``with`` block; yields whether it connected here.

    Already connected (``ray.init`` called before): that connection is used and left open.
    ``address=None``: a local cluster is started for the block (``num_cpus`` CPUs, all of
    this machine's by default) and shut down after it; ``"auto"``, ``"ray://…"`` or
    ``"host:port"`` joins a running one and disconnects after.
    """
    address = check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield False
        return
    options = dict(logging_level="WARNING", log_to_driver=True, configure_logging=True)
    if address is None:
        options.update(num_cpus=num_cpus, include_dashboard=False)
        # A private cluster must not join one the environment points at.
        saved = os.environ.pop("RAY_ADDRESS", None)
        try:
            ray.init(address="local", **options)  # "local": never a running cluster found on disk
        finally:
            if saved is not None:
                os.environ["RAY_ADDRESS"] = saved
    else:
        _join(ray, address, options)
    try:
        yield True
    finally:
        ray.shutdown()
