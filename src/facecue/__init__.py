"""facecue: emotional talking faces from a portrait, speech and an emotion, offline on CPU.

Public API (everything else may change between versions)::

    import facecue
    cues = facecue.extract_cues("talk.mp4")        # FaceCues: normalized landmarks, pose, gaze, blinks
    cues.save("talk.npz"); facecue.FaceCues.load("talk.npz")
    image_points = cues.landmarks()                # relocated (T, 478, 3) pixel landmarks
    portrait = facecue.extract_cues("me.png")
    talk = facecue.speech_to_cues("talk.wav", "happy", 0.7, portrait, checkpoint="stage1.pt")  # stage 1
    reading = facecue.read_video_emotion("talk.mp4")  # independent FER2013 judge (eval extra)
"""

from __future__ import annotations

import os

# MediaPipe/TFLite log through glog; keep their start-up chatter off the user's terminal.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from .cues import FaceCues, GazeBins, extract_cues, normalize, relocate  # noqa: E402
from .errors import FacecueError, InputError, NoFaceError, OutputError  # noqa: E402

# Imported on first use: they pull in torch (about a second), which plain cue work does not need.
_LAZY = {"speech_to_cues": "stage1", "classify_emotion": "stage1", "read_video_emotion": "expression",
         "recognise_faces": "expression"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "FaceCues",
    "GazeBins",
    "extract_cues",
    "normalize",
    "relocate",
    "speech_to_cues",
    "classify_emotion",
    "read_video_emotion",
    "recognise_faces",
    "FacecueError",
    "InputError",
    "NoFaceError",
    "OutputError",
]
