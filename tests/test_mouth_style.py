"""Matching a real speaker's lips (`facecue.mouth_style`, `generate --mouth-from`): the fit's
known answers and its fallbacks. The end-to-end checks are in test_generate.py."""

from __future__ import annotations

import numpy as np
import pytest

from facecue.errors import InputError
from facecue.mouth_style import (
    LinearGaps,
    fit_in_cue_units,
    fit_mouth_controls,
    measure_mouth_style,
    probe_frame_indices,
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
        fitted = fit_in_cue_units(LinearGaps.of(gap_of), style)
        got = style_of_gaps(gap_of(*fitted))
        assert abs(got.p50 / style.p50 - 1) < 0.03 and abs(got.p90 / style.p90 - 1) < 0.03, (fitted, scale, rest)
        assert abs(fitted[0] - scale) < 0.1 and abs(fitted[1] - rest) < 0.01, (fitted, scale, rest)


def test_fit_through_a_renderer_that_draws_gaps_its_own_way():
    """A portrait whose drawn gap is 1.5 x the cue's minus 0.01, never read below 0.02 (lips that
    barely part read as touching): the rendered gaps, not the cue ones, get the reference's p50
    and p90 after the read-back rounds."""
    gap_of = speech_like(seed=1)
    style = style_of_gaps(gap_of(0.8, 0.02))

    def drawn(gaps):
        return np.maximum(1.5 * gaps - 0.01, 0.02)

    reads = []

    def read_probes(scale, rest, picks):
        reads.append(len(picks))
        return drawn(gap_of(scale, rest)[picks])

    fit = fit_mouth_controls(gap_of, style, read_probes)
    rendered = style_of_gaps(drawn(gap_of(fit.scale, fit.rest)))
    assert abs(rendered.p50 / style.p50 - 1) < 0.05 and abs(rendered.p90 / style.p90 - 1) < 0.05, (rendered, style)
    unprobed = style_of_gaps(drawn(gap_of(*fit_in_cue_units(LinearGaps.of(gap_of), style))))
    assert unprobed.p90 > 1.25 * style.p90, "without the read-back the video would open wider than the reference"
    assert len(reads) == 4 and all(n <= 27 for n in reads) and fit.shifts[2] > 0.01
    assert fit.reaches(style) and abs(fit.reached[2] / rendered.p90 - 1) < 0.1, (fit, rendered)

    def unreadable(scale, rest, picks):  # no face found on the probes: the fit stays in cue units
        return np.full(len(picks), np.nan)

    fallback = fit_mouth_controls(gap_of, style, unreadable)
    assert (fallback.scale, fallback.rest) == fit_in_cue_units(LinearGaps.of(gap_of), style)
    assert fallback.shifts == (0.0, 0.0, 0.0)


def test_a_reference_out_of_reach_is_reported():
    """A speaker who opens twice as wide as the mouth's whole range: the fit goes as far as it
    can and says it did not reach them."""
    gap_of = speech_like(seed=3)
    widest = style_of_gaps(gap_of(3.0, 0.15))
    style = style_of_gaps(np.asarray(gap_of(3.0, 0.15)) * 2.0)
    fit = fit_mouth_controls(gap_of, style, lambda scale, rest, picks: gap_of(scale, rest)[picks])
    assert not fit.reaches(style) and fit.reached[2] <= widest.p90 + 1e-9
    assert fit_mouth_controls(gap_of, widest, lambda scale, rest, picks: gap_of(scale, rest)[picks]).reaches(widest)


def test_probes_sit_at_the_percentiles():
    gaps = np.random.default_rng(2).random(1000)
    groups = probe_frame_indices(gaps)
    assert len(groups) == 3 and all(len(g) == 9 and np.all(np.diff(g) > 0) for g in groups)
    for group, q in zip(groups, (10, 50, 90)):
        assert abs(np.median(gaps[group]) - np.percentile(gaps, q)) < 0.02
        assert np.ptp(gaps[group]) < 0.1
    assert all(len(g) <= 3 for g in probe_frame_indices(gaps[:3]))


def test_rendered_frames_are_read_back(portrait, portrait_landmarks):
    """The bundled portrait drawn with known cue gaps: MediaPipe's readings rise with them and
    stay near them; a frame without a face reads NaN."""
    from facecue.cues import FaceCues, relocate
    from facecue.mouth_style import inner_lip_gap, read_gaps
    from facecue.phonetic import jaw_shape
    from facecue.render import render

    cues = FaceCues.from_landmarks(portrait_landmarks[None], 25.0, (portrait.shape[1], portrait.shape[0]))
    amounts = np.linspace(0.0, 0.25, 6)
    normalized = cues.normalized[0][None] + amounts[:, None, None] * jaw_shape()[None]
    points = relocate(normalized, np.repeat(cues.scale, 6), np.repeat(cues.rotation, 6, 0),
                      np.repeat(cues.translation, 6, 0))
    frames = np.stack(list(render(portrait, portrait_landmarks, points, output_size=256, full=False,
                                  mouth="synthesize")))
    read = read_gaps(frames)
    assert np.all(np.diff(read) > 0), read
    assert np.abs(read - inner_lip_gap(normalized)).max() < 0.1, (read, inner_lip_gap(normalized))
    assert np.isnan(read_gaps(np.zeros((2, 128, 128, 3), np.uint8))).all()


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


def test_a_reference_is_read_once_while_unchanged(tmp_path, portrait, monkeypatch):
    """A batch with one reference for many jobs reads it once; a changed file is read again."""
    import facecue.mouth_style as mouth_style
    from facecue.io import write_video

    reads = []

    def measured(video, fps, progress):
        reads.append(video)
        return style_of_gaps(np.linspace(0, 0.1, 60), str(video))

    monkeypatch.setattr(mouth_style, "_measure_mouth_style", measured)
    monkeypatch.setattr(mouth_style, "_MEASURED", {})
    reference = write_video(tmp_path / "talk.mp4", [portrait] * 10, 25)
    first = measure_mouth_style(reference)
    assert measure_mouth_style(str(reference)) == first and len(reads) == 1
    write_video(reference, [portrait] * 12, 25)  # another video under the same name
    measure_mouth_style(reference)
    assert len(reads) == 2
