"""`facecue.progress`: bars on a terminal, a few plain lines in a log."""

from __future__ import annotations

import io
import sys
import time

from facecue import progress


class _Log(io.StringIO):
    def isatty(self):
        return False


def test_a_log_gets_plain_lines_at_most_every_few_seconds(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.2)
    started = time.monotonic()
    for _ in progress.progress_bar(range(300), desc="render", unit="frame"):
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert all(line.startswith("render:") for line in lines), text
    assert 1 <= len(lines) <= elapsed / 0.2 + 3, f"{len(lines)} lines in {elapsed:.1f} s:\n{text}"
    assert "300/300" in lines[-1], "the final state is printed"


def test_disabled_is_silent(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress.progress_bar(enabled=False, total=10)
    bar.update(3)
    bar.close()
    assert list(progress.progress_bar(range(3), enabled=False)) == [0, 1, 2] and log.getvalue() == ""


def test_phone_recognition_reports_progress(monkeypatch):
    from facecue.assets import asset_path
    from facecue.audio import recognize_phones
    from facecue.io import read_audio

    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    recognize_phones(read_audio(asset_path("speech.wav"))[: 3 * 16000], progress=True)
    assert log.getvalue().startswith("phones:"), log.getvalue()


def test_a_log_gets_a_line_per_interval_of_a_fast_clock(monkeypatch, stderr_log):
    """Ten minutes of training on tqdm's clock (a step a second, a loss in the postfix each step):
    about one line per interval, never one per step or per postfix."""
    import tqdm.std

    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # tqdm's clock: bars read it as self._time
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)  # no monitor thread on the real clock
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 10.0)
    with progress.progress_bar(total=600, desc="train", unit="step", dynamic_ncols=True) as bar:
        for step in range(600):
            now[0] += 1.0
            bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
            bar.update(1)
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("train")
    assert "\r" not in text and "\x1b" not in text and len(lines) == len(text.splitlines())
    assert 600 / 10 / 2 <= len(lines) <= 600 / 10 + 2, f"{len(lines)} lines:\n{text}"
    assert "600/600" in lines[-1] and "loss=0.0017" in lines[-1], "the final state, with its postfix"


def test_postfix_and_description_changes_print_nothing_themselves_in_a_log(stderr_log):
    bar = progress.progress_bar(total=500, desc="batch", unit="video")
    for i in range(500):
        bar.update(1)
        bar.set_postfix(failed=i + 1)
        bar.set_postfix_str(f"failed={i + 1}")
        bar.set_description("batch")
        bar.set_description_str("batch:")
    bar.close()
    lines = stderr_log.bar_lines("batch")
    assert len(lines) == len(stderr_log.getvalue().splitlines()) == 2, stderr_log.getvalue()
    assert "0/500" in lines[0] and "500/500" in lines[1] and "failed=500" in lines[1]


def test_a_terminal_gets_an_ordinary_redrawn_bar(monkeypatch):
    from tqdm import tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    bar = progress.progress_bar(total=3, desc="train", unit="step", dynamic_ncols=True)
    assert type(bar) is tqdm and bar.fp is not None
    bar.set_postfix(loss="0.5")  # redraws at once, as tqdm does
    assert screen.getvalue().count("\r") == 2 and "loss=0.5" in screen.getvalue()
    bar.update(3)
    bar.close()
