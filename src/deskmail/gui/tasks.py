"""Engine work off the GUI thread, reported back as Qt signals.

Every call into the engine that can touch the network or the disk at length (discovery,
verification, sync, the doctor) runs as a :class:`Task` on Qt's thread pool. The task's
signals belong to an object living in the GUI thread, so Qt queues each emission from the
worker and the connected slots run in the GUI thread, where widgets may be touched.

An engine failure arrives as the :class:`~deskmail.errors.DeskmailError` it is (what, cause,
remedy). Anything else is a bug: its traceback goes to the log file only, and the window is
handed an error that says so in plain words, never the traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from deskmail.codes import Code
from deskmail.errors import DeskmailError
from deskmail.events import CancelToken

log = logging.getLogger("deskmail.gui")


class Task(QObject):
    """``work(task)`` run on the thread pool; ``task.report(x)`` from inside it emits ``progress``."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(object)  # a DeskmailError
    ended = Signal()  # after done or failed, whichever came
    asked = Signal(object)  # a question for a person; answer it with answer()

    def __init__(self, work: Callable[[Task], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._work = work
        self.cancel = CancelToken()
        self.running = False  # as the GUI thread sees it (False once ``ended`` was delivered)
        self.finished = threading.Event()  # set by the worker when the work returned or raised
        self._answered = threading.Event()
        self._answer = False
        self.ended.connect(self._stopped)  # first, so that slots connected later see running == False

    def start(self, pool: QThreadPool | None = None) -> None:
        self.running = True
        (pool or QThreadPool.globalInstance()).start(_Runner(self))

    def report(self, value: object) -> None:
        """Hand ``value`` to the GUI thread (callable from the worker)."""
        self._emit(self.progress, value)

    def _emit(self, signal: Any, *args: object) -> None:
        """Emit from the worker. When the task's Qt object is already gone (its window was destroyed while
        the work ran on), nobody is listening: the work is cancelled at its next safe point instead of
        failing with "Signal source has been deleted"."""
        try:
            signal.emit(*args)
        except RuntimeError:
            self.cancel.cancel()

    def ask(self, question: object) -> bool:
        """From the worker: put ``question`` to the GUI thread and wait for its answer (no, if cancelled)."""
        self._answered.clear()
        self._emit(self.asked, question)
        while not self._answered.wait(0.1):
            if self.cancel.cancelled:
                return False
        return self._answer

    def answer(self, yes: bool) -> None:
        """From the GUI thread: the answer to the question ``asked`` carried."""
        self._answer = yes
        self._answered.set()

    def _stopped(self) -> None:
        self.running = False

    def _run(self) -> None:
        try:
            result = self._work(self)
        except DeskmailError as exc:
            self._emit(self.failed, exc)
        except Exception as exc:  # a bug: logged whole, shown in words
            log.exception("unexpected error in background work")
            self._emit(self.failed, unexpected(exc))
        else:
            self._emit(self.done, result)
        self.finished.set()
        self._emit(self.ended)


class _Runner(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self._task = task

    def run(self) -> None:
        self._task._run()


def unexpected(exc: BaseException) -> DeskmailError:
    return DeskmailError(
        f"Something went wrong inside deskmail ({type(exc).__name__})",
        "this is a bug in deskmail, not a problem with your account",
        "try again; if it happens again, report it with the log file (Help → Log file)",
        code=Code.INTERNAL_ERROR,
    )
