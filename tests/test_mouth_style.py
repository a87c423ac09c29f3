"""Matching a real speaker's lips (`facecue.mouth_style`, `generate --mouth-from`): the fit's
known answers and its fallbacks. The end-to-end checks are in test_generate.py."""

from __future__ import annotations

import numpy as np
import pytest

from facecue.errors import InputError
from facecue.mouth_style import (
    fit_in_cue_units,
    fit_mouth_controls,
    measure_mouth_style,
    probe_frame_indices,
    readback_line,
    style_of_gaps,
)


def speech_like(n: int = 500, seed: int = 0):
    """(gap_of, truth): a cue model whose lip gap is linear in the two knobs, as the phonetic
    model's is: a closed base, syllable-rate speech movement, a rest gap held except in closures."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25
    speech = np.clip(0.12 * np.abs(np.sin(2 * np.pi * 2.3 * t)) + 0.02 * rng.standard_normal(n), 0, None)
    speech[(t % 4) > 3.2] = 0  # pauses
    parted = np.where(rng.random(n) < 0.1, 0.1, 1.0)  # closures for m/b/p
    base = np.full(n, 0.004)

    def gap_of(scale: float, rest: float) -> np.ndarray:
        return base + scale * speech + rest * parted

    return gap_of


def test_fit_recovers_the_knobs_that_made_a_speaker():
    gap_of = speech_like()
    for scale, rest in ((0.5, 0.0), (1.4, 0.03), (0.6, 0.1)):
        style = style_of_gaps(gap_of(scale, rest))
        fitted = fit_in_cue_units(gap_of, style)
        got = style_of_gaps(gap_of(*fitted))
        assert abs(got.p50 / style.p50 - 1) < 0.03 and abs(got.p90 / style.p90 - 1) < 0.03, (fitted, scale, rest)
        assert abs(fitted[0] - scale) < 0.1 and abs(fitted[1] - rest) < 0.01, (fitted, scale, rest)


def test_fit_through_the_readback_line_hits_the_rendered_target():
    """A portrait whose drawn gap is 1.5 x the cue's minus 0.01: the cue gaps are chosen so that
    the rendered ones, not the cue ones, have the reference's percentiles."""
    gap_of = speech_like(seed=1)
    style = style_of_gaps(gap_of(0.8, 0.02))
    slope, offset = 1.5, -0.01
    fitted = fit_in_cue_units(gap_of, style, (slope, offset))
    rendered = style_of_gaps(slope * gap_of(*fitted) + offset)
    assert abs(rendered.p50 / style.p50 - 1) < 0.03 and abs(rendered.p90 / style.p90 - 1) < 0.03
    in_cue_units = style_of_gaps(gap_of(*fitted))
    assert in_cue_units.p90 < 0.8 * style.p90, "the cue gaps are smaller than the target"

    def render_probes(scale, rest, picks):  # a fake renderer cannot be read: the fit stays in cue units
        return np.zeros((len(picks), 64, 64, 3), np.uint8)

    scale, rest, line = fit_mouth_controls(gap_of, style, render_probes)
    assert line == (1.0, 0.0) and (scale, rest) == fit_in_cue_units(gap_of, style)


def test_probes_span_the_gaps():
    gaps = np.random.default_rng(2).random(1000)
    picks = probe_frame_indices(gaps, 24)
    assert len(picks) == 24 and np.all(np.diff(picks) > 0)
    assert gaps[picks].min() == gaps.min() and gaps[picks].max() == gaps.max()
    assert len(probe_frame_indices(gaps[:5], 24)) == 5


def test_readback_line_of_rendered_frames(portrait, portrait_landmarks):
    """The bundled portrait drawn with known cue gaps: MediaPipe's read gaps follow them (slope
    well above the fallback's floor) and the line predicts them."""
    from facecue.cues import FaceCues
    from facecue.mouth_style import inner_lip_gap
    from facecue.phonetic import jaw_shape
    from facecue.render import render

    cues = FaceCues.from_landmarks(portrait_landmarks[None], 25.0, (portrait.shape[1], portrait.shape[0]))
    amounts = np.linspace(0.0, 0.25, 8)
    normalized = cues.normalized[0][None] + amounts[:, None, None] * jaw_shape()[None]
    from facecue.cues import relocate

    points = relocate(normalized, np.repeat(cues.scale, 8), np.repeat(cues.rotation, 8, 0),
                      np.repeat(cues.translation, 8, 0))
    frames = np.stack(list(render(portrait, portrait_landmarks, points, output_size=256, full=False,
                                  mouth="synthesize")))
    cue_gaps = inner_lip_gap(normalized)
    slope, offset = readback_line(frames, cue_gaps)
    assert 0.6 < slope < 1.6, slope
    assert abs(slope * cue_gaps[-1] + offset - cue_gaps[-1]) < 0.08


def test_reference_without_enough_talking_face_is_refused(tmp_path, portrait):
    from facecue.io import write_video

    still = write_video(tmp_path / "still.mp4", [portrait] * 30, 25)  # 1.2 s
    with pytest.raises(InputError, match="needs at least 2 s"):
        measure_mouth_style(still)
    still = write_video(tmp_path / "still3.mp4", [portrait] * 75, 25)  # 3 s, the lips never move
    with pytest.raises(InputError, match="lips hardly move"):
        measure_mouth_style(still)
    from facecue.io import write_image

    with pytest.raises(InputError, match="needs a video"):
        measure_mouth_style(write_image(tmp_path / "photo.png", portrait))
