"""The orphan sweep's schedule: once the live-grant indexes are complete, then every interval.

`Reconciler.sweep` does the work; this module only decides when. It must never run on a partial
view of the cluster, or it would strip principals of grants it has not seen yet. kopf fills its
indexes completely before the first resource handler runs, so the first handler call (or, with no
grants at all, the start-up check that found none) is the signal that the view is whole.
"""

from __future__ import annotations

import logging
import threading

from ecr_access.reconcile import LiveGrants, Reconciler, Registry

logger = logging.getLogger(__name__)


class Sweeper:
    """Runs the sweep in one background thread. `interval <= 0` disables it."""

    def __init__(self, reconciler: Reconciler, home: Registry, interval: float) -> None:
        self.reconciler = reconciler
        self.home = home
        self.interval = interval
        self.sweeps = 0
        self._live: LiveGrants | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def indexes_ready(self, live: LiveGrants) -> None:
        """Called by every handler; only the first call matters (cheap afterwards)."""
        if not self._ready.is_set():
            self._live = live
            self._ready.set()

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="orphan-sweep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()  # wake a thread still waiting for the indexes
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sweep_once(self) -> None:
        if self._live is None:
            return
        try:
            cleaned = self.reconciler.sweep(self._live, self.home)
        except Exception:  # a failed sweep is retried on the next interval; it must not kill the thread
            logger.exception("Orphan sweep failed; retrying in %.0fs", self.interval)
        else:
            logger.info("Orphan sweep done: %d repositories cleaned", len(cleaned))
        self.sweeps += 1

    def _loop(self) -> None:
        self._ready.wait()
        while not self._stop.is_set():
            self.sweep_once()
            self._stop.wait(self.interval)
