"""Landmark previews: the cues drawn over the frames they describe (``facecue cues --preview``,
``generate --preview-landmarks``, ``cues-from-speech --preview``). Below the CLI and
:mod:`facecue.generate`, which both call it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .progress import progress_bar


def write_preview(source: Path, cues, output: Path, *, audio: np.ndarray | None = None, progress: bool = True) -> None:
    """Draw ``cues`` over the frames of ``source`` (an image or video) and write ``output``
    (a .png/.jpg of the first frame for an image source, else an .mp4 with ``audio``)."""
    from . import io
    from .draw import cue_status, draw_cues

    source, output = Path(source), Path(output)
    landmarks = cues.landmarks()
    kind = io.media_kind(source)
    if kind == "image":
        image = io.read_image(source)
        if output.suffix.lower() in (".png", ".jpg"):
            frame = draw_cues(image, landmarks[0], cues.rotation[0], cues.scale[0], cues.gaze[0],
                              cue_status(cues.rotation[0], cues.gaze[0], cues.aperture[0]))
            io.write_image(output, frame)
            return
        frames = (image for _ in range(cues.n_frames))
    else:
        frames = io.iter_video_frames(source, fps=cues.fps)
        if audio is None and io.probe_video(source).has_audio:
            audio = io.read_audio(source)
    iterator = progress_bar(zip(range(cues.n_frames), frames), enabled=progress, total=cues.n_frames,
                            desc="preview", unit="frame", leave=False)
    with io.VideoWriter(output, cues.fps, cues.image_size, audio=audio) as writer:
        for t, frame in iterator:
            text = cue_status(cues.rotation[t], cues.gaze[t], cues.aperture[t], t)
            writer.write(draw_cues(frame, landmarks[t], cues.rotation[t], cues.scale[t], cues.gaze[t], text))


def preview_on_still(frame: np.ndarray | None, cues, output: Path, audio: np.ndarray | None, *,
                     progress: bool = True) -> None:
    """Draw ``cues`` on one still frame (or a dark canvas of the cues' image size) for every frame."""
    from . import io
    from .draw import cue_status, draw_cues

    width, height = cues.image_size
    base = frame if frame is not None else np.full((height, width, 3), 32, np.uint8)
    landmarks = cues.landmarks()
    frames = progress_bar(range(cues.n_frames), enabled=progress, desc="preview", unit="frame", leave=False)
    with io.VideoWriter(output, cues.fps, (base.shape[1], base.shape[0]), audio=audio) as writer:
        for t in frames:
            text = cue_status(cues.rotation[t], cues.gaze[t], cues.aperture[t], t)
            writer.write(draw_cues(base, landmarks[t], cues.rotation[t], cues.scale[t], cues.gaze[t], text))


__all__ = ["preview_on_still", "write_preview"]
