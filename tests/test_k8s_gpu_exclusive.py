"""The replica book: previous counts, GPU turn-taking, restore that survives interrupts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from deploy.k8s.gpu_exclusive import ReplicaBook


class Counter:
    """An in-memory scale target; `log` is shared so tests see the order of changes."""

    def __init__(self, key: str, replicas: int | None, log: list[tuple[str, int]]) -> None:
        self.key, self.value, self.log = key, replicas, log
        self.on_scale: Callable[[], None] | None = None

    def replicas(self) -> int | None:
        return self.value

    def scale(self, replicas: int) -> None:
        hook, self.on_scale = self.on_scale, None
        if hook:
            hook()
        self.value = replicas
        self.log.append((self.key, replicas))

    def settled(self) -> bool:
        return True


def test_previous_count_is_the_one_before_the_first_change() -> None:
    log: list[tuple[str, int]] = []
    book, a = ReplicaBook(), Counter("a", 2, log)
    book.scale("a", a, 0, gpu=True)
    book.scale("a", a, 1, gpu=True)
    book.restore()
    assert a.value == 2


def test_make_room_stops_only_other_gpu_targets_of_the_suite() -> None:
    log: list[tuple[str, int]] = []
    book = ReplicaBook()
    a, b, cpu = Counter("a", 1, log), Counter("b", 0, log), Counter("cpu", 1, log)
    book.remember("a", a, gpu=True)
    book.remember("cpu", cpu, gpu=False)
    assert book.make_room("b") == ["a"]
    book.scale("b", b, 1, gpu=True)
    assert (a.value, b.value, cpu.value) == (0, 1, 1)
    assert book.make_room("b") == []  # its own target is never stopped


def test_restore_scales_down_before_it_scales_up() -> None:
    log: list[tuple[str, int]] = []
    book = ReplicaBook()
    a, b = Counter("a", 1, log), Counter("b", 0, log)
    book.remember("a", a, gpu=True)
    book.make_room("b")
    book.scale("b", b, 1, gpu=True)
    log.clear()
    assert book.restore() == []
    assert log == [("b", 0), ("a", 1)]


def test_interrupted_restore_leaves_the_rest_for_the_next_call() -> None:
    log: list[tuple[str, int]] = []
    book = ReplicaBook()
    targets = [Counter(k, 0, log) for k in "abc"]
    for t in targets:
        book.scale(t.key, t, 1, gpu=False)

    def interrupt() -> None:
        raise KeyboardInterrupt

    targets[1].on_scale = interrupt
    with pytest.raises(KeyboardInterrupt):
        book.restore()
    assert [t.value for t in targets] == [0, 1, 1]
    assert sorted(book.keys()) == ["b", "c"]
    book.restore()
    assert [t.value for t in targets] == [0, 0, 0]


def test_nested_restore_from_a_signal_handler_restores_each_once() -> None:
    log: list[tuple[str, int]] = []
    book = ReplicaBook()
    targets = [Counter(k, 0, log) for k in "abc"]
    for t in targets:
        book.scale(t.key, t, 1, gpu=False)
    log.clear()
    targets[0].on_scale = lambda: book.restore()  # as if a handler ran close() mid-restore
    book.restore()
    assert sorted(log) == [("a", 0), ("b", 0), ("c", 0)]
    assert book.keys() == []


def test_a_failing_restore_does_not_stop_the_others() -> None:
    log: list[tuple[str, int]] = []
    book = ReplicaBook()
    a, b = Counter("a", 0, log), Counter("b", 0, log)
    book.scale("a", a, 1, gpu=False)
    book.scale("b", b, 1, gpu=False)

    def boom() -> None:
        raise RuntimeError("API server went away")

    a.on_scale = boom
    failures = book.restore()
    assert len(failures) == 1 and failures[0].startswith("a: cannot restore 0 replicas")
    assert b.value == 0
