"""facecue: emotional talking faces from a portrait, speech and an emotion, offline on CPU.

Public API (everything else may change between versions)::

    import facecue
    cues = facecue.extract_cues("talk.mp4")        # FaceCues: normalized landmarks, pose, gaze, blinks
    cues.save("talk.npz"); facecue.FaceCues.load("talk.npz")
    image_points = cues.landmarks()                # relocated (T, 478, 3) pixel landmarks
"""

from __future__ import annotations

import os

# MediaPipe/TFLite log through glog; keep their start-up chatter off the user's terminal.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from .cues import FaceCues, GazeBins, extract_cues, normalize, relocate  # noqa: E402
from .errors import FacecueError, InputError, NoFaceError, OutputError  # noqa: E402

__all__ = [
    "__version__",
    "FaceCues",
    "GazeBins",
    "extract_cues",
    "normalize",
    "relocate",
    "FacecueError",
    "InputError",
    "NoFaceError",
    "OutputError",
]
