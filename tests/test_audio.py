"""facecue.audio: frame counts, time alignment, log-mel, loudness, phones and visemes."""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave

import numpy as np
import pytest

from facecue import audio as A
from facecue.constants import HOP_LENGTH, MEL_FMAX, MEL_FMIN, MEL_SUBFRAMES, N_FFT, N_MELS, SAMPLE_RATE
from facecue.errors import InputError

SR = SAMPLE_RATE
SENTENCE = "Bob bought my mom a blue boat"
# CMU dictionary pronunciation of SENTENCE ('a' may align as AH or EY).
SENTENCE_PHONES = "B AA B B AO T M AY M AA M {a} B L UW B OW T".split()


def tone_burst(total_s: float = 2.0, start_s: float = 1.0, end_s: float = 1.4, amp: float = 0.5):
    """1 kHz sine from start_s to end_s in digital silence."""
    x = np.zeros(int(round(total_s * SR)), dtype=np.float32)
    i0, i1 = int(round(start_s * SR)), int(round(end_s * SR))
    t = np.arange(i1 - i0) / SR
    x[i0:i1] = amp * np.sin(2 * np.pi * 1000.0 * t)
    return x


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(round(seconds * SR)))).astype(np.float32)


# ------------------------------------------------------------------------------------------
# frame counts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_samples", "fps", "expected"),
    [
        (int(1.37 * SR), 25, 34),  # 34.25
        (SR // 2 + 1, 25, 13),  # 12.5006
        (7 * SR, 29.97, 210),  # 209.79
        (7 * SR, 30000 / 1001, 210),
        (320, 25, 1),  # exactly 0.5 frame: halves round up
        (0, 30, 0),
        (10 * SR, 24, 240),
    ],
)
def test_n_video_frames_known_values(n_samples, fps, expected):
    assert A.n_video_frames(n_samples, fps) == expected


@pytest.mark.parametrize("fps", [24, 25, 30, 29.97, 60])
@pytest.mark.parametrize("n_samples", [int(1.37 * SR), SR // 2 + 1, 7 * SR, 1234])
def test_per_frame_features_have_one_row_per_video_frame(fps, n_samples):
    x = noise(n_samples / SR, seed=n_samples)
    T = A.n_video_frames(n_samples, fps)
    assert A.mel_frames(x, fps).shape == (T, MEL_SUBFRAMES, N_MELS)
    assert A.mel_frames(x, fps).dtype == np.float32
    env = A.loudness_envelope(x, fps)
    assert env.shape == (T,) and env.dtype == np.float32
    assert A.rms_db(x, fps).shape == (T,)


@pytest.mark.parametrize("fps", [25, 29.97])
def test_explicit_n_frames_pads_with_silence_and_trims(fps):
    x = noise(1.37)
    T = A.n_video_frames(x.size, fps)
    env, mel = A.loudness_envelope(x, fps), A.mel_frames(x, fps)

    long_env = A.loudness_envelope(x, fps, n_frames=T + 10)
    long_mel = A.mel_frames(x, fps, n_frames=T + 10)
    assert long_env.shape == (T + 10,) and long_mel.shape == (T + 10, MEL_SUBFRAMES, N_MELS)
    np.testing.assert_array_equal(long_env[: T - 1], env[: T - 1])
    assert np.all(long_env[T + 1 :] == 0.0)
    # Frames well past the end are digital silence: log10(1e-10).
    np.testing.assert_allclose(long_mel[T + 2 :], -10.0)
    np.testing.assert_allclose(long_mel[: T - 2], mel[: T - 2], atol=1e-5)
    assert np.all(A.rms_db(x, fps, n_frames=T + 10)[T + 1 :] == A.RMS_DB_FLOOR)

    short_env = A.loudness_envelope(x, fps, n_frames=T - 7)
    short_mel = A.mel_frames(x, fps, n_frames=T - 7)
    np.testing.assert_array_equal(short_env, env[: T - 7])
    np.testing.assert_allclose(short_mel, mel[: T - 7], atol=1e-5)
    assert A.mel_frames(x, fps, n_frames=0).shape == (0, MEL_SUBFRAMES, N_MELS)
    assert A.loudness_envelope(x, fps, n_frames=0).shape == (0,)


# ------------------------------------------------------------------------------------------
# time alignment
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "first", "last"), [(25, 25, 34), (30, 30, 41)])
def test_tone_burst_loudness_is_in_exactly_the_right_frames(fps, first, last):
    x = tone_burst()
    env = A.loudness_envelope(x, fps)
    assert env.shape == (2 * fps,)
    loud = np.flatnonzero(env > 0.1)
    np.testing.assert_array_equal(loud, np.arange(first, last + 1))
    # 30 fps frames hold a non-integer number of 1 kHz periods: RMS within 1 %
    np.testing.assert_allclose(env[first : last + 1], 0.5 / np.sqrt(2), rtol=1e-2)
    assert np.all(env[:first] < 1e-6) and np.all(env[last + 1 :] < 1e-6)
    db = A.rms_db(x, fps)
    np.testing.assert_allclose(db[first : last + 1], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.1)
    assert np.all(db[:first] == -80.0)


