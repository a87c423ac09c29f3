"""Shared fixtures. Data under ../shared/data is optional: tests that need it skip with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
# Small models on a 2-core machine: torch's extra threads spin against each other and against
# MediaPipe, making tests several times slower; one thread each is fastest here.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACECUE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MEAD / speech / portrait sample; skips when it is absent."""
    if not (SHARED_DATA / "mead_clips").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set FACECUE_SHARED_DATA to its folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    from facecue.cli import asset_path

    return asset_path("portrait.png")


@pytest.fixture(scope="session")
def portrait(portrait_path) -> np.ndarray:
    from facecue.io import read_image

    return read_image(portrait_path)


@pytest.fixture(scope="session")
def portrait_landmarks(portrait) -> np.ndarray:
    from facecue.landmarks import detect_landmarks

    return detect_landmarks(portrait)


@pytest.fixture(scope="session")
def mead_landmarks(shared_data) -> dict[str, np.ndarray]:
    """Tracked (T, 478, 3) landmarks of the 24 real MEAD clips, by clip stem."""
    from facecue.io import iter_video_frames
    from facecue.landmarks import track_landmarks

    out = {}
    for clip in sorted((shared_data / "mead_clips").glob("*_level*_001.mp4")):
        out[clip.stem], _ = track_landmarks(iter_video_frames(clip), source=clip)
    return out


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test: on a shared 2-core machine, torch's spinning worker
    threads make small models 5-10x slower under load. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class StderrLog:
    """What a test wrote to stderr, captured as a log file would be (not a terminal)."""

    def __init__(self, capsys):
        self._capsys = capsys
        self.out = self.err = ""

    def getvalue(self) -> str:
        captured = self._capsys.readouterr()
        self.out += captured.out
        self.err += captured.err
        return self.err

    def bar_lines(self, desc: str) -> list[str]:
        """The progress lines of the bar called ``desc``."""
        return [line for line in self.getvalue().splitlines() if line.startswith(f"{desc}:")]


@pytest.fixture
def stderr_log(capsys, monkeypatch) -> StderrLog:
    """stderr as a log file (capsys: not a terminal, even under ``pytest -s``), with a plain-line
    interval longer than any test: a progress bar may print its first line and its final state,
    nothing in between (not a line per update or per ``set_postfix``). A bar drawn for a terminal
    would write ``\\r`` redraws into it."""
    from facecue import progress

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 1e6)
    return StderrLog(capsys)
