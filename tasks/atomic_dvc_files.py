"""DVC writes ``dvc.lock`` (and every file it dumps) by truncating it and writing in place, so a kill
between the two leaves it empty and the next ``dvc repro`` dies reading it, before any of our code
runs. This makes those writes atomic: a temporary file beside the target (``.dvc.lock.tmp-*``, which
:mod:`tasks.recovery` removes if a kill leaves one), flushed to disk, then ``os.replace``.

It applies in every Python process of the project's environment, ``dvc`` on the command line
included: ``make install`` (``python -m tasks.atomic_dvc_files``) puts a ``.pth`` file into the
environment whose one line installs an import hook, and the hook patches DVC's writer when DVC is
imported (DVC is not imported at start-up, so other programs pay nothing). The same hook has DVC
repair a transferlab project's damaged ``dvc.lock`` (:func:`tasks.recovery.repair_dvc_lock`) before
it reads it, so that ``dvc repro`` recovers as ``transferlab run`` does; and when ``dvc repro`` finds
the repository locked by a transferlab run, its refusal names that run (pid, start, command)
instead of DVC's generic "Unable to acquire lock". Our own processes also
call :func:`install` before they use DVC, so they are safe in an environment set up without it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

TARGET = "dvc.utils.serialize._common"
# The modules that bind DVC's writer by name (``from ._common import _dump_data``).
BINDERS = ("dvc.utils.serialize", "dvc.utils.serialize._yaml", "dvc.utils.serialize._json",
           "dvc.utils.serialize._toml", "dvc.utils.serialize._py")
PTH = "transferlab-atomic-dvc-files.pth"
PTH_LINE = ('import sys; exec("try:\\n import tasks.atomic_dvc_files as m; m.install()\\n'
            'except Exception:\\n pass")\n')  # a moved or removed project must not break Python


def _mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic(original):
    """DVC's ``_dump_data(path, data, dumper, fs=None, **dumper_args)``, writing locally via replace."""
    if getattr(original, "transferlab_atomic", False):
        return original

    def _dump_data(path, data, dumper, fs=None, **dumper_args):
        import tempfile  # here, not at start-up

        if fs is not None and getattr(fs, "protocol", None) != "local":
            return original(path, data, dumper, fs=fs, **dumper_args)
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-",
                                   dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)  # reopened by name, so that the stream names the file it writes
        try:
            with open(tmp, "w", encoding="utf-8") as stream:
                dumper(data, stream, **dumper_args)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(tmp, _mode(path))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    _dump_data.transferlab_atomic = True
    return _dump_data


def _patch_loaded() -> None:
    common = sys.modules[TARGET]
    common._dump_data = atomic(common._dump_data)
    for name in BINDERS:
        if (module := sys.modules.get(name)) is not None and hasattr(module, "_dump_data"):
            module._dump_data = common._dump_data


class _AfterImport:
    """A meta-path finder (no importlib.abc base: this runs at every start-up) that finds nothing itself: wraps the real loader of one module to call ``patch`` once it has run."""

    def __init__(self, name: str, patch) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                if (spec := finder.find_spec(name, path, target)) is not None:
                    break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            self.patch(module)
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)

        spec.loader.exec_module = exec_module
        return spec


def after_import(name: str, patch) -> None:
    """Call ``patch(module)`` now if ``name`` is loaded, else right after it is first imported."""
    if name in sys.modules:
        patch(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, patch))


def _is_project(root: Path) -> bool:
    dvc_yaml = root / "dvc.yaml"
    return dvc_yaml.is_file() and "transferlab stage" in dvc_yaml.read_text(errors="replace")


def repair_before_load(module) -> None:
    """DVC reads dvc.lock before any stage runs: a damaged one (not from DVC's own atomic writes, but
    e.g. a copy or an edit) is put right first, with the same one-line note as ``transferlab repair``."""
    load = module.Lockfile._load
    if getattr(load, "transferlab_repair", False):
        return

    def _load(self, **kwargs):
        root = Path(os.path.abspath(os.fspath(self.path))).parent
        if _is_project(root):
            from tasks.recovery import repair_dvc_lock

            if note := repair_dvc_lock(root):
                print(f"note: {note}", file=sys.stderr)
        return load(self, **kwargs)

    _load.transferlab_repair = True
    module.Lockfile._load = _load


def name_lock_holder(module) -> None:
    """DVC's refusal of a locked repository says only that some DVC process may be running; when a
    transferlab run holds the project, say which one, in DVC's own one-line error."""
    lock = module.Lock.lock
    if getattr(lock, "transferlab_holder", False):
        return

    def _lock(self):
        try:
            return lock(self)
        except module.LockError:
            root = Path(os.path.abspath(os.fspath(self.lockfile))).parents[2]  # ROOT/.dvc/tmp/lock
            if _is_project(root):
                from tasks.project_lock import busy_holder

                if holder := busy_holder(root):
                    raise module.LockError(f"another run holds {root} ({holder}); wait for it to end "
                                           "and run the command again") from None
            raise

    _lock.transferlab_holder = True
    module.Lock.lock = _lock


def install() -> None:
    """Make DVC's writes atomic in this process, have it repair a damaged lock of a transferlab
    project before reading it and name the run that holds a busy project: now if DVC is loaded,
    else when it is imported."""
    after_import(TARGET, lambda _: _patch_loaded())
    after_import("dvc.dvcfile", repair_before_load)
    after_import("dvc.lock", name_lock_holder)


def write_pth(site_packages: Path | None = None) -> Path:
    """Put the start-up line into the environment (``make install`` runs this)."""
    import sysconfig

    folder = Path(site_packages or sysconfig.get_paths()["purelib"])
    path = folder / PTH
    path.write_text(PTH_LINE)
    return path


if __name__ == "__main__":
    print(f"DVC's file writes are atomic in this environment ({write_pth()})")