@pytest.mark.parametrize(("fps", "first", "last"), [(25, 25, 34), (30, 30, 41)])
def test_tone_burst_mel_frames_are_aligned_and_in_the_1khz_band(fps, first, last):
    x = tone_burst()
    mel = A.mel_frames(x, fps)
    fb = A.mel_filterbank()
    band = int(np.argmax(fb[:, int(round(1000 * N_FFT / SR))]))  # band weighting the 1 kHz bin most
    centres = A.mel_center_frequencies()
    assert abs(centres[band] - 1000) < 60
    inside = mel[first : last + 1]
    # Every sub-frame of every burst frame peaks in the 1 kHz band.
    assert np.all(np.argmax(inside, axis=-1) == band)
    assert np.all(inside[..., band] > -2.0)
    # The STFT window (25 ms) smears one neighbouring frame at most; beyond it: pure silence.
    np.testing.assert_array_equal(mel[: first - 1], -10.0)
    np.testing.assert_array_equal(mel[last + 2 :], -10.0)


def test_mel_frames_at_25fps_average_adjacent_log_mel_frames():
    x = noise(3.0, seed=3)
    L = A.log_mel_spectrogram(x)
    mel = A.mel_frames(x, 25)
    T = mel.shape[0]
    t, k = np.meshgrid(np.arange(T - 1), np.arange(MEL_SUBFRAMES), indexing="ij")
    expected = 0.5 * (L[4 * t + k] + L[4 * t + k + 1])  # sub-frame centres fall midway
    np.testing.assert_allclose(mel[: T - 1], expected, atol=1e-5)


def test_mel_frames_interpolate_at_subframe_centres_for_ntsc_rate():
    fps = 30000 / 1001
    x = noise(2.5, seed=4)
    L = A.log_mel_spectrogram(x)
    mel = A.mel_frames(x, fps)
    T = mel.shape[0]
    times = np.arange(T)[:, None] / fps + (np.arange(MEL_SUBFRAMES)[None, :] + 0.5) / (fps * MEL_SUBFRAMES)
    mel_times = np.arange(L.shape[0]) * HOP_LENGTH / SR
    for band in (0, 17, 79):
        expected = np.interp(times, mel_times, L[:, band])
        np.testing.assert_allclose(mel[: T - 1, :, band], expected[: T - 1], atol=1e-4)


# ------------------------------------------------------------------------------------------
# log-mel and filterbank
# ------------------------------------------------------------------------------------------


