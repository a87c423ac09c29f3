"""The training-free phonetic cue model: lip closure, rounding, silence, emotion, blinks, pose, gaze."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from facecue.audio import Phone, loudness_envelope, visemes_to_frames, VISEME_NAMES
from facecue.constants import EMOTIONS, INNER_LIP_MID, MOUTH_CORNERS
from facecue.cues import extract_cues
from facecue.motion import close_eyes
from facecue.errors import InputError
from facecue.phonetic import (
    CueControls,
    apply_controls,
    emotion_weights,
    load_priors,
    parse_emotion_schedule,
    phonetic_cues,
    silent_frames,
    viseme_weights,
)


@pytest.fixture(scope="module")
def portrait_cues(portrait):
    return extract_cues(portrait)


@pytest.fixture(scope="module")
def bob_speech(tmp_path_factory):
    """'Bob bought my mom a blue boat' from espeak-ng, with 1 s of silence before and after."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    folder = tmp_path_factory.mktemp("speech")
    wav = folder / "bob.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), "Bob bought my mom a blue boat"], check=True)
    from facecue.io import read_audio

    speech = read_audio(wav)
    silence = np.zeros(16000, np.float32)
    return np.concatenate([silence, speech, silence]), "bob bought my mom a blue boat"


def opening(cues):
    return cues.normalized[:, INNER_LIP_MID[1], 1] - cues.normalized[:, INNER_LIP_MID[0], 1]


def width(cues):
    return np.linalg.norm(cues.normalized[:, MOUTH_CORNERS[0]] - cues.normalized[:, MOUTH_CORNERS[1]], axis=-1)


def test_priors_are_real_shapes():
    priors = load_priors()
    shapes = priors.viseme_offsets
    gap = shapes[:, INNER_LIP_MID[1], 1] - shapes[:, INNER_LIP_MID[0], 1]
    assert gap[VISEME_NAMES.index("aa")] > 0.15 and abs(gap[VISEME_NAMES.index("PP")]) < 0.02
    corners = shapes[:, MOUTH_CORNERS[1], 0] - shapes[:, MOUTH_CORNERS[0], 0]
    assert corners[VISEME_NAMES.index("U")] < -0.05, "U rounds the lips: corners move in"
    assert corners[VISEME_NAMES.index("I")] > 0.0, "I spreads the lips"
    happy = priors.emotion_offsets[EMOTIONS.index("happy")]
    assert happy[MOUTH_CORNERS[1], 0] - happy[MOUTH_CORNERS[0], 0] > 0.02, "a smile widens the mouth"


def test_lips_close_on_bilabials_round_on_u_and_rest_in_silence(portrait_cues, bob_speech):
    audio, text = bob_speech
    cues = phonetic_cues(audio, portrait_cues, "neutral", 1.0, text=text, seed=0)
    from facecue.audio import recognize_phones

    phones = recognize_phones(audio, text=text)
    visemes = visemes_to_frames(phones, 25, cues.n_frames)
    open_ = opening(cues)
    pp = visemes == VISEME_NAMES.index("PP")
    vowel = np.isin(visemes, [VISEME_NAMES.index(v) for v in ("aa", "O", "E")])
    assert pp.sum() >= 4 and vowel.sum() >= 4
    assert np.median(open_[pp]) < 0.35 * np.median(open_[vowel]), "lips close on m/b/p"
    u = visemes == VISEME_NAMES.index("U")
    assert u.any() and width(cues)[u].mean() < np.median(width(cues)[:25]) - 0.01, "lips round on u/w"
    assert open_[:20].max() < 0.02 and open_[-20:].max() < 0.02, "mouth rests closed in silence"
    rms = loudness_envelope(audio, 25, cues.n_frames)
    assert np.corrcoef(open_, rms)[0, 1] > 0.5


def test_background_noise_in_the_pauses_does_not_move_the_mouth(portrait_cues, bob_speech):
    """Steady hiss 30 dB below the speech (the phone decoder reads it as fricatives) leaves the
    pauses closed, as in the clean recording; the speech still opens the mouth."""
    audio, _ = bob_speech
    rms = loudness_envelope(audio, 25)
    noise = np.random.default_rng(0).standard_normal(len(audio)) * np.percentile(rms[rms > 0], 95) * 10 ** (-30 / 20)
    noisy = (audio + noise).astype(np.float32)
    assert 20 * np.log10(np.median(loudness_envelope(noisy, 25)[:20]) / np.percentile(rms[rms > 0], 95)) > -32
    cues = phonetic_cues(noisy, portrait_cues, "angry", 1.0, seed=0)
    open_ = opening(cues)
    assert open_[:20].max() < 0.02 and open_[-20:].max() < 0.02, "mouth rests closed in the noisy pauses"
    assert np.percentile(open_[25:-25], 90) > 0.1, "the speech between them still opens it"


def test_silent_frames_follow_the_noise_floor_but_keep_quiet_syllables():
    rng = np.random.default_rng(1)
    frames = 200
    levels_db = rng.uniform(-22, 0, frames)  # speech without a pause: quietest syllables at -22 dB
    assert not silent_frames(10 ** (levels_db / 20)).any()
    levels_db[50:80] = -29 + rng.uniform(-1, 1, 30)  # a pause in noise 29 dB down
    levels_db[60:62] = -10  # a 2-frame click inside it
    silent = silent_frames(10 ** (levels_db / 20))
    assert silent[50:80].all() and silent.sum() == 30
    assert silent_frames(np.zeros(10)).all()


