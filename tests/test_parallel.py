"""`facecue.parallel`: frames rendered in worker processes are the frames rendered here, in order;
a worker's failure is the caller's error, and nothing half-written is left behind."""

from __future__ import annotations

import importlib
import os
import time

import numpy as np
import pytest

from facecue.constants import EMOTIONS
from facecue.cues import FaceCues
from facecue.errors import InputError
from facecue.io import VideoWriter
from facecue.motion import scripted_motion
from facecue.parallel import PRELOADED_MODULES, RenderWorkers, WorkerError, process_context
from facecue.render import MeshRenderer, render

FAIL_X = -12345.0  # a landmark x that makes the test renderers below fail


class FailingMesh(MeshRenderer):
    """The mesh renderer, except that a frame whose first landmark has x == FAIL_X raises the
    usual InputError (module level: the workers unpickle it)."""

    def render_frame(self, landmarks):
        if landmarks[0, 0] == FAIL_X:
            raise InputError(None, "landmark frame is poisoned")
        return super().render_frame(landmarks)


class DyingMesh(MeshRenderer):
    """... except that such a frame ends the worker process without a word."""

    def render_frame(self, landmarks):
        if landmarks[0, 0] == FAIL_X:
            os._exit(3)
        return super().render_frame(landmarks)


@pytest.fixture(scope="module")
def motion(portrait, portrait_landmarks):
    """40 frames of head turns, blinks, gaze and mouth, with a rising happy expression."""
    cues = FaceCues.from_landmarks(portrait_landmarks[None], 25.0, (portrait.shape[1], portrait.shape[0]))
    landmarks = scripted_motion(cues, 40, 25.0).landmarks()
    expression = np.zeros((40, len(EMOTIONS)), np.float32)
    expression[:, EMOTIONS.index("happy")] = np.linspace(0.0, 1.0, 40)
    return landmarks, expression


@pytest.fixture(scope="module")
def workers():
    with RenderWorkers(2) as pool:
        yield pool


def test_workers_render_the_same_frames_in_the_same_order(portrait, portrait_landmarks, motion, workers):
    landmarks, expression = motion
    options = {"output_size": 192, "full": False, "expression": expression}
    here = list(render(portrait, portrait_landmarks, landmarks, **options))
    there = list(render(portrait, portrait_landmarks, landmarks, workers=workers, **options))
    assert len(there) == len(here) == 40
    for index, (a, b) in enumerate(zip(here, there)):
        assert a.shape == b.shape == (192, 192, 3)
        assert np.abs(a.astype(int) - b).max() <= 1, f"frame {index} differs"
    assert any(np.abs(a.astype(int) - here[0]).max() > 10 for a in here[1:]), "the motion changes the frames"
    # the same workers serve a second run (a new renderer is handed to them)
    again = list(render(portrait, portrait_landmarks, landmarks[:5], workers=workers, **options))
    assert all(np.array_equal(a, b) for a, b in zip(again, there[:5]))


def test_a_number_of_workers_is_started_and_stopped_by_render(portrait, portrait_landmarks, motion):
    landmarks, _ = motion
    frames = list(render(portrait, portrait_landmarks, landmarks[:12], output_size=128, full=False, workers=1))
    assert len(frames) == 12 and np.array_equal(frames[7], next(iter(render(
        portrait, portrait_landmarks, landmarks[7:8], output_size=128, full=False))))


def test_a_worker_error_is_raised_as_itself_and_nothing_is_written(tmp_path, portrait, portrait_landmarks, motion):
    landmarks, _ = motion
    poisoned = landmarks.copy()
    poisoned[25, 0, 0] = FAIL_X
    out = tmp_path / "talk.mp4"
    with RenderWorkers(2) as pool:
        frames = render(portrait, portrait_landmarks, poisoned, renderer=FailingMesh(), workers=pool)  # untransformed
        written = 0
        with pytest.raises(InputError, match="poisoned") as caught:
            with VideoWriter(out, 25.0) as writer:
                for frame in frames:
                    writer.write(frame)
                    written += 1
        assert written <= 25, "frames after the failing one are never handed out"
        assert "Traceback" in str(caught.value.__cause__), "the worker's traceback is attached"
        assert not pool.usable, "a failed run closes its workers"
    assert not out.exists() and list(tmp_path.iterdir()) == [], "no output, no temporary file"


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path, portrait, portrait_landmarks, motion):
    landmarks, _ = motion
    poisoned = landmarks.copy()
    poisoned[9, 0, 0] = FAIL_X
    out = tmp_path / "talk.mp4"
    with pytest.raises(WorkerError, match="ended unexpectedly"):
        with VideoWriter(out, 25.0) as writer:
            for frame in render(portrait, portrait_landmarks, poisoned, renderer=DyingMesh(), workers=2):
                writer.write(frame)
    assert not out.exists() and list(tmp_path.iterdir()) == []


class UnpicklableMesh(MeshRenderer):
    """A renderer that cannot be sent to worker processes (it holds a lambda)."""

    def prepare(self, portrait, portrait_landmarks):
        super().prepare(portrait, portrait_landmarks)
        self.hook = lambda: None


def test_a_renderer_that_does_not_pickle_is_rendered_here(portrait, portrait_landmarks, motion, workers, caplog):
    landmarks, _ = motion
    frames = list(render(portrait, portrait_landmarks, landmarks[:3], renderer=UnpicklableMesh(), workers=workers))
    expected = list(render(portrait, portrait_landmarks, landmarks[:3]))
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected)) and len(frames) == 3
    assert "cannot be sent to worker processes" in caplog.text
    assert workers.usable, "the workers are left as they were"


def test_helpers_are_forked_with_facecue_already_imported():
    # the fork server skips a module that does not import, without a word
    assert all(importlib.import_module(name) for name in PRELOADED_MODULES)
    context = process_context()
    assert context.get_start_method() == "forkserver"
    helper = context.Process(target=time.sleep, args=(30,), daemon=True)  # a target that imports nothing
    helper.start()
    try:
        deadline = time.monotonic() + 60
        while True:  # the fork server's own imports may still be running on its first use
            with open(f"/proc/{helper.pid}/maps") as maps:
                mapped = maps.read()
            if "cv2" in mapped or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        helper.terminate()
        helper.join()
    assert "/cv2/" in mapped and "pocketsphinx" in mapped, "OpenCV and pocketsphinx are loaded before the target runs"