def test_log_mel_shape_floor_and_normalisation():
    x = tone_burst()
    L = A.log_mel_spectrogram(x)
    assert L.shape == (1 + x.size // HOP_LENGTH, N_MELS) and L.dtype == np.float32
    assert L.min() == pytest.approx(-10.0)
    Ln = A.log_mel_spectrogram(x, normalize=True)
    np.testing.assert_allclose(Ln, (np.maximum(L, L.max() - 8) + 4) / 4, atol=1e-6)
    # A tiny clip (shorter than half a window) still works.
    assert A.log_mel_spectrogram(noise(0.005)).shape == (1, N_MELS)


def test_chunked_log_mel_equals_unchunked():
    x = noise(70.0, seed=7)
    whole = A.log_mel_spectrogram(x, chunk_seconds=None)
    np.testing.assert_allclose(A.log_mel_spectrogram(x), whole, atol=1e-4)  # 30 s pieces
    np.testing.assert_allclose(A.log_mel_spectrogram(x, chunk_seconds=7.33), whole, atol=1e-4)
    short = x[: 5 * SR + 77]
    np.testing.assert_allclose(
        A.log_mel_spectrogram(short, chunk_seconds=0.01), A.log_mel_spectrogram(short, chunk_seconds=None), atol=1e-4
    )


def test_mel_filterbank_rows():
    fb = A.mel_filterbank()
    assert fb.shape == (N_MELS, N_FFT // 2 + 1) and fb.dtype == np.float32
    assert np.all(fb >= 0)
    assert np.all(fb.sum(axis=1) > 0), "every band must see at least one FFT bin"
    freqs = np.linspace(0, SR / 2, N_FFT // 2 + 1)
    centroid = (fb * freqs).sum(axis=1) / fb.sum(axis=1)
    assert np.all(np.diff(centroid) > 0)
    centres = A.mel_center_frequencies()
    assert np.all(np.diff(centres) > 0)
    assert MEL_FMIN < centres[0] < 100 and 7000 < centres[-1] < MEL_FMAX
    assert np.all(np.abs(centroid - centres) < 0.1 * centres + 40)
    assert A.mel_filterbank() is fb  # cached
    assert not fb.flags.writeable


# ------------------------------------------------------------------------------------------
# errors and silence
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((100, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros(100, np.int16),
        np.full(100, np.nan, np.float32),
    ],
    ids=["stereo", "empty", "int16", "nan"],
)
def test_bad_audio_raises_input_error(bad):
    for call in (A.log_mel_spectrogram, A.is_silent, lambda a: A.mel_frames(a, 25), A.recognize_phones):
        with pytest.raises(InputError) as info:
            call(bad)
        assert info.value.path is None and str(info.value)


def test_bad_fps_raises_input_error():
    with pytest.raises(InputError, match="fps"):
        A.loudness_envelope(noise(1.0), 0)
    with pytest.raises(InputError, match="n_frames"):
        A.mel_frames(noise(1.0), 25, n_frames=-1)


def test_is_silent():
    assert A.is_silent(np.zeros(SR, np.float32))
    assert not A.is_silent(tone_burst())
    quiet = tone_burst(amp=10 ** (-65 / 20))  # -68 dB RMS
    assert A.is_silent(quiet)
    assert not A.is_silent(quiet, threshold_db=-75)
    blip = np.zeros(10 * SR, np.float32)
    blip[5 * SR : 5 * SR + 800] = 0.05  # 50 ms at -26 dB in 10 s of silence
    assert not A.is_silent(blip)


# ------------------------------------------------------------------------------------------
# phones and visemes
# ------------------------------------------------------------------------------------------


def test_phone_inventory_and_viseme_mapping():
    assert len(A.PHONES) == 40 and A.PHONES[0] == "SIL" and len(set(A.PHONES)) == 40
    assert set(A.VISEMES) == set(A.PHONES)
    assert set(A.VISEMES.values()) == set(A.VISEME_NAMES)
    assert A.VISEME_NAMES[0] == "sil"
    for p in ("M", "B", "P"):
        assert A.phone_to_viseme(p) == "PP"
    for p in ("UW", "W"):
        assert A.phone_to_viseme(p) == "U"
    assert A.phone_to_viseme("aa1") == "aa"
    assert A.phone_to_viseme("F") == "FF" and A.phone_to_viseme("OW") == "O" and A.phone_to_viseme("S") == "SS"
    assert A.phone_to_viseme("SIL") == "sil" and A.phone_to_viseme("+NSN+") == "sil"
    with pytest.raises(ValueError):
        A.phone_to_viseme("QQ")


def test_phones_and_visemes_to_frames_known_answer():
    phones = [A.Phone("SIL", 0.0, 0.5), A.Phone("M", 0.5, 0.62), A.Phone("AA", 0.62, 1.0)]
    ids = A.phones_to_frames(phones, 25, 30)  # centres at (t + 0.5) / 25
    expected = np.zeros(30, int)
    expected[12:15] = A.PHONES.index("M")  # centres 0.50, 0.54, 0.58
    expected[15:25] = A.PHONES.index("AA")  # centres 0.62 ... 0.98; past 1.0 s: SIL
    np.testing.assert_array_equal(ids, expected)
    vis = A.visemes_to_frames(phones, 25, 30)
    names = [A.VISEME_NAMES[i] for i in vis]
    assert names[:12] == ["sil"] * 12 and names[12:15] == ["PP"] * 3 and names[15:25] == ["aa"] * 10
    assert names[25:] == ["sil"] * 5
    onehot = A.viseme_onehot(vis)
    assert onehot.shape == (30, len(A.VISEME_NAMES)) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    np.testing.assert_array_equal(onehot.argmax(axis=1), vis)


def test_recognize_phones_on_silence_is_only_sil():
    phones = A.recognize_phones(np.zeros(2 * SR, np.float32))
    assert phones == [A.Phone("SIL", 0.0, 2.0)]
    assert A.recognize_phones(np.zeros(SR, np.float32), text=SENTENCE) == [A.Phone("SIL", 0.0, 1.0)]


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """SENTENCE spoken by espeak-ng, 16 kHz mono float32."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install espeak-ng sox) - cannot synthesize speech")
    d = tmp_path_factory.mktemp("speech")
    raw, wav = d / "raw.wav", d / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(wav)], check=True)
    with wave.open(str(wav)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm / 32768.0).astype(np.float32)


def assert_contiguous_cover(phones, duration):
    assert phones and phones[0].start_s == 0.0
    assert phones[-1].end_s == pytest.approx(duration, abs=1e-9)
    for a, b in zip(phones, phones[1:]):
        assert a.end_s == pytest.approx(b.start_s, abs=1e-9)
        assert not (a.label == b.label == "SIL"), "adjacent silences are merged"
    for p in phones:
        assert 0.0 <= p.start_s < p.end_s <= duration + 1e-9
        assert p.label in A.PHONES


def speech_labels(phones):
    return [p.label for p in phones if p.label != "SIL"]


def test_is_silent_on_speech(speech):
    assert not A.is_silent(speech)


@pytest.mark.parametrize("chunk_s", [A.CHUNK_SECONDS, 1.0])  # 1 s pieces exercise the long-audio path
def test_forced_alignment_returns_the_sentence_phones(speech, chunk_s):
    duration = speech.size / SR
    phones = A.recognize_phones(speech, text=SENTENCE, chunk_s=chunk_s)
    assert_contiguous_cover(phones, duration)
    labels = speech_labels(phones)
    assert {"M", "B"} <= set(labels) and {"P", "UW", "OW"} & set(labels)
    assert labels in (
        [p.format(a="AH") for p in SENTENCE_PHONES],
        [p.format(a="EY") for p in SENTENCE_PHONES],
    )
    # A real pause lasts >= 3 frames (3-state SIL HMM); shorter SILs would be seams between pieces.
    assert all(p.duration_s >= 0.03 - 1e-9 for p in phones if p.label == "SIL")
    # Timing: the last spoken phone ends where the waveform goes quiet (within 100 ms).
    loud = np.flatnonzero(np.abs(speech) > 0.02)
    last_spoken = [p for p in phones if p.label != "SIL"][-1]
    assert abs(last_spoken.end_s - loud[-1] / SR) < 0.1
    first_spoken = [p for p in phones if p.label != "SIL"][0]
    assert abs(first_spoken.start_s - loud[0] / SR) < 0.1


@pytest.mark.parametrize("chunk_s", [A.CHUNK_SECONDS, 1.0])
def test_allphone_decoding(speech, chunk_s):
    duration = speech.size / SR
    phones = A.recognize_phones(speech, chunk_s=chunk_s)
    assert_contiguous_cover(phones, duration)
    labels = speech_labels(phones)
    assert len(labels) >= 8  # ~20 phones spoken; free decoding is noisy but not empty
    assert A.recognize_phones(speech, text="  ", chunk_s=chunk_s) == phones  # blank = no transcript


def test_helper_processes_decode_the_same_phones(speech):
    """Pieces decoded in spawned helper processes give exactly the phones of decoding them all here
    (1 s pieces: several of them; helpers=2 asks for more helpers than one piece per process needs)."""
    here = A.recognize_phones(speech, chunk_s=1.0)
    assert A.recognize_phones(speech, chunk_s=1.0, helpers=2) == here
    assert A.recognize_phones(speech, chunk_s=1.0, helpers=None) == here


def test_phone_recognition_started_early_gives_the_same_phones(speech):
    """PhoneRecognition hands the helpers their pieces at construction and collects them in
    result(): the same phones as recognize_phones, while this process did other work in between;
    closing one before its result leaves no helper behind and does not wait for the pieces."""
    import multiprocessing
    import time

    here = A.recognize_phones(speech, chunk_s=1.0)
    with A.PhoneRecognition(speech, chunk_s=1.0, helpers=1) as job:
        np.linalg.svd(np.random.default_rng(0).normal(size=(300, 300)))  # other work meanwhile
        assert job.result() == here
        assert job.result() is job.result()  # computed once
    long_speech = np.tile(speech, 40)  # about 10 s of decoding
    start = time.perf_counter()
    with A.PhoneRecognition(long_speech, chunk_s=1.0, helpers=1):
        pass
    assert time.perf_counter() - start < 4.0  # cancelled, not decoded
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


def _phones_in_a_daemon(speech, queue) -> None:
    queue.put(A.recognize_phones(speech, chunk_s=1.0, helpers=2))


def test_helpers_asked_for_inside_a_daemonic_process_decode_there(speech):
    """A daemonic process (a multiprocessing pool's worker) may not start helpers: an explicit
    helper count there decodes every piece in that process, with the same phones."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_phones_in_a_daemon, args=(speech, queue), daemon=True)
    child.start()
    try:
        phones = queue.get(timeout=120)
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0
    assert phones == A.recognize_phones(speech, chunk_s=1.0)


def test_phone_helpers_only_for_several_pieces_and_free_cores(monkeypatch):
    import facecue.parallel

    monkeypatch.setattr(facecue.parallel, "usable_cores", lambda: 4)
    assert [A.phone_helpers(n) for n in (0, 1, 2, 3, 9)] == [0, 0, 1, 2, 3]
    monkeypatch.setattr(facecue.parallel, "usable_cores", lambda: 1)
    assert A.phone_helpers(5) == 0


def test_alignment_falls_back_to_allphone_for_unknown_words(speech, caplog):
    with caplog.at_level(logging.WARNING, logger="facecue.audio"):
        phones = A.recognize_phones(speech, text="Bob bought my mom a blue zxqvbboat")
    assert "zxqvbboat" in caplog.text
    assert_contiguous_cover(phones, speech.size / SR)
    assert len(speech_labels(phones)) >= 8


def test_phone_and_viseme_frames_of_speech(speech):
    fps = 25
    T = A.n_video_frames(speech.size, fps)
    phones = A.recognize_phones(speech, text=SENTENCE)
    ids = A.phones_to_frames(phones, fps, T)
    vis = A.visemes_to_frames(phones, fps, T)
    assert ids.shape == (T,) and vis.shape == (T,)
    pp = A.VISEME_NAMES.index("PP")
    assert np.count_nonzero(vis == pp) >= 5  # 8 bilabials of >= 40 ms each
    # Bilabial frames are M/B/P frames and vice versa.
    bilabial = np.isin(ids, [A.PHONES.index(p) for p in ("M", "B", "P")])
    np.testing.assert_array_equal(bilabial, vis == pp)
    # Lips are closed (sil or PP) at both ends: the clip starts and ends in silence.
    assert vis[0] in (0, pp) and vis[-1] == 0


def test_phone_decoding_does_not_depend_on_earlier_calls(speech):
    first = A.recognize_phones(speech)
    A.recognize_phones(noise(1.0, seed=9))  # shifts pocketsphinx's running cepstral mean
    A.recognize_phones(speech, text=SENTENCE)
    assert A.recognize_phones(speech) == first


def test_quiet_speech_is_level_normalised_before_recognition():
    """Recordings 28 and 34 dB quieter than the bundled speech give the same phones as each other,
    and nearly those of the original; speech already at a good level is not touched."""
    import difflib

    from facecue.assets import asset_path
    from facecue.audio import normalize_level, recognize_phones
    from facecue.io import read_audio

    speech = read_audio(asset_path("speech.wav"))[: 5 * 16000]
    quieter, quietest = recognize_phones(speech * 0.04), recognize_phones(speech * 0.02)
    assert [(p.label, round(p.start_s, 2)) for p in quieter] == [(p.label, round(p.start_s, 2)) for p in quietest]
    loud = [p.label for p in recognize_phones(speech) if p.label != "SIL"]
    quiet = [p.label for p in quietest if p.label != "SIL"]
    assert difflib.SequenceMatcher(None, loud, quiet).ratio() > 0.9, (loud, quiet)
    np.testing.assert_allclose(normalize_level(speech * 0.02), normalize_level(speech * 0.04), atol=2e-5)
    assert np.array_equal(normalize_level(speech), speech), "a good level is left alone"
    assert np.array_equal(normalize_level(np.zeros(1600, np.float32)), np.zeros(1600, np.float32))