def test_silence_keeps_the_mouth_closed(portrait_cues):
    cues = phonetic_cues(np.zeros(32000, np.float32), portrait_cues, "neutral", 1.0, phones=[Phone("SIL", 0, 2.0)])
    assert opening(cues).max() < 0.01


def test_mouth_rest_parts_the_lips_in_pauses_and_closes_them_on_bilabials(portrait_cues, bob_speech):
    audio, text = bob_speech
    from facecue.audio import recognize_phones

    phones = recognize_phones(audio, text=text)
    closed = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones)
    parted = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones,
                           controls=CueControls(mouth_rest=0.05))
    added = opening(parted) - opening(closed)
    assert np.allclose(added[:20], added[0], atol=1e-3) and 0.04 < added[0] < 0.065, "parted in the pause"
    visemes = visemes_to_frames(phones, 25, closed.n_frames)
    pp = visemes == VISEME_NAMES.index("PP")
    assert pp.sum() >= 4 and np.median(added[pp]) < 0.5 * added[0], "the lips still close on m/b/p"
    with pytest.raises(InputError, match="mouth rest"):
        CueControls(mouth_rest=0.5)


def test_the_network_holds_a_rest_gap_too_and_closes_it_on_bilabials(portrait_cues, bob_speech):
    """The stage-1 network learnt closed lips at rest; with a rest gap its lips part in the pauses
    by that gap and still close where the phones say m/b/p, as the phonetic model's do."""
    from facecue.audio import recognize_phones
    from facecue.stage1 import network_cues

    audio, text = bob_speech
    phones = recognize_phones(audio, text=text)
    closed = network_cues(audio, portrait_cues, "neutral", 1.0, seed=3)
    parted = network_cues(audio, portrait_cues, "neutral", 1.0, seed=3, controls=CueControls(mouth_rest=0.05),
                          phones=phones)
    added = opening(parted) - opening(closed)
    assert np.allclose(added[:20], added[0], atol=2e-3) and 0.04 < added[0] < 0.065, "parted in the pause"
    pp = visemes_to_frames(phones, 25, closed.n_frames) == VISEME_NAMES.index("PP")
    assert pp.sum() >= 4 and np.median(added[pp]) < 0.5 * added[0], "the lips still close on m/b/p"


def test_controls_blinks_pose_gaze(portrait_cues):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32)
    phones = [Phone("AA", 0, 30.0)]
    cues = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=3)
    assert cues.n_frames == 750
    rate = len(cues.blinks()) * 2  # per minute
    assert 8 <= rate <= 30, rate
    assert cues.pose_angles[:, 0].std() > 1.0, "head motion present"
    still = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=3,
                          controls=CueControls(pose_scale=0, gaze="camera", blink_rate=0))
    np.testing.assert_allclose(still.pose_angles, still.pose_angles[:1].repeat(750, 0), atol=1e-3)
    assert still.blinks() == [] and np.ptp(still.gaze, axis=0).max() < 0.5
    fast = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=3, controls=CueControls(blink_rate=40))
    assert len(fast.blinks()) > len(cues.blinks())
    looking = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=3,
                            controls=CueControls(pose_scale=0, gaze=(15.0, -5.0)))
    shift = looking.combined_gaze - still.combined_gaze
    np.testing.assert_allclose(shift.mean(0), [15.0, -5.0], atol=1.0)
    again = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=3)
    np.testing.assert_array_equal(again.normalized, cues.normalized)


def test_surprised_blinks_shut_as_far_as_neutral_ones(portrait_cues):
    """Surprise opens the eyes wider than the portrait's; its blinks still shut them as far as
    neutral blinks do (they stopped at CLOSED_LID_GAP of the wider gap: a sliver of eye open), in
    the phonetic model's blinks and in blinks drawn over another model's cues."""
    audio = (0.1 * np.random.default_rng(2).standard_normal(16000 * 6)).astype(np.float32)
    phones = [Phone("AA", 0, 6.0)]
    shut = {}
    for emotion in ("neutral", "surprised"):
        cues = phonetic_cues(audio, portrait_cues, emotion, 1.0, phones=phones, seed=3,
                             controls=CueControls(blink_rate=40))
        assert len(cues.blinks()) >= 2
        shut[emotion] = cues.aperture.min(axis=0)
        if emotion == "surprised":
            assert (np.median(cues.aperture, axis=0) > 1.3 * np.median(portrait_cues.aperture, axis=0)).all()
            still = phonetic_cues(audio, portrait_cues, emotion, 1.0, phones=phones, seed=3,
                                  controls=CueControls(blink_rate=0))
            redrawn = apply_controls(still, portrait_cues, CueControls(blink_rate=40))
            assert len(redrawn.blinks()) >= 2
            np.testing.assert_array_less(redrawn.aperture.min(axis=0), 1.1 * shut["neutral"])
    np.testing.assert_array_less(shut["surprised"], 1.1 * shut["neutral"])


def test_apply_controls_to_other_cues(portrait_cues):
    audio = (0.1 * np.random.default_rng(1).standard_normal(16000 * 8)).astype(np.float32)
    cues = phonetic_cues(audio, portrait_cues, "happy", 1.0, phones=[Phone("AA", 0, 8.0)], seed=1)
    still = apply_controls(cues, portrait_cues, CueControls(pose_scale=0, blink_rate=0))
    assert np.ptp(still.pose_angles, axis=0).max() < 1e-3 and still.blinks() == []
    np.testing.assert_allclose(still.normalized[:, 14], cues.normalized[:, 14], atol=1e-5)  # mouth untouched


