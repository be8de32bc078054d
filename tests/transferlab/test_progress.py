"""Progress lines: what a pipe, a CI log or the Prefect UI shows of a long training run."""

import io
import logging
import re
import sys

from synthetic_domains import blobs, mlp

from transferlab import progress
from transferlab.training import TrainSettings, train_classifier


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "transferlab.progress" and getattr(r, progress.MARK, False)]


def test_training_through_a_pipe_logs_one_line_per_epoch_with_loss_score_and_eta(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="transferlab")
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)  # one line per epoch, however fast the epochs are
    pipe = io.StringIO()  # stderr is a pipe, as under `transferlab run | tee`, DVC in CI or a Prefect worker
    monkeypatch.setattr(sys, "stderr", pipe)
    train, val = blobs("s", 240, 1), blobs("v", 60, 2)
    settings = TrainSettings(epochs=4, batch_size=32, lr=3e-3, patience=4, min_steps_per_epoch=5, seed=0)
    with progress.labelled("pretrain"):
        result = train_classifier(mlp(), train, val, settings)
    lines = progress_lines(caplog)
    assert len(lines) == len(result.history) == 4
    for k, line in enumerate(lines, start=1):
        assert line.startswith(f"[pretrain] train: epoch {k}/4, loss ")
        assert f"checkpoint score {result.history[k - 1]['checkpoint_score']:.4f}" in line
        assert "validation" in line  # the score's criterion is named
        assert re.search(r"elapsed \d+:\d\d", line)
    assert all(re.search(r"ETA \d+:\d\d$", line) for line in lines[:-1])
    assert "ETA" not in lines[-1]  # the last line has nothing left to estimate
    assert pipe.getvalue() == ""  # no bar was drawn into the pipe


def test_lines_are_rate_limited_but_the_first_and_last_always_go_out(caplog):
    caplog.set_level(logging.INFO, logger="transferlab")
    now = [0.0]
    p = progress.Progress("dann", 10, min_interval_s=10.0, clock=lambda: now[0])
    sent = []
    for done in range(1, 11):
        now[0] += 3.0  # 3 s a unit: a line at most every 4th unit
        sent.append(p.update(done, f"epoch {done}/10"))
    assert [i + 1 for i, s in enumerate(sent) if s] == [1, 5, 9, 10]
    first = progress_lines(caplog)[0]
    assert first == "dann: epoch 1/10, elapsed 0:03, ETA 0:27"


def test_an_early_stop_is_reported_even_inside_the_interval(caplog):
    caplog.set_level(logging.INFO, logger="transferlab")
    p = progress.Progress("train", 8, min_interval_s=60.0, clock=lambda: 1.0)
    p.update(1, "epoch 1/8")
    assert not p.update(2, "epoch 2/8")
    assert p.update(2, "stopped early after epoch 2", force=True)
    assert len(progress_lines(caplog)) == 2


def test_nothing_is_formatted_when_nobody_listens(caplog):
    caplog.set_level(logging.WARNING, logger="transferlab")
    assert not progress.Progress("x", 2).update(1, "epoch 1/2")


def test_labels_nest_and_clock_text_reads_as_a_clock(caplog):
    caplog.set_level(logging.INFO, logger="transferlab")
    with progress.labelled("select"), progress.labelled("trial 3/8"):
        progress.note("dann: %d%% done", 50)
    assert progress_lines(caplog) == ["[select > trial 3/8] dann: 50% done"]
    assert [progress.clock_text(s) for s in (0, 42.4, 725, 3723)] == ["0:00", "0:42", "12:05", "1:02:03"]
