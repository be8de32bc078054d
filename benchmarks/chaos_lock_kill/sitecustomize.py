"""Fault injection for ``benchmarks/chaos.py``: on this process's N-th write of ``dvc.lock``
(``CHAOS_KILL_AT_LOCK_WRITE=N``), write half of it, flush it to disk, and kill -9 the whole process
group: the kill inside DVC's own lock write that the issue's trials hit. Only on PYTHONPATH for that
case; it wraps DVC's YAML dumper, so it sees the stream DVC writes to (``dvc.lock`` itself, or the
temporary file beside it when the write is atomic)."""

import importlib.abc
import io
import os
import signal
import sys

MODULE = "dvc.utils.serialize._yaml"
AT = int(os.environ.get("CHAOS_KILL_AT_LOCK_WRITE", "0"))


def _wrap(module) -> None:
    dump, seen = module._dump, [0]

    def _dump(data, stream):
        if "dvc.lock" in str(getattr(stream, "name", "")):
            seen[0] += 1
            if seen[0] == AT:
                text = io.StringIO()
                dump(data, text)
                stream.write(text.getvalue()[: len(text.getvalue()) // 2])
                stream.flush()
                os.fsync(stream.fileno())
                os.killpg(os.getpgrp(), signal.SIGKILL)
        return dump(data, stream)

    module._dump = _dump


class _Inject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                if (spec := finder.find_spec(name, path, target)) is not None:
                    run = spec.loader.exec_module
                    spec.loader.exec_module = lambda module: (run(module), _wrap(module))
                    return spec
        return None


if AT:
    sys.meta_path.insert(0, _Inject())