def test_emotion_changes_the_face(portrait_cues):
    audio = np.zeros(16000, np.float32)
    phones = [Phone("SIL", 0, 1.0)]
    neutral = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones)
    happy = phonetic_cues(audio, portrait_cues, "happy", 1.0, phones=phones)
    half = phonetic_cues(audio, portrait_cues, "happy", 0.5, phones=phones)
    widen = width(happy).mean() - width(neutral).mean()
    assert widen > 0.02 and 0.3 * widen < width(half).mean() - width(neutral).mean() < 0.7 * widen


def test_emotion_schedule():
    assert parse_emotion_schedule("happy") == [(0.0, "happy")]
    assert parse_emotion_schedule("neutral@0, happy@2.5,sad@6") == [(0.0, "neutral"), (2.5, "happy"), (6.0, "sad")]
    assert parse_emotion_schedule("happy@1") == [(0.0, "happy"), (1.0, "happy")]
    weights = emotion_weights("neutral@0,happy@2", 100, 25)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-6)
    assert weights[10, EMOTIONS.index("neutral")] > 0.99 and weights[90, EMOTIONS.index("happy")] > 0.99
    assert 0.3 < weights[50, EMOTIONS.index("happy")] < 0.7, "changes are blended"
    with pytest.raises(InputError, match="choose one of: neutral, angry"):
        parse_emotion_schedule("joyful")
    with pytest.raises(InputError, match="seconds"):
        parse_emotion_schedule("happy@soon")


def test_bad_controls():
    with pytest.raises(InputError, match="pose scale"):
        CueControls(pose_scale=-1)
    with pytest.raises(InputError, match="blink rate"):
        CueControls(blink_rate=500)
    with pytest.raises(InputError, match="gaze"):
        CueControls(gaze="sideways")


def test_viseme_weights_are_a_mixture():
    phones = [Phone("SIL", 0, 0.2), Phone("M", 0.2, 0.3), Phone("AA", 0.3, 0.5), Phone("SIL", 0.5, 1.0)]
    w = viseme_weights(phones, 25, 25)
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-5)
    assert w[6, VISEME_NAMES.index("PP")] > 0.6  # M's centre, 0.25 s, minus anticipation
    assert w[9, VISEME_NAMES.index("aa")] > 0.5
    assert w[22, VISEME_NAMES.index("sil")] > 0.9


def test_contempt_is_one_sided():
    """MEAD actors smirk on either side; the priors keep one side (mirrored before averaging)."""
    contempt = load_priors().emotion_offsets[EMOTIONS.index("contempt")]
    lift = contempt[MOUTH_CORNERS[0], 1] - contempt[MOUTH_CORNERS[1], 1]  # y points down: > 0, 291 rises more
    assert lift > 0.01


def test_two_sided_expressions_are_symmetric():
    """Every emotion but contempt moves both sides alike: its offsets equal their mirror image,
    so the lips' middle (and the teeth drawn on it) stays on the face's midline."""
    from facecue.cues import mirror_shape

    priors = load_priors()
    for shapes in (priors.emotion_offsets, priors.emotion_opening):
        for index, emotion in enumerate(EMOTIONS):
            offsets = shapes[index].astype(np.float64)
            asymmetric = offsets - mirror_shape(offsets)
            if emotion == "contempt":
                assert np.abs(asymmetric).max() > 0.01
            elif emotion != "neutral":
                assert np.abs(asymmetric).max() < 1e-6, emotion  # |o - mirror(o)| was 0.22-1.05 of |o|
                assert np.abs(offsets[[*INNER_LIP_MID, 0, 17], 0]).max() < 1e-6, emotion


def test_emotional_speech_opens_the_mouth_wider(portrait_cues, bob_speech):
    """Level-3 angry, fear and surprised speech moves the jaw more than neutral speech (MEAD), sad does not."""
    audio, text = bob_speech
    from facecue.audio import recognize_phones

    phones = recognize_phones(audio, text=text)
    p90 = {e: np.percentile(opening(phonetic_cues(audio, portrait_cues, e, 1.0, phones=phones, seed=0)), 90)
           for e in ("neutral", "angry", "surprised", "sad")}
    assert p90["angry"] > 1.3 * p90["neutral"] and p90["surprised"] > 1.2 * p90["neutral"]
    assert abs(p90["sad"] - p90["neutral"]) < 0.25 * p90["neutral"]


def test_the_mouth_widens_as_it_opens():
    """Real mouths widen as they open (width over gap, regression slope: 0.20-0.47 eye units per unit
    on the calibration talking videos); ``widen_with_opening`` adds SPEECH_WIDENING x the gap
    beyond the rest gap to the width, the corners level, closed lips untouched."""
    from facecue.cues import default_template
    from facecue.phonetic import REST_LIP_GAP, closed_mouth, jaw_shape, widen_with_opening

    closed = closed_mouth(default_template().points)  # lips at REST_LIP_GAP
    shapes = closed[None] + np.array([0.0, 0.05, 0.2])[:, None, None] * jaw_shape()[None]
    widened = widen_with_opening(shapes, 0.3)

    def mouth_width(x):
        return np.linalg.norm(x[:, MOUTH_CORNERS[0], :2] - x[:, MOUTH_CORNERS[1], :2], axis=-1)

    gap = shapes[:, INNER_LIP_MID[1], 1] - shapes[:, INNER_LIP_MID[0], 1]
    extra = mouth_width(widened) - mouth_width(shapes)
    np.testing.assert_allclose(extra, 0.3 * np.clip(gap - REST_LIP_GAP, 0, None), atol=1e-3)
    assert extra[0] == 0.0 and extra[2] > 0.05
    corners = list(MOUTH_CORNERS)
    np.testing.assert_allclose(widened[:, corners, 1], shapes[:, corners, 1], atol=1e-9)  # level
    np.testing.assert_array_equal(widened[:, 1], shapes[:, 1])  # the nose tip stays
    assert widen_with_opening(shapes, 0.0) is shapes


