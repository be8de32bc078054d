"""A Ctrl-C that lands in a destructor is not lost (flows/interrupts.py)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import os, signal, time
from flows import interrupts
if {install}:
    interrupts.install()

class Collected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the interrupt arrives while a destructor runs
        t = time.time()
        while time.time() - t < 0.2:
            pass

try:
    Collected()
    t = time.time()
    while time.time() - t < 5:
        pass
    print("not interrupted")
except KeyboardInterrupt:
    interrupts.caught()
    print(f"interrupted after {{time.time() - t:.1f}} s")
"""


@pytest.mark.parametrize("install", [True, False])
def test_an_interrupt_swallowed_by_a_destructor_is_delivered_again(install):
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(install=install)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if install:
        assert out.stdout.startswith("interrupted after 0."), out.stdout + out.stderr
        assert "Traceback" not in out.stderr and "KeyboardInterrupt" not in out.stderr  # it was not lost
    else:  # what Python does on its own: "Exception ignored in ...", and the program goes on
        assert out.stdout.strip() == "not interrupted" and "KeyboardInterrupt" in out.stderr
