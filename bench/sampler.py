"""Peak RSS and CPU of the processes a case runs (worker, psql, pgloader), every 100 ms.

A process's figure includes its children (a worker's process pool, pgloader's helpers),
so a loader that forks cannot hide memory. RSS is summed over the watched processes alive
at the same instant; the peak is the largest such sum over the case.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psutil


class Sampler:
    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_rss = 0
        # Peaks of the watched processes alone and of their children (the worker's CSV
        # chunker), each taken on its own: they tell which side grew, they need not add up
        # to peak_rss.
        self.peak_own_rss = 0
        self.peak_children_rss = 0
        self.samples = 0
        self._roots: dict[int, psutil.Process] = {}
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def watch(self, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        with self._lock:
            self._roots[pid] = proc
        self.sample()

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU of the watched processes and their children, as last seen."""
        with self._lock:
            return sum(self._cpu.values())

    def sample(self) -> None:
        total = own = children = 0
        with self._lock:
            roots = list(self._roots.items())
        for pid, proc in roots:
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    t = proc.cpu_times()
                    cpu = t.user + t.system
                kids = proc.children(recursive=True)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            own += rss
            for kid in kids:
                try:
                    kid_rss = kid.memory_info().rss
                    rss += kid_rss
                    children += kid_rss
                    kt = kid.cpu_times()
                    cpu += kt.user + kt.system
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    pass
            total += rss
            with self._lock:
                self._cpu[pid] = max(cpu, self._cpu.get(pid, 0.0))
        self.samples += 1
        self.peak_rss = max(self.peak_rss, total)
        self.peak_own_rss = max(self.peak_own_rss, own)
        self.peak_children_rss = max(self.peak_children_rss, children)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


class CpuMeter:
    """CPU used by a server (PostgreSQL, Temporal) between two readings.

    Backends that exit during the window are counted through the parent's
    children_user/children_system, live ones through their own times.
    """

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)

    def read(self) -> float:
        t = self.proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for kid in self.proc.children(recursive=True):
            try:
                kt = kid.cpu_times()
                total += kt.user + kt.system
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass
        return total