def test_speech_widens_the_mouth_with_its_opening(portrait_cues, bob_speech, monkeypatch):
    """In neutral phonetic cues the mouth's width grows with its gap by about SPEECH_WIDENING more
    than without it (the visemes alone widen it little: their real targets are averages)."""
    import facecue.phonetic as phonetic

    audio, text = bob_speech
    from facecue.audio import recognize_phones

    phones = recognize_phones(audio, text=text)

    def slope():
        cues = phonetic_cues(audio, portrait_cues, "neutral", 1.0, phones=phones, seed=0)
        return np.polyfit(opening(cues), width(cues), 1)[0]

    amount, widened = phonetic.SPEECH_WIDENING, slope()
    assert amount > 0
    angry = phonetic_cues(audio, portrait_cues, "angry", 1.0, phones=phones, seed=0)
    monkeypatch.setattr(phonetic, "SPEECH_WIDENING", 0.0)
    assert widened - slope() == pytest.approx(amount, rel=0.15)
    # an emotion keeps the mouth widths measured for it (MEAD's opening shapes)
    np.testing.assert_array_equal(angry.normalized,
                                  phonetic_cues(audio, portrait_cues, "angry", 1.0, phones=phones, seed=0).normalized)


def test_speech_widening_follows_the_neutral_share():
    from facecue.phonetic import speech_widening

    weights = emotion_weights("neutral@0,angry@2", 100, 25.0)
    widening = speech_widening(weights, 1.0, 0.4)
    assert widening[0] == pytest.approx(0.4) and widening[-1] == pytest.approx(0.0)
    assert speech_widening(weights, 0.25, 0.4)[-1] == pytest.approx(0.3)  # a weak emotion keeps most of it
    assert np.all(np.diff(widening) <= 1e-12)  # blended across the change


def test_lip_operators_move_one_lip_and_leave_the_jaw():
    from facecue.cues import default_template
    from facecue.motion import drop_lower_lip, lower_upper_lip
    from facecue.phonetic import lip_parting_shape

    template = default_template().points.astype(np.float64)
    dropped = drop_lower_lip(template, 0.1) - template
    assert abs(dropped[INNER_LIP_MID[1], 1] - 0.1) < 1e-9 and dropped[INNER_LIP_MID[0], 1] == 0.0
    assert dropped[152, 1] == 0.0 and dropped[2, 1] == 0.0  # chin and nose stay
    raised = lower_upper_lip(template, -0.1) - template
    assert abs(raised[INNER_LIP_MID[0], 1] + 0.1) < 1e-9 and raised[INNER_LIP_MID[1], 1] == 0.0
    parting = lip_parting_shape()
    assert abs(parting[INNER_LIP_MID[1], 1] - parting[INNER_LIP_MID[0], 1] - 1.0) < 1e-6  # one unit of gap
    assert parting[152, 1] == 0.0


def test_emotions_part_the_lips_their_own_way(portrait_cues, bob_speech):
    """The priors' opening shapes (real MEAD): angry and disgusted speech raise the upper lip as the
    lips part, without changing the gap; disgust holds its lips apart over a closed jaw; lips
    still close on m/b/p."""
    opening_shapes = load_priors().emotion_opening
    for emotion in ("angry", "disgusted"):
        shape = opening_shapes[EMOTIONS.index(emotion)]
        assert shape[INNER_LIP_MID[0], 1] < -0.08, emotion  # the upper lip rises with the gap (y down)
        assert abs(shape[INNER_LIP_MID[1], 1] - shape[INNER_LIP_MID[0], 1]) < 1e-5, emotion
    audio, text = bob_speech
    from facecue.audio import recognize_phones

    phones = recognize_phones(audio, text=text)
    cues = {e: phonetic_cues(audio, portrait_cues, e, 1.0, phones=phones, seed=0) for e in ("neutral", "disgusted")}
    visemes = visemes_to_frames(phones, 25, cues["neutral"].n_frames)
    pp = visemes == VISEME_NAMES.index("PP")
    speaking = np.isin(visemes, [VISEME_NAMES.index(v) for v in ("aa", "O", "E")])
    disgust = cues["disgusted"]
    assert np.median(opening(disgust)[pp]) < 0.35 * np.median(opening(disgust)[speaking]), "lips close on m/b/p"
    # the chin (below the nose) drops less per unit of lip gap than in neutral speech
    chin = {e: c.normalized[:, 152, 1] - c.normalized[:, 2, 1] for e, c in cues.items()}
    drop = {e: np.polyfit(opening(c), chin[e], 1)[0] for e, c in cues.items()}
    assert drop["disgusted"] < drop["neutral"] - 0.1, drop


def test_intensity_scales_the_expression_linearly():
    from facecue.phonetic import emotion_expression, emotion_mouth_dynamics

    weights = np.zeros((1, len(EMOTIONS)), np.float32)
    weights[0, EMOTIONS.index("fear")] = 1.0
    full, third = emotion_expression(weights, 1.0), emotion_expression(weights, 1 / 3)
    np.testing.assert_allclose(third, full / 3, atol=1e-6)
    gain, jaw = emotion_mouth_dynamics(weights, 0.0)
    assert gain[0] == 1.0 and jaw[0] == 0.0


