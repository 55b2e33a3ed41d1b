"""Run a command and measure it: wall time, phases marked by output lines, peak RSS of its tree.

Memory is the sum of the resident set sizes of the process and all its descendants (for the
runner: the runner itself and the Jupyter kernel it starts), polled every ``interval`` seconds
with :mod:`psutil`; the peak of that sum is reported. Short spikes between two polls can be
missed, so the peak is a lower bound (at 0.2 s polling the loss is small for steps that last
seconds).
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measurement:
    """What :func:`run_measured` saw.

    ``marks``: label -> seconds since start when the first output line containing that label's
    marker appeared; ``peak_rss``: peak tree RSS in bytes over the whole run; ``peak_rss_after``:
    label -> peak tree RSS from that mark on (bytes); ``samples``: number of polls.
    """

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss: int
    marks: dict[str, float] = field(default_factory=dict)
    peak_rss_after: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    log_path: str | None = None
    killed_for_memory: bool = False


def tree_rss(proc: psutil.Process) -> int:
    """Sum of the RSS of ``proc`` and all its (recursive) children, in bytes (0 if gone)."""
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(argv: Sequence[str], *, markers: Mapping[str, str] | None = None,
                 log_path: str | os.PathLike[str] | None = None, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, interval: float = 0.2,
                 echo=None, rss_limit: int | None = None) -> Measurement:
    """Run ``argv`` to completion, polling its process tree's RSS every ``interval`` seconds.

    ``markers``: label -> text; the time of the first output line (stdout or stderr) containing
    the text is recorded in ``marks[label]``, and from then on the peak RSS is also tracked in
    ``peak_rss_after[label]``. Output goes to ``log_path`` (and to ``echo(line)`` if given).
    ``rss_limit`` (bytes): when the tree's RSS exceeds it, the whole tree is killed (protects a
    shared machine); the measurement then has ``killed_for_memory=True``.
    """
    markers = dict(markers or {})
    marks: dict[str, float] = {}
    after: dict[str, int] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=cwd, env=None if env is None else dict(env), bufsize=0)
    ps = psutil.Process(proc.pid)
    log = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed below

    def reader() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            now = time.perf_counter() - t0
            if log:
                log.write(raw)
                log.flush()
            line = raw.decode("utf-8", "replace")
            if echo:
                echo(line.rstrip("\n"))
            for label, text in markers.items():
                if label not in marks and text in line:
                    with lock:
                        marks[label] = now
                        after[label] = 0

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    peak, samples, killed = 0, 0, False
    while proc.poll() is None:
        rss = tree_rss(ps)
        samples += 1
        with lock:
            peak = max(peak, rss)
            for label in after:
                after[label] = max(after[label], rss)
        if rss_limit is not None and rss > rss_limit and not killed:
            killed = True
            kill_tree(ps)
        time.sleep(interval)
    wall = time.perf_counter() - t0
    th.join(timeout=10)
    if log:
        log.close()
    return Measurement(list(argv), proc.returncode, wall, peak, marks, after, samples,
                       str(log_path) if log_path else None, killed)


def kill_tree(proc: psutil.Process) -> None:
    """Kill ``proc`` and its descendants (children first)."""
    try:
        procs = proc.children(recursive=True) + [proc]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def machine_info() -> dict[str, object]:
    """CPU count, memory and load of this machine (for the record next to the timings)."""
    import platform

    vm = psutil.virtual_memory()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        load = None
    return {"cpus": os.cpu_count(), "memory_bytes": vm.total, "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_1_5_15": load}


def dir_bytes(path: str | os.PathLike[str]) -> int:
    """Total size of the files under ``path`` (bytes)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
