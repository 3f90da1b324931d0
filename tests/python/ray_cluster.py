"""A real Ray cluster for the tests: a head and worker nodes, each a `ray start --block`
process of its own (its own raylet, object store and worker processes), on a loopback address only.

Every node is started in a new session, which holds everything it spawns (Ray's worker
processes get process groups of their own, but stay in the session); stop() ends those
sessions' processes (SIGTERM, then SIGKILL after a grace period), nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NODE_OBJECT_STORE_BYTES = 128 << 20
# A loopback address other than 127.0.0.1, which Ray replaces by the machine's routable
# address (so nodes would talk over eth0's address); every 127/8 address is on lo.
NODE_IP = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((NODE_IP, 0))
        return probe.getsockname()[1]


def ray_executable() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    found = beside if os.path.exists(beside) else shutil.which("ray")
    if found is None:
        raise RuntimeError("the `ray` command is not installed beside this Python")
    return found


def session_members(session: int):
    """Pids of the live processes (not zombies) in session ``session``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry))
    return members


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return stream.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RayCluster:
    """``with RayCluster(workers=2) as cluster:``; ``cluster.address`` is the head's,
    ``cluster.client_address`` its Ray Client server's (``ray://``)."""

    def __init__(self, workers: int = 2, cpus_per_node: int = 1):
        self.workers = workers
        self.cpus_per_node = cpus_per_node
        self.port = free_port()
        self.address = f"{NODE_IP}:{self.port}"
        self.client_port = free_port()
        self.client_address = f"ray://{NODE_IP}:{self.client_port}"  # Ray Client's server on the head
        self.temp_dir = tempfile.mkdtemp(prefix="lutmul-ray-", dir="/tmp")  # short: Ray's socket paths
        self.nodes = []  # Popen of each `ray start --block`, head first
        self._logs = []

    def _start_node(self, name: str, arguments):
        log = open(os.path.join(self.temp_dir, f"{name}.log"), "wb")
        self._logs.append(log)
        command = [ray_executable(), "start", "--block", "--num-cpus", str(self.cpus_per_node),
                   "--node-ip-address", NODE_IP, "--disable-usage-stats",
                   "--object-store-memory", str(NODE_OBJECT_STORE_BYTES)] + arguments
        environment = dict(os.environ)
        environment.pop("RAY_ADDRESS", None)
        self.nodes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, env=environment))

    def start(self, timeout: float = 120.0) -> "RayCluster":
        self._start_node("head", ["--head", "--port", str(self.port), "--temp-dir", self.temp_dir,
                                  "--include-dashboard=false", "--ray-client-server-port", str(self.client_port)])
        self._wait_for_start(timeout)
        # One node at a time: nodes started together may pick the same free port for their
        # raylets (a raylet then dies binding it).
        for index in range(self.workers):
            self._start_node(f"worker{index}", ["--address", self.address])
            self._wait_for_start(timeout)
        return self

    def _wait_for_start(self, timeout: float) -> None:
        """Waits until the last node's `ray start` says the node runs."""
        deadline = time.monotonic() + timeout
        log = self._logs[-1]
        while time.monotonic() < deadline:
            self._check_alive()
            log.flush()
            with open(log.name, "rb") as stream:
                if b"Ray runtime started" in stream.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"a Ray node did not start within {timeout:.0f} s; {self.log_tail()}")

    def wait_for_nodes(self, ray, timeout: float = 120.0) -> None:
        """Waits (connected through ``ray``) until every node is alive in the cluster."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            alive = [node for node in ray.nodes() if node["Alive"]]
            if len(alive) == 1 + self.workers:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{1 + self.workers} Ray nodes did not join within {timeout:.0f} s; {self.log_tail()}")

    def _check_alive(self) -> None:
        for process in self.nodes:
            if process.poll() is not None:
                raise RuntimeError(f"`ray start` exited with status {process.returncode}; {self.log_tail()}")

    def log_tail(self) -> str:
        parts = []
        for log in self._logs:
            log.flush()
            with open(log.name, "rb") as stream:
                parts.append(f"{os.path.basename(log.name)}: " + stream.read()[-1500:].decode(errors="replace"))
        return "\n".join(parts)

    def ray_logs(self, pattern: str, limit: int = 3000) -> str:
        """The tails of the Ray log files named like ``pattern`` (glob) in this cluster's sessions."""
        import glob

        parts = []
        for path in sorted(glob.glob(os.path.join(self.temp_dir, "session_*", "logs", pattern))):
            with open(path, "rb") as stream:
                parts.append(f"{path}: " + stream.read()[-limit:].decode(errors="replace"))
        return "\n".join(parts) or f"no log named {pattern} in {self.temp_dir}"

    def kill_while_running(self, name: str, busy_cpu_seconds: float, run, join_timeout: float = 600.0):
        """``run()`` in a thread of its own; SIGKILL of the first process named ``name`` started
        after this call once it has used ``busy_cpu_seconds`` of CPU (it is at work, not still
        loading); then ``run``'s result, or its exception raised here."""
        import threading

        outcome = {}

        def target():
            try:
                outcome["result"] = run()
            except BaseException as error:  # reported by the calling thread
                outcome["error"] = error

        earlier = set(self.processes(name))  # earlier runs' actors, maybe still exiting
        thread = threading.Thread(target=target)
        thread.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            for pid in set(self.processes(name)) - earlier:
                if cpu_seconds(pid) > busy_cpu_seconds:
                    victim = pid
            time.sleep(0.1)
        assert victim is not None, f"no {name} process was seen at work"
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=join_timeout)
        assert not thread.is_alive(), f"still running {join_timeout:.0f} s after the kill"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def processes(self, name: str):
        """Pids of the cluster's processes whose command line starts with ``name`` (Ray names
        an actor's process ``ray::ClassName``), on any node."""
        return [pid for node in self.nodes for pid in session_members(node.pid) if command_line(pid).startswith(name)]

    def _signal_all(self, number: int) -> None:
        for node in self.nodes:
            for pid in session_members(node.pid):
                try:
                    os.kill(pid, number)
                except ProcessLookupError:
                    pass

    def stop(self, grace: float = 3.0) -> None:
        # Ray's GCS and agents take ten seconds and more to leave on SIGTERM; a test cluster
        # has nothing to save, so they get a short grace, then SIGKILL.
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(session_members(node.pid) for node in self.nodes) and time.monotonic() < deadline:
            time.sleep(0.2)
        self._signal_all(signal.SIGKILL)
        for process in self.nodes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