def test_smile_removal_keeps_the_brows_and_opens_the_smiles_eyes(portrait_cues):
    from facecue.constants import EMOTIONS
    from facecue.cues import default_template, eye_aperture
    from facecue.phonetic import closed_mouth, expression_scale, load_priors, neutralize_smile, smile_amount

    shape = closed_mouth(portrait_cues.normalized[0])
    assert smile_amount(shape) > 0.5  # the bundled portrait smiles
    neutral = neutralize_smile(shape)
    brows = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
    np.testing.assert_allclose(neutral[brows], shape[brows], atol=1e-6)
    # the lower lids come down by one MEAD happy smile's lift (a full smile or more here)
    lift = -load_priors().emotion_offsets[EMOTIONS.index("happy"), [145, 374], 1] * expression_scale(neutral)
    assert (lift > 0.005).all()
    np.testing.assert_allclose(neutral[[145, 374], 1] - shape[[145, 374], 1], lift, rtol=1e-6)
    assert (eye_aperture(neutral) > eye_aperture(shape) + 0.01).all()
    # a face that does not smile (the template) is left as it is
    plain = closed_mouth(default_template().points)
    assert smile_amount(plain) == 0.0
    np.testing.assert_array_equal(neutralize_smile(plain), plain)
    # its corners come down to the template's height and its mouth in to a neutral width, but for
    # at most MAX_SMILE_REMOVED smiles: this very broad smile keeps a trace of its width
    assert smile_amount(neutral) < 0.15
    width = lambda s: np.linalg.norm(s[61, :2] - s[291, :2])  # noqa: E731
    assert width(neutral) < width(shape) - 0.1


def test_a_broad_smile_is_told_and_parted_lips_alone_are_not_one(portrait_cues):
    """`portrait_smile` (what `generate`'s note on smiling portraits reads) finds the bundled
    portrait's broad smile, not a smile in a face that only parts its lips, and not in the
    bundled portrait once its smile is taken off."""
    from facecue.cues import default_template
    from facecue.generate import smiling_portrait_note
    from facecue.motion import open_mouth
    from facecue.phonetic import BROAD_SMILE, closed_mouth, neutralize_smile, portrait_smile

    shape = portrait_cues.normalized[0]
    assert portrait_smile(shape) >= BROAD_SMILE
    assert portrait_smile(neutralize_smile(closed_mouth(shape))) < 0.2 * BROAD_SMILE
    plain = default_template().points
    assert portrait_smile(plain) == 0.0 and portrait_smile(open_mouth(closed_mouth(plain), 0.15)) == 0.0

    note = smiling_portrait_note(shape, "happy@0,sad@1,angry@2,sad@3")
    assert "sad, angry may still look partly happy" in note  # each other emotion once, in order
    assert smiling_portrait_note(shape, "happy") is None
    assert smiling_portrait_note(plain, "angry") is None


def test_a_broad_smile_with_parted_lips_is_closed_partly_by_the_upper_lip(portrait_cues):
    """A smiling portrait's raised upper lip comes down over the teeth (the chin rises less than
    when the jaw alone closes the lips); a portrait that does not smile is closed by the jaw."""
    from facecue.motion import open_mouth
    from facecue.phonetic import SMILE_UPPER_LIP_SHARE, closed_mouth, portrait_rest_shape, smile_amount

    shape = open_mouth(closed_mouth(portrait_cues.normalized[0]), 0.1)  # parted lips
    assert smile_amount(closed_mouth(shape)) >= 1.0
    rest = portrait_rest_shape(shape)
    assert abs((rest[14, 1] - rest[13, 1]) - (closed_mouth(shape)[14, 1] - closed_mouth(shape)[13, 1])) < 1e-5  # both closed
    upper_lip_drop = rest[0, 1] - shape[0, 1]  # 0: the upper lip's middle (outer contour)
    chin_rise = shape[152, 1] - rest[152, 1]
    jaw_only_chin_rise = shape[152, 1] - closed_mouth(shape)[152, 1]
    assert upper_lip_drop > 0.5 * SMILE_UPPER_LIP_SHARE * 0.1
    assert chin_rise < jaw_only_chin_rise - 0.02


def test_a_portrait_caught_mid_word_is_narrowed_by_its_opening_widening(portrait_cues, monkeypatch):
    """A portrait that does not smile, photographed with parted lips, rests with the mouth its
    opening had widened narrowed again (SPEECH_WIDENING x the gap beyond rest, corners level);
    closed lips rest as they are, and a full smile's width is left to the smile rule."""
    from facecue.cues import default_template
    from facecue.motion import open_mouth
    from facecue.phonetic import (REST_LIP_GAP, SPEECH_WIDENING, closed_mouth, neutralize_smile, portrait_rest_shape,
                                  smile_amount)

    def width(shape: np.ndarray) -> float:
        return float(np.linalg.norm(shape[61, :2] - shape[291, :2]))

    closed = closed_mouth(default_template().points.astype(np.float64))
    assert smile_amount(closed) == 0
    np.testing.assert_allclose(portrait_rest_shape(closed), neutralize_smile(closed), atol=1e-12)
    for gap in (0.05, 0.1):
        parted = open_mouth(closed, gap)
        opening = parted[14, 1] - parted[13, 1] - REST_LIP_GAP
        rest = portrait_rest_shape(parted)
        assert width(rest) == pytest.approx(width(closed_mouth(parted)) - SPEECH_WIDENING * opening, abs=2e-4)
        for corner in (61, 291):
            assert abs(rest[corner, 1] - closed_mouth(parted)[corner, 1]) < 1e-9  # level
        assert abs(rest[1, 0] - parted[1, 0]) < 1e-9  # the nose stays
    smiling = open_mouth(closed_mouth(portrait_cues.normalized[0]), 0.1)  # the bundled portrait: a broad smile
    assert smile_amount(closed_mouth(smiling)) >= 1.0
    smiling_rest = portrait_rest_shape(smiling)
    monkeypatch.setattr("facecue.phonetic.SPEECH_WIDENING", 0.0)
    np.testing.assert_array_equal(smiling_rest, portrait_rest_shape(smiling))


