"""Fault injection for ``benchmarks/chaos.py``: on this process's N-th write of ``dvc.lock``
(``CHAOS_KILL_AT_LOCK_WRITE=N``), write half of it, flush it to disk, and kill -9 the whole process
group: the kill inside DVC's own lock write that the issue's trials hit. Only on PYTHONPATH for that
case; it wraps DVC's YAML dumper, so it sees the stream DVC writes to (``dvc.lock`` itself, or the
temporary file beside it when the write is atomic)."""

import io
import os
import signal

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


if AT:
    from tasks.atomic_dvc_files import after_import

    after_import(MODULE, _wrap)
