"""A Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt in whatever bytecode runs when SIGINT arrives. When that is a
destructor (``__del__``) or a weakref callback, the interpreter prints "Exception ignored in ..."
and goes on: measured here, dulwich's object store was being collected right after prepare, and
the pipeline then ran to its end, ignoring the Ctrl-C. The console script's handler raises as
Python's does and, until the command has caught the interrupt (:func:`caught`), delivers it again
every half second, so a swallowed one is raised at the next ordinary bytecode.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

REDELIVER_S = 0.5
_started = threading.Event()
_stopped = threading.Event()


def _again() -> None:
    while not _stopped.wait(REDELIVER_S):
        os.kill(os.getpid(), signal.SIGINT)


def _handler(signum, frame) -> None:
    if not _started.is_set():
        _started.set()
        threading.Thread(target=_again, name="interrupt-redelivery", daemon=True).start()
    raise KeyboardInterrupt


def install() -> None:
    """Take over SIGINT for this process (the console script only), unless it is ignored (``nohup``)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handler)
        sys.unraisablehook = _quiet(sys.unraisablehook)


def _quiet(hook):
    """The interrupt a destructor swallowed is delivered again: no "Exception ignored" traceback for it."""
    def unraisable(info) -> None:
        if not isinstance(info.exc_value, KeyboardInterrupt):
            hook(info)
    return unraisable


def caught() -> None:
    """The command caught the interrupt: stop delivering it, so that clean-up runs undisturbed."""
    _stopped.set()