def test_expressions_never_narrow_the_eyes_below_the_limit(portrait_cues):
    """Angry and sad narrow the eyes, but a narrow-eyed portrait keeps them open (MIN_EYE_OPENING
    of its own opening); blinks still close them."""
    from facecue.cues import eye_aperture
    from facecue.phonetic import MIN_EYE_OPENING

    audio = np.zeros(16000 * 2, np.float32)
    phones = [Phone("SIL", 0, 2.0)]
    narrow = dataclasses.replace(portrait_cues, normalized=close_eyes(portrait_cues.normalized, 0.35).astype(np.float32))
    own = eye_aperture(narrow.normalized[0])
    for emotion in ("sad", "angry", "disgusted", "contempt"):
        cues = phonetic_cues(audio, narrow, emotion, 1.0, phones=phones, controls=CueControls(blink_rate=0))
        assert (cues.aperture >= max(MIN_EYE_OPENING, 0.55) * own - 0.005).all(), emotion  # the bar: >= 50 %
        assert (cues.aperture < own - 0.01).any(), emotion  # still narrowed
    blinking = phonetic_cues(audio, narrow, "sad", 1.0, phones=phones, controls=CueControls(blink_rate=60))
    assert blinking.aperture.min() < 0.3 * own.min()


def _lip_heights(shapes: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 9) upper and lower lip heights (outer to inner edge, canonical y) at the outer edges'
    points (corners left out), the inner edge interpolated there along ``base``'s x (as
    ``lift_thin_lips`` measures)."""
    from facecue.phonetic import LOWER_LIP_INNER, LOWER_LIP_OUTER, UPPER_LIP_INNER, UPPER_LIP_OUTER

    shapes = np.asarray(shapes, np.float64)
    heights = []
    for outer, inner, outward in ((UPPER_LIP_OUTER, UPPER_LIP_INNER, -1), (LOWER_LIP_OUTER, LOWER_LIP_INNER, 1)):
        inner = np.array(inner)[np.argsort(base[list(inner), 0])]
        at = base[list(outer[1:-1]), 0]
        inner_y = np.apply_along_axis(lambda ys: np.interp(at, base[inner, 0], ys), -1, shapes[..., inner, 1])
        heights.append(outward * (shapes[..., list(outer[1:-1]), 1] - inner_y))
    return heights[0], heights[1]


def test_a_lip_is_never_thinned_below_the_limit(portrait_cues, monkeypatch):
    """An offset that pushes the upper lip's outer edge down through its inner edge (the lip
    inside out) is undone down to MIN_LIP_HEIGHT of the rest shape's lip, by moving the outer edge
    back up; the inner edges (the mouth's opening) and the face away from the lips do not move, and
    lips as thick as the rest shape's or thicker are left exactly as they are."""
    from facecue.phonetic import MIN_LIP_HEIGHT, UPPER_LIP_OUTER, lift_thin_lips, portrait_rest_shape

    def lifted_copy(base, shapes):
        limited = shapes.copy()
        lift_thin_lips(base, limited)
        return limited

    base = portrait_rest_shape(portrait_cues.normalized[0]).astype(np.float64)
    rest_upper, rest_lower = _lip_heights(base, base)
    assert (rest_upper > 0.005).all() and (rest_lower > 0.005).all()
    shapes = np.repeat(base[None], 3, axis=0)
    shapes[1, list(UPPER_LIP_OUTER[1:-1]), 1] += 1.5 * rest_upper.max()  # inside out
    shapes[2, :, 1] += 0.05  # moved, not thinned
    shapes[2, list(UPPER_LIP_OUTER[1:-1]), 1] -= 0.01  # and a thicker upper lip
    limited = lifted_copy(base, shapes)
    np.testing.assert_array_equal(limited[[0, 2]], shapes[[0, 2]])
    upper, lower = _lip_heights(limited[1], base)
    assert _lip_heights(shapes[1], base)[0].max() < 0
    np.testing.assert_allclose(upper, MIN_LIP_HEIGHT * rest_upper, atol=0.002)
    np.testing.assert_allclose(lower, rest_lower, atol=1e-9)
    from facecue.phonetic import LOWER_LIP_INNER, UPPER_LIP_INNER

    kept = list(UPPER_LIP_INNER) + list(LOWER_LIP_INNER) + [1, 4, 152, 33, 263]  # nose, chin, eye corners
    np.testing.assert_array_equal(limited[1, kept], shapes[1, kept])
    import facecue.phonetic as phonetic

    monkeypatch.setattr(phonetic, "LIP_LIMIT_CHUNK", 2)  # long speech is measured a chunk of frames at a time
    np.testing.assert_array_equal(lifted_copy(base, shapes), limited)


def test_speech_keeps_a_thin_upper_lip(portrait_cues, monkeypatch):
    """Sad and happy speech thin the upper lip by fixed amounts; on a portrait whose upper lip is half
    as high, the phonetic cues keep it at MIN_LIP_HEIGHT of the portrait's at least, and the mouth
    opens exactly as it would without the limit."""
    import facecue.phonetic as phonetic
    from facecue.phonetic import MIN_LIP_HEIGHT, UPPER_LIP_OUTER, portrait_rest_shape

    normalized = portrait_cues.normalized.copy()
    rest = portrait_rest_shape(normalized[0])
    upper, _ = _lip_heights(rest, rest)
    normalized[:, list(UPPER_LIP_OUTER[1:-1]), 1] += 0.5 * upper  # a thin upper lip
    thin = dataclasses.replace(portrait_cues, normalized=normalized)
    audio = (0.1 * np.sin(np.arange(16000 * 2) * 2 * np.pi * 150 / 16000)).astype(np.float32)
    phones = [Phone("AA", 0.0, 0.5), Phone("M", 0.5, 0.6), Phone("AE", 0.6, 1.2), Phone("SIL", 1.2, 2.0)]
    for emotion in ("sad", "happy"):
        cues = phonetic_cues(audio, thin, emotion, 1.0, phones=phones, controls=CueControls(blink_rate=0))
        own, _ = _lip_heights(cues.identity, cues.identity)
        heights, _ = _lip_heights(cues.normalized, cues.identity)
        assert (heights >= MIN_LIP_HEIGHT * own - 0.002).all(), emotion
        monkeypatch.setattr(phonetic, "lift_thin_lips", lambda base, shapes: None)
        unlimited = phonetic_cues(audio, thin, emotion, 1.0, phones=phones, controls=CueControls(blink_rate=0))
        monkeypatch.undo()
        assert (_lip_heights(unlimited.normalized, cues.identity)[0] < MIN_LIP_HEIGHT * own - 0.01).any(), emotion
        gap = cues.normalized[:, INNER_LIP_MID[1], 1] - cues.normalized[:, INNER_LIP_MID[0], 1]
        np.testing.assert_allclose(gap, unlimited.normalized[:, INNER_LIP_MID[1], 1]
                                   - unlimited.normalized[:, INNER_LIP_MID[0], 1], atol=1e-6)


def test_emotion_emphasis_scales_one_emotions_region_and_jaw_only():
    import facecue.phonetic as phonetic
    from facecue.constants import EMOTIONS

    saved = phonetic.emotion_settings()
    emphasised, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")  # neither emphasis nor action shapes
    _, brow, _ = phonetic._region_weights()
    try:
        before = phonetic.emotion_offsets_applied().copy()
        jaw_before = phonetic.emotion_mouth_dynamics(np.eye(len(EMOTIONS)), 1.0)[1]
        phonetic.set_emotion_emphasis("happy", lower=2.0, jaw=3.0)
        after = phonetic.emotion_offsets_applied()
        jaw_after = phonetic.emotion_mouth_dynamics(np.eye(len(EMOTIONS)), 1.0)[1]
        np.testing.assert_allclose(after[sad], before[sad])  # other emotions unchanged
        lower_only = phonetic.load_priors().lower_face_weight > 0.999
        np.testing.assert_allclose(after[emphasised][lower_only], 2.0 * before[emphasised][lower_only], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(after[emphasised][brow > 0.999], before[emphasised][brow > 0.999], atol=1e-7)
        assert jaw_after[emphasised] == pytest.approx(3.0 * jaw_before[emphasised], rel=1e-5)
        assert jaw_after[sad] == pytest.approx(jaw_before[sad])
        with pytest.raises(ValueError, match="unknown emotion"):
            phonetic.set_emotion_emphasis("bored", jaw=2.0)
        with pytest.raises(ValueError, match="unknown emphasis"):
            phonetic.set_emotion_emphasis("fear", chin=2.0)
    finally:
        phonetic.restore_emotion_settings(saved)
    np.testing.assert_allclose(phonetic.emotion_offsets_applied(), before)
    assert phonetic.emotion_settings() == saved


def test_action_shapes_stretch_fears_lips_and_knit_its_brows_only():
    """``lip_stretch`` moves the mouth corners out and down by its amount (the midline stays),
    ``lip_pucker`` moves them in, level; ``brow_knit`` draws the inner brows together; other
    emotions are untouched."""
    import facecue.phonetic as phonetic
    from facecue.cues import default_template

    assert phonetic.EMOTION_ACTIONS == {"fear": {"lip_stretch": 0.04, "brow_knit": 0.06},
                                        "angry": {"lip_stretch": 0.03, "brow_knit": 0.08},
                                        "surprised": {"lip_pucker": 0.03}}  # the shipped setting
    saved = phonetic.emotion_settings()
    fear, sad = EMOTIONS.index("fear"), EMOTIONS.index("sad")
    midline = np.flatnonzero(np.abs(default_template().points[:, 0]) < 1e-6)
    right, left = MOUTH_CORNERS
    inner_brows = (55, 285)  # the subject's right, left inner brow ends
    try:
        phonetic.restore_emotion_settings({**saved, "actions": {}})
        before = phonetic.emotion_offsets_applied().copy()
        phonetic.set_emotion_actions("fear", lip_stretch=0.05, brow_knit=0.03)
        change = phonetic.emotion_offsets_applied() - before
        np.testing.assert_allclose(np.delete(change, fear, axis=0), 0.0)
        change = change[fear]
        assert change[left, 0] - change[right, 0] == pytest.approx(2 * 0.05, rel=0.02)  # the mouth 0.1 wider
        assert change[[left, right], 1] == pytest.approx(0.05 * phonetic.LIP_STRETCH_DROP, rel=0.02)  # and lower
        np.testing.assert_allclose(change[midline, 0], 0.0, atol=1e-9)  # nothing crosses the midline
        knit = change[inner_brows[1], 0] - change[inner_brows[0], 0]
        assert -0.06 < knit < -0.03  # the inner brows ~0.05 closer together
        assert np.abs(change[:, 2]).max() == 0.0
        phonetic.set_emotion_actions("fear", lip_stretch=0.0, brow_knit=0.0, lip_pucker=0.04)
        pucker = (phonetic.emotion_offsets_applied() - before)[fear]
        assert pucker[left, 0] - pucker[right, 0] == pytest.approx(-2 * 0.04, rel=0.02)  # 0.08 narrower
        np.testing.assert_allclose(pucker[:, 1:], 0.0, atol=1e-12)  # level: nothing moves up or down
        with pytest.raises(ValueError, match="unknown action"):
            phonetic.set_emotion_actions("fear", frown=0.1)
        with pytest.raises(ValueError, match="unknown emotion"):
            phonetic.set_emotion_actions("bored", lip_stretch=0.1)
    finally:
        phonetic.restore_emotion_settings(saved)
    assert phonetic.emotion_settings() == saved
    with_actions = phonetic.emotion_offsets_applied()
    np.testing.assert_allclose(with_actions[sad], before[sad])
    stretch = saved["actions"]["fear"]["lip_stretch"]
    assert (with_actions[fear, left, 0] - with_actions[fear, right, 0]) - (before[fear, left, 0] - before[fear, right, 0]) \
        == pytest.approx(2 * stretch, rel=0.02)


def test_anger_holds_its_mouth_wider_than_neutral_not_pursed():
    """Real MEAD level-3 anger talks with a wider mouth than neutral speech (+0.002 to +0.056 eye
    units); its closed-lip offsets alone, with the lower face's gain, press the mouth narrower
    (-0.04 canonical units): anger's lip stretch must leave the held angry mouth wider than
    neutral's, and surprise's round "oh" still narrower."""
    import facecue.phonetic as phonetic

    offsets = phonetic.emotion_offsets_applied()
    right, left = MOUTH_CORNERS

    def widening(emotion: str) -> float:
        return float(offsets[EMOTIONS.index(emotion), left, 0] - offsets[EMOTIONS.index(emotion), right, 0])

    assert widening("angry") > 0.0
    assert widening("surprised") < 0.0


def test_surprise_opens_the_jaw_further_than_its_mead_average():
    import facecue.phonetic as phonetic
    from facecue.constants import EMOTIONS

    weights = np.eye(len(EMOTIONS))
    jaw = phonetic.emotion_mouth_dynamics(weights, 1.0)[1]
    prior = phonetic.load_priors().emotion_jaw_opening
    surprised = EMOTIONS.index("surprised")
    assert jaw[surprised] == pytest.approx(phonetic.EMOTION_EMPHASIS["surprised"]["jaw"] * prior[surprised], rel=1e-5)
    assert jaw[surprised] > jaw.max(initial=0, where=np.arange(len(EMOTIONS)) != surprised)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "wrap"])
