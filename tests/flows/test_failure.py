"""How a failed command ends: one line, exit 2 for the user's or the machine's problems, exit 1 and a
traceback file for a bug."""

import errno
import sqlite3

from flows.failure import LOG_DIR, describe
from transferlab.errors import DataError


def test_a_user_error_is_its_message():
    assert describe(DataError("dataset 'x' is empty\nsecond line"), ".") == ("error: dataset 'x' is empty", 2)


def test_a_full_disk_names_the_output_not_its_temporary_name(tmp_path):
    exc = OSError(errno.ENOSPC, "No space left on device", "reports/.evaluation.tmp-ab12cd")
    line, code = describe(exc, tmp_path)
    assert code == 2
    assert line.startswith("error: cannot write reports/evaluation: No space left on device (traceback in ")
    assert line.count("\n") == 0


def test_a_wrapped_sqlite_full_disk_is_the_machine_not_a_bug(tmp_path):
    class StoreError(Exception):  # what SQLAlchemy / MLflow raise around sqlite3's error
        pass

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise StoreError("(sqlite3.OperationalError) database or disk is full") from inner
    except StoreError as exc:
        line, code = describe(exc, tmp_path)
    assert code == 2 and "cannot write: SQLite store: database or disk is full" in line


def test_a_bug_is_one_line_and_its_traceback_goes_to_a_file(tmp_path):
    def deep():
        raise ValueError("boom\nmore detail")

    try:
        deep()
    except ValueError as exc:
        line, code = describe(exc, tmp_path)
    assert code == 1
    assert line.startswith("error: internal error (ValueError: boom); traceback in ")
    log = tmp_path / LOG_DIR
    (written,) = list(log.iterdir())
    assert str(written) in line
    text = written.read_text()
    assert "Traceback" in text and "in deep" in text and "more detail" in text


def test_the_traceback_goes_to_the_temporary_folder_when_the_project_will_not_take_it(tmp_path):
    blocked = tmp_path / "project"
    blocked.mkdir()
    (blocked / ".transferlab").write_text("a file where the folder would go")
    line, code = describe(RuntimeError("x"), blocked)
    assert code == 1 and "transferlab-errors" in line
