"""One GPU: the suite's GPU aliases run one at a time, and every replica count the suite changes
is put back at the end (previous counts are recorded before the first change)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from deploy.k8s.scaling import ScaleTarget

log = logging.getLogger(__name__)


@dataclass
class _Record:
    target: ScaleTarget
    previous: int  # 0 when the object did not exist before the suite
    alias: str
    gpu: bool


class ReplicaBook:
    """Previous replica counts of everything the suite scaled, and the GPU turn-taking.

    `restore()` is idempotent and safe from a `finally` or a signal handler: each record is
    taken out of the book before it is restored, so a second call never restores it twice.
    """

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def remember(self, alias: str, target: ScaleTarget, gpu: bool) -> None:
        """Record the count before the first change; later calls keep the first record."""
        if target.key in self._records:
            return
        current = target.replicas()
        with self._lock:
            self._records.setdefault(target.key, _Record(target, current or 0, alias, gpu))

    def scale(self, alias: str, target: ScaleTarget, replicas: int, gpu: bool) -> None:
        self.remember(alias, target, gpu)
        target.scale(replicas)

    def make_room(
        self, keep: str, settle: Callable[[ScaleTarget], None] | None = None
    ) -> list[str]:
        """Scale to zero every GPU target the suite touched except `keep` (a target key; the
        same alias may have two, raw and KServe); returns the keys stopped."""
        stopped = []
        for record in list(self._records.values()):
            if not record.gpu or record.target.key == keep:
                continue
            if (record.target.replicas() or 0) > 0:
                record.target.scale(0)
                stopped.append(record.target.key)
                if settle is not None:
                    settle(record.target)
        return stopped

    def keys(self, alias: str | None = None) -> list[str]:
        return [k for k, r in self._records.items() if alias is None or r.alias == alias]

    def restore(self, alias: str | None = None) -> list[str]:
        """Put back the previous counts (all, or one alias's); returns the failures as text.

        Scale-downs go first so that restoring never runs two GPU pods at once. Each record
        leaves the book just before its own restore: an interrupt part-way leaves the rest for
        the next call, and a nested call (a signal handler) never restores one twice.
        """
        picked = [r for r in list(self._records.values()) if alias is None or r.alias == alias]
        failures: list[str] = []
        downs, ups = [], []
        for record in picked:
            try:
                current = record.target.replicas()
            except Exception as exc:  # noqa: BLE001 - keep restoring the others
                failures.append(f"{record.target.key}: cannot read replicas: {exc}")
                continue
            if current is None or current == record.previous:
                self._take(record)
                continue
            (downs if record.previous < current else ups).append(record)
        for record in downs + ups:
            if not self._take(record):
                continue  # restored meanwhile by a nested call
            try:
                record.target.scale(record.previous)
                log.info("restored %s to %d replicas", record.target.key, record.previous)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{record.target.key}: cannot restore {record.previous} replicas: {exc}")
            except BaseException:
                # Interrupted mid-request: keep it in the book (scaling again is harmless).
                with self._lock:
                    self._records.setdefault(record.target.key, record)
                raise
        for failure in failures:
            log.error("replica restore failed: %s", failure)
        return failures

    def _take(self, record: _Record) -> bool:
        with self._lock:
            return self._records.pop(record.target.key, None) is not None