def test_gaussian_filter1d_equals_scipys(mode):
    """The phonetic model's own 1-D Gaussian smoothing (no scipy.ndimage import at start-up) gives
    scipy.ndimage.gaussian_filter1d's values and dtype, on short and long signals, along axis 0."""
    from scipy.ndimage import gaussian_filter1d as scipy_filter

    from facecue.phonetic import gaussian_filter1d

    rng = np.random.default_rng(5)
    for n in (1, 3, 40, 500):
        for sigma in (0.8, 2.0, 12.5):  # radius 3, 8, 50: beyond the signal's length too
            for dtype in (np.float64, np.float32):
                x = rng.normal(size=(n, 3)).astype(dtype)
                expected = scipy_filter(x, sigma, axis=0, mode=mode)
                got = gaussian_filter1d(x, sigma, axis=0, mode=mode)
                assert got.dtype == expected.dtype and got.shape == expected.shape
                assert np.allclose(got, expected, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)


def test_cue_emotion_weights_read_the_emotion_that_speech_made_cues_say():
    """What ``facecue render`` draws for a cue file: the emotion (a name, a schedule, or the
    ``(seconds, name)`` pairs the phonetic model stores) times the intensity, as generate does;
    nothing for cues that say no emotion (a real video's)."""
    from facecue.constants import EMOTIONS
    from facecue.phonetic import cue_emotion_weights, emotion_weights

    assert cue_emotion_weights({"source": "talk.mp4"}, 10, 25.0) is None
    sad = cue_emotion_weights({"emotion": "sad", "intensity": 0.5}, 10, 25.0)
    assert sad.shape == (10, len(EMOTIONS)) and np.allclose(sad[:, EMOTIONS.index("sad")], 0.5)
    assert np.allclose(sad.sum(axis=1), 0.5)
    stored = cue_emotion_weights({"emotion": [[0.0, "neutral"], [1.0, "happy"]]}, 75, 25.0)
    assert np.array_equal(stored, emotion_weights("neutral@0,happy@1", 75, 25.0))
    with pytest.raises(InputError, match="intensity"):
        cue_emotion_weights({"emotion": "sad", "intensity": 3}, 10, 25.0)
