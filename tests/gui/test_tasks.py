"""Background work outliving its window: it is cancelled, it does not crash its thread."""

from __future__ import annotations

import threading
from typing import Any

import shiboken6

from deskmail.gui.tasks import Task


def test_work_whose_task_object_is_gone_is_cancelled_not_crashed(qtbot: Any) -> None:
    go = threading.Event()
    reported = threading.Event()

    def work(task: Task) -> str:
        go.wait(10)
        task.report("progress nobody hears")
        reported.set()
        task.cancel.check()  # the next safe point: stops here
        return "not reached"

    task = Task(work)
    task.start()
    shiboken6.delete(task)  # what destroying the window that owned it does to it
    go.set()
    assert task.finished.wait(10) and reported.is_set()
    assert task.cancel.cancelled
