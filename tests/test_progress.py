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
