"""What the browser tests share: the system Chromium driven by selenium, servers started on free
loopback ports, and waits that are generous (a React or Vue app on a loaded 2-core machine) but bounded."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

# Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them). The driver is the system
# one, never a download: selenium-manager would try to fetch one, and this machine has no internet.
CHROMIUM = os.environ.get("TRANSFERLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = os.environ.get("TRANSFERLAB_CHROMEDRIVER") or shutil.which("chromedriver")
MISSING = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not path]
# .ci/run sets this: there a missing browser fails the tests instead of skipping them unseen.
REQUIRED = os.environ.get("TRANSFERLAB_REQUIRE_BROWSER") == "1"
requires_chromium = pytest.mark.skipif(
    bool(MISSING) and not REQUIRED, reason=f"{' and '.join(MISSING)} not found: install Debian's chromium and chromium-driver "
                          "(`apt-get install chromium chromium-driver`, as .ci/run does) to run the browser tests")

WAIT_S = 90  # one page or element; the pages are small, but the machine may be busy with a training run
SHOTS = Path(os.environ.get("TRANSFERLAB_BROWSER_SHOTS", Path(os.environ.get("TMPDIR", "/tmp")) /
                            "transferlab-browser-shots"))


def chromium(user_data_dir: Path):
    """A headless Chromium with an empty profile. The networking flags keep it off Google's services:
    on a closed network its background connections fail, many at a time, and slow every page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--window-size=1600,1000",
                f"--user-data-dir={user_data_dir}"):
        options.add_argument(arg)  # --no-sandbox: CI runs as root, where Chromium refuses its sandbox
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def wait(driver, condition: Callable, timeout: float = WAIT_S, message: str = ""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)


def visible(driver, xpath: str, timeout: float = WAIT_S):
    """The first displayed element at ``xpath``, once there is one."""
    from selenium.webdriver.common.by import By

    def found(d):
        return next((e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()), False)
    return wait(driver, found, timeout, f"nothing visible at {xpath} after {timeout} s ({driver.current_url})")


def by_text(text: str, tag: str = "*") -> str:
    """XPath of a ``tag`` whose whole visible text is ``text`` (React and Vue split text into nodes and
    pad it with spaces, so exact text() matches are brittle); with no tag, the innermost such element."""
    same = f"normalize-space(translate(., '\u00a0', ' '))={xpath_literal(text)}"
    return f"//{tag}[{same}]" if tag != "*" else f"//*[{same} and not(.//*[{same}])]"


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


def click(driver, xpath: str, timeout: float = WAIT_S) -> None:
    """Click the element at ``xpath`` once it is visible and nothing covers it (animations, toasts)."""
    from selenium.common.exceptions import ElementClickInterceptedException

    def clicked(d):
        try:
            visible(d, xpath, 1).click()
            return True
        except ElementClickInterceptedException:
            return False
        except Exception:  # noqa: BLE001 - not there yet (selenium's timeout); the outer wait bounds it
            return False
    wait(driver, clicked, timeout, f"could not click {xpath} within {timeout} s ({driver.current_url})")


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text.replace("\u00a0", " ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server command in its own process group (its workers and children go with it), logging to a
    file whose tail a failing test shows."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_http(self, url: str, timeout: float = 180) -> None:
        """Until ``url`` answers 200 (or the command dies, which fails at once with its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.name} did not answer {url} within {timeout} s:\n{self.log_tail()}")

    def wait_log(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_tail(1_000_000):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.5)
        raise AssertionError(f"{self.name} did not log {text!r} within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ctrl-C to the group (`transferlab serve` ignores SIGTERM), then SIGTERM, then SIGKILL to
        whatever of it is left (a worker outliving its parent)."""
        for sig, grace in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
