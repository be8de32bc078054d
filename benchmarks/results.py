"""Each benchmark owns one section of RESULTS.md, between its own markers, and rewrites only that
section, so benchmarks can be rerun in any order without clobbering each other."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # not Linux: keep platform's name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def write_section(path: Path, name: str, markdown: str) -> None:
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text)


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where models train")


def device_flag(device: str) -> str:
    """The command-line flag that reproduces a run on ``device`` ('' for the CPU default)."""
    return "" if device == "cpu" else f" --device {device}"


def device_section(name: str, device: str) -> str:
    """RESULTS.md section of a benchmark run on ``device``: GPU runs never overwrite the CPU table."""
    return name if device == "cpu" else f"{name}-{device}"
