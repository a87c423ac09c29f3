"""Audio features aligned to video frames.

Every function here takes mono ``float32`` samples at :data:`~facecue.constants.SAMPLE_RATE`
(values nominally in [-1, 1]) as a 1-D numpy array; reading and resampling files is the job of
:mod:`facecue.io`.

Time conventions (all functions agree on them):

* Audio sample ``j`` sits at ``j / SAMPLE_RATE`` seconds.
* Video frame ``t`` of a video at ``fps`` covers ``[t / fps, (t + 1) / fps)`` seconds; its
  centre is ``(t + 0.5) / fps``.
* Log-mel frame ``i`` is centred at ``i * HOP_LENGTH / SAMPLE_RATE`` seconds (``torch.stft``
  with ``center=True``), i.e. 100 frames per second.
* The number of video frames an audio spans is :func:`n_video_frames` (the single definition);
  every per-frame function defaults to it and accepts ``n_frames`` to match an existing video,
  padding with silence or trimming.

Phonetic features come from pocketsphinx (US-English acoustic model shipped with the wheel):
forced alignment when the transcript is known, all-phone decoding otherwise. Phones map to the
viseme classes of the Oculus / MPEG-4 style set (:data:`VISEME_NAMES`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: phones and loudness do not need it
    import torch

from facecue.constants import (
    HOP_LENGTH,
    MEL_FMAX,
    MEL_FMIN,
    MEL_FRAMES_PER_SECOND,
    MEL_SUBFRAMES,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
)
from facecue.errors import InputError

__all__ = [
    "PHONES",
    "VISEMES",
    "VISEME_NAMES",
    "Phone",
    "is_silent",
    "log_mel_spectrogram",
    "loudness_envelope",
    "mel_center_frequencies",
    "mel_filterbank",
    "mel_frames",
    "n_video_frames",
    "phone_to_viseme",
    "PhoneRecognition",
    "phones_to_frames",
    "recognize_phones",
    "rms_db",
    "viseme_onehot",
    "visemes_to_frames",
]

logger = logging.getLogger(__name__)

LOG_MEL_FLOOR = 1e-10
"""Power floor applied before ``log10``; log-mel of digital silence is ``log10(1e-10) = -10``."""

RMS_DB_FLOOR = -80.0
"""dB floor of :func:`rms_db` (dB relative to a full-scale RMS of 1.0)."""

CHUNK_SECONDS = 30.0
"""Length of the pieces long audio is processed in (log-mel STFT and phone recognition)."""

PHONE_FRAMES_PER_SECOND = 100
"""pocketsphinx's frame rate (10 ms frames); phone times are multiples of 1/100 s."""


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_audio(audio: Any) -> np.ndarray:
    """Return ``audio`` as a C-contiguous 1-D float32 array or raise :class:`InputError`."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise InputError(
            None,
            f"audio must be a 1-D mono signal, got an array of shape {x.shape} "
            "(mix stereo down to mono first)",
        )
    if x.size == 0:
        raise InputError(None, "audio is empty (0 samples)")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(
            None,
            f"audio must be floating-point samples in [-1, 1], got dtype {x.dtype} "
            "(divide integer PCM by its full scale, e.g. 32768 for int16)",
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError(None, "audio contains NaN or infinite samples")
    return x


def _check_fps(fps: float) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise InputError(None, f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise InputError(None, f"fps must be a positive finite number, got {fps!r}")
    return f


def _check_n_frames(n_frames: Any) -> int:
    if isinstance(n_frames, (bool, np.bool_)) or not isinstance(n_frames, (int, np.integer)):
        raise InputError(None, f"n_frames must be a non-negative integer, got {n_frames!r}")
    if n_frames < 0:
        raise InputError(None, f"n_frames must be a non-negative integer, got {n_frames!r}")
    return int(n_frames)


def _resolve_n_frames(n_samples: int, fps: float, n_frames: int | None) -> int:
    if n_frames is None:
        return n_video_frames(n_samples, fps)
    return _check_n_frames(n_frames)


# ----------------------------------------------------------------------------------------------
# frame counting
# ----------------------------------------------------------------------------------------------


def n_video_frames(n_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of video frames spanned by ``n_samples`` audio samples.

    This is the single definition used throughout facecue:
    ``round(n_samples / sample_rate * fps)``, rounding halves up (so 0.5 s at 25 fps,
    i.e. 12.5 frames, gives 13).

    Parameters
    ----------
    n_samples : int
        Number of audio samples (>= 0).
    fps : float
        Video frame rate in frames per second (> 0), e.g. 25, 29.97 or 30000/1001.
    sample_rate : int
        Audio sample rate in Hz.

    Returns
    -------
    int
        Frame count (>= 0).
    """
    fps = _check_fps(fps)
    if n_samples < 0:
        raise InputError(None, f"n_samples must be >= 0, got {n_samples}")
    if sample_rate <= 0:
        raise InputError(None, f"sample_rate must be > 0, got {sample_rate}")
    return int(math.floor(n_samples * fps / sample_rate + 0.5))


# ----------------------------------------------------------------------------------------------
# mel filterbank
# ----------------------------------------------------------------------------------------------

# Slaney's auditory-toolbox mel scale (the librosa / Whisper default): linear below 1 kHz,
# logarithmic above.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mel
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, lin)


def mel_center_frequencies(
    n_mels: int = N_MELS, fmin: float = MEL_FMIN, fmax: float = MEL_FMAX
) -> np.ndarray:
    """Centre frequencies of the triangular mel filters.

    Parameters
    ----------
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Lower edge of the first band and upper edge of the last band, Hz.

    Returns
    -------
    np.ndarray
        Shape ``(n_mels,)`` float64, Hz, strictly increasing (Slaney mel scale).
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    return edges[1:-1]


@functools.lru_cache(maxsize=8)
def _mel_filterbank_cached(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
) -> np.ndarray:
    if n_mels < 1 or n_fft < 2 or sample_rate <= 0:
        raise ValueError(f"bad filterbank size n_mels={n_mels} n_fft={n_fft} sr={sample_rate}")
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got {fmin}, {fmax}")
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_bins)
    lower = -ramps[:-2] / widths[:-1, None]  # rising slope
    upper = ramps[2:] / widths[1:, None]  # falling slope
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney normalisation: every triangle has unit area (in Hz), so bands measure
    # power density and wide high bands do not dominate.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out


def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
) -> np.ndarray:
    """Triangular mel filterbank (Slaney mel scale and area normalisation, as librosa/Whisper).

    Parameters
    ----------
    n_mels : int
        Number of mel bands.
    n_fft : int
        FFT size; the filterbank applies to the ``n_fft // 2 + 1`` one-sided bins.
    sample_rate : int
        Sample rate in Hz.
    fmin, fmax : float
        Lower edge of the first band and upper edge of the last band, Hz.

    Returns
    -------
    np.ndarray
        Shape ``(n_mels, n_fft // 2 + 1)`` float32, non-negative. Row ``m`` is a triangle
        peaking at ``mel_center_frequencies(...)[m]``. The array is cached and read-only;
        copy it before modifying.
    """
    return _mel_filterbank_cached(int(n_mels), int(n_fft), int(sample_rate), float(fmin), float(fmax))


@functools.lru_cache(maxsize=1)
def _torch_constants() -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    window = torch.hann_window(N_FFT)
    fb = torch.from_numpy(mel_filterbank().copy())
    return window, fb


# ----------------------------------------------------------------------------------------------
# log-mel spectrogram
# ----------------------------------------------------------------------------------------------


def _log_mel_segment(seg: np.ndarray) -> torch.Tensor:
    """log10 mel power of ``seg`` (``torch.stft`` with ``center=True``) -> (frames, N_MELS)."""
    import torch

    window, fb = _torch_constants()
    # Reflect padding needs more than N_FFT // 2 samples; tiny clips are zero-padded instead.
    pad_mode = "reflect" if seg.size > N_FFT // 2 else "constant"
    spec = torch.stft(
        torch.from_numpy(seg),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )  # (N_FFT // 2 + 1, frames) complex64
    power = spec.real.square() + spec.imag.square()
    mel = fb @ power  # (N_MELS, frames)
    return torch.log10(torch.clamp(mel, min=LOG_MEL_FLOOR)).T


def log_mel_spectrogram(
    audio: np.ndarray,
    *,
    normalize: bool = False,
    chunk_seconds: float | None = CHUNK_SECONDS,
) -> np.ndarray:
    """Log-mel power spectrogram, 100 frames per second.

    ``torch.stft(n_fft=N_FFT, hop_length=HOP_LENGTH, window=hann(N_FFT), center=True)``
    (reflect padding) -> power ``|X|^2`` -> :func:`mel_filterbank` -> ``log10(max(., 1e-10))``.
    Long audio is processed in pieces of ``chunk_seconds`` whose STFT inputs overlap by the
    window, which gives the same frames as one whole-signal STFT while bounding the memory of
    the complex spectrogram.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(n_samples,)`` float mono at ``SAMPLE_RATE`` Hz.
    normalize : bool
        If True apply Whisper's normalisation: clamp to ``max - 8`` then ``(x + 4) / 4``
        (dimensionless, roughly in [-1, 1]). If False (default) values are ``log10`` of mel
        power (full-scale sample units squared, Slaney-normalised filters); digital silence is
        exactly ``-10``.
    chunk_seconds : float or None
        Piece length in seconds; None processes the whole signal in one STFT.

    Returns
    -------
    np.ndarray
        Shape ``(1 + n_samples // HOP_LENGTH, N_MELS)`` float32. Row ``i`` is centred at
        ``i * HOP_LENGTH / SAMPLE_RATE`` seconds.
    """
    x = _check_audio(audio)
    n = x.size
    n_out = 1 + n // HOP_LENGTH
    out = np.empty((n_out, N_MELS), dtype=np.float32)
    if chunk_seconds is None:
        chunk = n_out
    else:
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0 or None, got {chunk_seconds}")
        chunk = max(1, int(round(chunk_seconds * MEL_FRAMES_PER_SECOND)))
    half = N_FFT // 2
    margin = -(-half // HOP_LENGTH)  # whole hops before a chunk so its first window is real data
    import torch

    with torch.inference_mode():
        for f0 in range(0, n_out, chunk):
            f1 = min(n_out, f0 + chunk)
            if f0 == 0 and f1 == n_out:
                out[:] = _log_mel_segment(x).numpy()
                break
            first = max(0, f0 - margin)  # frame index at which the segment starts
            s0 = first * HOP_LENGTH
            # The last window ends at its centre + half; keep > half samples so the segment
            # is reflect-padded at its start like the whole signal (frames past f1 are dropped).
            s1 = min(n, max((f1 - 1) * HOP_LENGTH + half, s0 + half + 1))
            frames = _log_mel_segment(x[s0:s1])
            out[f0:f1] = frames[f0 - first : f1 - first].numpy()
    if normalize:
        np.maximum(out, out.max() - 8.0, out=out)
        out += 4.0
        out /= 4.0
    return out


# ----------------------------------------------------------------------------------------------
# per-video-frame features
# ----------------------------------------------------------------------------------------------


def _subframe_times(fps: float, n_frames: int) -> np.ndarray:
    """(n_frames, MEL_SUBFRAMES) times in s: t/fps + (k + 0.5)/(fps * MEL_SUBFRAMES)."""
    t = np.arange(n_frames, dtype=np.float64)[:, None]
    k = np.arange(MEL_SUBFRAMES, dtype=np.float64)[None, :]
    return t / fps + (k + 0.5) / (fps * MEL_SUBFRAMES)


def mel_frames(
    audio: np.ndarray,
    fps: float,
    n_frames: int | None = None,
    *,
    normalize: bool = False,
) -> np.ndarray:
    """Log-mel features resampled to exactly one window per video frame.

    Sub-frame ``k`` of video frame ``t`` is the log-mel spectrogram linearly interpolated (in
    the log domain) at time ``t / fps + (k + 0.5) / (fps * MEL_SUBFRAMES)`` s, i.e. at the
    centres of ``MEL_SUBFRAMES`` equal slices of the frame's interval. Works for any fps. At
    25 fps this is the mean of log-mel frames ``4t + k`` and ``4t + k + 1``.

    The audio is treated as followed by digital silence: frames beyond its end (when
    ``n_frames`` asks for more than the audio spans) hold the silence value, and windows that
    straddle the end see zeros rather than a reflection.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(n_samples,)`` float mono at ``SAMPLE_RATE`` Hz.
    fps : float
        Video frame rate (frames per second, > 0).
    n_frames : int, optional
        Number of video frames to produce; default ``n_video_frames(len(audio), fps)``.
    normalize : bool
        Whisper-style normalisation, see :func:`log_mel_spectrogram`. Here the ``max - 8``
        clamp uses the maximum over the whole (padded or trimmed) span.

    Returns
    -------
    np.ndarray
        Shape ``(T, MEL_SUBFRAMES, N_MELS)`` float32, ``T = n_frames``; log10 mel power.
    """
    x = _check_audio(audio)
    fps = _check_fps(fps)
    T = _resolve_n_frames(x.size, fps, n_frames)
    if T == 0:
        return np.zeros((0, MEL_SUBFRAMES, N_MELS), dtype=np.float32)
    pos = _subframe_times(fps, T) * MEL_FRAMES_PER_SECOND  # fractional mel-frame index
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)[..., None]
    last = int(i0.max()) + 1  # highest mel frame needed
    # Pad with zeros / trim so the window of mel frame `last` ends exactly at the segment end
    # and every needed frame is computed from audio (+ trailing silence), never reflection.
    need = last * HOP_LENGTH + N_FFT // 2
    if x.size >= need:
        seg = x[:need]
    else:
        seg = np.zeros(need, dtype=np.float32)
        seg[: x.size] = x
    logmel = log_mel_spectrogram(seg)  # (last + 2, N_MELS): 1 + need // HOP
    if normalize:
        used = logmel[: last + 1]
        floor = used.max() - 8.0
        np.maximum(logmel, floor, out=logmel)
        logmel = (logmel + 4.0) / 4.0
    out = logmel[i0] * (1.0 - w) + logmel[i0 + 1] * w
    return out.astype(np.float32, copy=False)


def _frame_rms(x: np.ndarray, fps: float, T: int) -> np.ndarray:
    """RMS over [t/fps, (t+1)/fps) for t < T; samples past the end count as zeros."""
    if T == 0:
        return np.zeros(0, dtype=np.float32)
    # Sample j (at j / SR) lies in frame t iff t/fps <= j/SR < (t+1)/fps.
    bounds = np.ceil(np.arange(T + 1, dtype=np.float64) * (SAMPLE_RATE / fps) - 1e-7)
    bounds = bounds.astype(np.int64)
    counts = np.maximum(np.diff(bounds), 1)
    clipped = np.clip(bounds, 0, x.size)
    energy = np.empty(x.size + 1, dtype=np.float64)
    energy[0] = 0.0
    np.cumsum(np.square(x, dtype=np.float64), out=energy[1:])
    sums = np.maximum(energy[clipped[1:]] - energy[clipped[:-1]], 0.0)
    return np.sqrt(sums / counts).astype(np.float32)


def loudness_envelope(audio: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Root-mean-square amplitude of each video frame's samples.

    Frame ``t`` uses the samples with times in ``[t / fps, (t + 1) / fps)``. Samples beyond the
    end of the audio count as silence, so frames past the end are 0.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(n_samples,)`` float mono at ``SAMPLE_RATE`` Hz.
    fps : float
        Video frame rate (> 0).
    n_frames : int, optional
        Number of frames; default ``n_video_frames(len(audio), fps)``.

    Returns
    -------
    np.ndarray
        Shape ``(T,)`` float32, linear RMS in full-scale units (a full-scale sine gives 0.707).
    """
    x = _check_audio(audio)
    fps = _check_fps(fps)
    T = _resolve_n_frames(x.size, fps, n_frames)
    return _frame_rms(x, fps, T)


def rms_db(
    audio: np.ndarray,
    fps: float,
    n_frames: int | None = None,
    floor_db: float = RMS_DB_FLOOR,
) -> np.ndarray:
    """:func:`loudness_envelope` in decibels, ``20 * log10(rms)`` floored at ``floor_db``.

    Returns
    -------
    np.ndarray
        Shape ``(T,)`` float32, dB relative to an RMS of 1.0 (dBFS-like; a full-scale sine is
        about -3 dB), never below ``floor_db`` (default -80 dB).
    """
    rms = loudness_envelope(audio, fps, n_frames).astype(np.float64)
    floor = 10.0 ** (floor_db / 20.0)
    return (20.0 * np.log10(np.maximum(rms, floor))).astype(np.float32)


def is_silent(audio: np.ndarray, threshold_db: float = -50.0) -> bool:
    """True when no part of the clip is louder than ``threshold_db``.

    The clip is scanned with ``N_FFT``-sample windows (25 ms) every ``HOP_LENGTH`` samples
    (10 ms); it is silent when the loudest window's RMS is below ``threshold_db`` dB (relative
    to a full-scale RMS of 1.0). A short word in a long silent clip therefore still counts as
    sound, which a whole-clip RMS would miss.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(n_samples,)`` float mono.
    threshold_db : float
        Loudness threshold in dB.

    Returns
    -------
    bool
    """
    x = _check_audio(audio)
    n = x.size
    win = min(N_FFT, n)
    energy = np.empty(n + 1, dtype=np.float64)
    energy[0] = 0.0
    np.cumsum(np.square(x, dtype=np.float64), out=energy[1:])
    starts = np.arange(0, n - win + 1, HOP_LENGTH)
    starts = np.append(starts, n - win)  # the last window ends at the last sample
    peak_ms = float(np.max(energy[starts + win] - energy[starts])) / win
    return peak_ms < 10.0 ** (threshold_db / 10.0)


# ----------------------------------------------------------------------------------------------
# phones and visemes
# ----------------------------------------------------------------------------------------------

PHONES: tuple[str, ...] = (
    "SIL",
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH",
    "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH",
    "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
"""ARPAbet inventory of the CMU dictionary (39 phones, stress removed) plus ``'SIL'`` at
index 0. :func:`phones_to_frames` returns indices into this tuple."""

_PHONE_INDEX = MappingProxyType({p: i for i, p in enumerate(PHONES)})

VISEME_NAMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "RR", "aa", "E", "I", "O", "U",
)  # fmt: skip
"""Viseme classes (Oculus / MPEG-4 style, with Oculus' ``nn`` merged into ``DD``); ``'sil'``
is index 0. :func:`visemes_to_frames` returns indices into this tuple.

====  ==========================  ==========================================
id    class                       mouth shape
====  ==========================  ==========================================
0     sil  (SIL)                  closed / rest
1     PP   (M B P)                lips pressed together
2     FF   (F V)                  lower lip against upper teeth
3     TH   (TH DH)                tongue between the teeth
4     DD   (T D N L)              tongue on the ridge, slightly open
5     kk   (K G NG HH)            back consonants, relaxed open mouth
6     CH   (CH JH SH ZH)          lips forward, teeth close
7     SS   (S Z)                  teeth close, lips spread
8     RR   (R ER)                 lips slightly rounded
9     aa   (AA AE AH AY AW)       jaw open
10    E    (EH EY)                mid-open, spread
11    I    (IH IY Y)              nearly closed, spread
12    O    (AO OW OY)             rounded, open
13    U    (UH UW W)              rounded, small opening
====  ==========================  ==========================================

``HH`` has no lip shape of its own (it takes the next vowel's); it is filed with ``kk``, the
neutral open-mouth consonant class. Diphthongs take the class of their first target.
"""

VISEMES = MappingProxyType(
    {
        "SIL": "sil",
        "M": "PP", "B": "PP", "P": "PP",
        "F": "FF", "V": "FF",
        "TH": "TH", "DH": "TH",
        "T": "DD", "D": "DD", "N": "DD", "L": "DD",
        "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
        "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
        "S": "SS", "Z": "SS",
        "R": "RR", "ER": "RR",
        "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
        "EH": "E", "EY": "E",
        "IH": "I", "IY": "I", "Y": "I",
        "AO": "O", "OW": "O", "OY": "O",
        "UH": "U", "UW": "U", "W": "U",
    }
)  # fmt: skip
"""Phone label (entry of :data:`PHONES`) -> viseme class name (entry of :data:`VISEME_NAMES`)."""

_VISEME_INDEX = MappingProxyType({v: i for i, v in enumerate(VISEME_NAMES)})
_PHONE_TO_VISEME_ID = np.array([_VISEME_INDEX[VISEMES[p]] for p in PHONES], dtype=np.int64)
_PHONE_TO_VISEME_ID.setflags(write=False)


def _normalize_phone(label: str) -> str | None:
    """ARPAbet label without stress digits, upper case; None if not in :data:`PHONES`.

    Silence and filler tokens of pocketsphinx (``sil``, ``<sil>``, ``+NSN+``, ``+SPN+``...)
    become ``'SIL'``.
    """
    lab = re.sub(r"\d+$", "", label.strip()).upper()
    if lab in _PHONE_INDEX:
        return lab
    if lab in ("", "SP", "<SIL>", "<S>", "</S>", "(NULL)") or lab[:1] in "+[<":
        return "SIL"
    return None


def phone_to_viseme(label: str) -> str:
    """Viseme class of an ARPAbet phone.

    Parameters
    ----------
    label : str
        Phone label, case-insensitive, stress digits allowed (``'AA1'``); silence/filler
        tokens (``'SIL'``, ``'+NSN+'``...) map to ``'sil'``.

    Returns
    -------
    str
        An entry of :data:`VISEME_NAMES`.

    Raises
    ------
    ValueError
        If ``label`` is not an ARPAbet phone.
    """
    lab = _normalize_phone(label)
    if lab is None:
        raise ValueError(f"not an ARPAbet phone: {label!r}")
    return VISEMES[lab]


@dataclass(frozen=True)
class Phone:
    """One phone of a segmentation.

    Attributes
    ----------
    label : str
        ARPAbet label without stress (an entry of :data:`PHONES`, ``'SIL'`` for silence).
    start_s, end_s : float
        Interval ``[start_s, end_s)`` in seconds from the start of the audio.
    """

    label: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Length of the interval in seconds."""
        return self.end_s - self.start_s


def phones_to_frames(phones: Sequence[Phone], fps: float, n_frames: int) -> np.ndarray:
    """Phone index (into :data:`PHONES`) per video frame.

    Frame ``t`` takes the phone whose interval contains the frame centre ``(t + 0.5) / fps``;
    frames not covered by any phone (e.g. past the end) get ``'SIL'`` (index 0).

    Parameters
    ----------
    phones : sequence of Phone
        Segmentation sorted by time (as from :func:`recognize_phones`).
    fps : float
        Video frame rate (> 0).
    n_frames : int
        Number of video frames T, usually ``n_video_frames(len(audio), fps)``.

    Returns
    -------
    np.ndarray
        Shape ``(T,)`` int64, values in ``[0, len(PHONES))``.
    """
    fps = _check_fps(fps)
    T = _check_n_frames(n_frames)
    out = np.zeros(T, dtype=np.int64)
    if T == 0 or not phones:
        return out
    starts = np.array([p.start_s for p in phones], dtype=np.float64)
    ends = np.array([p.end_s for p in phones], dtype=np.float64)
    if np.any(np.diff(starts) < 0):
        raise ValueError("phones must be sorted by start time")
    ids = []
    for p in phones:
        lab = _normalize_phone(p.label)
        if lab is None:
            raise ValueError(f"not an ARPAbet phone: {p.label!r}")
        ids.append(_PHONE_INDEX[lab])
    ids_arr = np.asarray(ids, dtype=np.int64)
    centres = (np.arange(T, dtype=np.float64) + 0.5) / fps
    j = np.searchsorted(starts, centres, side="right") - 1
    ok = (j >= 0) & (centres < ends[np.clip(j, 0, None)])
    out[ok] = ids_arr[j[ok]]
    return out


def visemes_to_frames(phones: Sequence[Phone], fps: float, n_frames: int) -> np.ndarray:
    """Viseme index (into :data:`VISEME_NAMES`) per video frame.

    Same rule as :func:`phones_to_frames` (phone covering the frame centre), mapped through
    :data:`VISEMES`.

    Returns
    -------
    np.ndarray
        Shape ``(T,)`` int64, values in ``[0, len(VISEME_NAMES))``.
    """
    return _PHONE_TO_VISEME_ID[phones_to_frames(phones, fps, n_frames)]


def viseme_onehot(ids: np.ndarray, n_visemes: int = len(VISEME_NAMES)) -> np.ndarray:
    """One-hot encoding of viseme ids.

    Parameters
    ----------
    ids : np.ndarray
        Shape ``(T,)`` integer ids in ``[0, n_visemes)``.
    n_visemes : int
        Number of classes (default ``len(VISEME_NAMES)``).

    Returns
    -------
    np.ndarray
        Shape ``(T, n_visemes)`` float32 with a single 1 per row.
    """
    a = np.asarray(ids)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D integer array, got {a.dtype} {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= n_visemes):
        raise ValueError(f"viseme ids must lie in [0, {n_visemes})")
    out = np.zeros((a.size, n_visemes), dtype=np.float32)
    out[np.arange(a.size), a.astype(np.int64)] = 1.0
    return out


# ----------------------------------------------------------------------------------------------
# pocketsphinx
# ----------------------------------------------------------------------------------------------

_DECODER_LOCK = threading.Lock()

# Forced alignment needs far wider beams than pocketsphinx's defaults: with the defaults the
# word-level pass fails ("Failed to set up sub-word alignment") on most clips over ~7 s of
# espeak speech; these beams aligned 390 s of speech in one pass.
_ALIGN_BEAMS = {"beam": 1e-150, "wbeam": 1e-120, "pbeam": 1e-150, "maxhmmpf": -1}


def _model_dir() -> str:
    import pocketsphinx

    return os.path.join(pocketsphinx.get_model_path(), "en-us")


@functools.lru_cache(maxsize=1)
def _allphone_decoder() -> Any:
    from pocketsphinx import Decoder

    m = _model_dir()
    return Decoder(
        hmm=os.path.join(m, "en-us"),
        allphone=os.path.join(m, "en-us-phone.lm.bin"),
        lw=2.0,
        pip=0.3,
        # narrower than 1e-20 (used before): 17 % less CPU on the 10 shared speech clips and talking
        # videos (183 s), with the same viseme at 25 fps in 99.6 % of frames (the worst clip 97.8 %)
        beam=1e-12,
        pbeam=1e-12,
        samprate=SAMPLE_RATE,
        loglevel="FATAL",
    )


@functools.lru_cache(maxsize=1)
def _align_decoder() -> Any:
    from pocketsphinx import Decoder

    m = _model_dir()
    # bestpath=True makes the second (phone) pass fail with "Failed to stop utterance
    # processing" (phone 0 has impossible duration 1).
    return Decoder(
        hmm=os.path.join(m, "en-us"),
        dict=os.path.join(m, "cmudict-en-us.dict"),
        samprate=SAMPLE_RATE,
        bestpath=False,
        loglevel="FATAL",
        **_ALIGN_BEAMS,
    )


def _to_pcm16(x: np.ndarray) -> bytes:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _decode(decoder: Any, pcm: bytes) -> None:
    # Reset feature extraction first: the cepstral mean (and noise estimate) otherwise carries
    # over from the previous utterance, so results would depend on what was decoded before.
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


_Seg = tuple[str, float, float]  # (label, start_s, end_s) relative to the piece


def _allphone_piece(x: np.ndarray) -> list[_Seg]:
    """All-phone decoding of one piece; [] when silent or pocketsphinx finds nothing."""
    if x.size < N_FFT or is_silent(x):
        return []
    d = _allphone_decoder()
    try:
        _decode(d, _to_pcm16(x))
        segs = d.seg()
    except RuntimeError as e:  # pragma: no cover - pocketsphinx internal failure
        logger.warning("pocketsphinx phone decoding failed on a %.2f s piece: %s", x.size / SAMPLE_RATE, e)
        return []
    if segs is None:
        return []
    fps = PHONE_FRAMES_PER_SECOND
    return [(s.word, s.start_frame / fps, (s.end_frame + 1) / fps) for s in segs]


def _align_piece(x: np.ndarray, words: Sequence[str]) -> list[_Seg]:
    """Forced phone alignment of one piece; raises RuntimeError when it fails."""
    d = _align_decoder()
    pcm = _to_pcm16(x)
    d.set_align_text(" ".join(words))
    _decode(d, pcm)
    if d.hyp() is None:
        raise RuntimeError("word alignment did not reach the end of the text")
    d.set_alignment()
    _decode(d, pcm)
    al = d.get_alignment()
    if al is None:
        raise RuntimeError("no phone alignment produced")
    fps = PHONE_FRAMES_PER_SECOND
    segs = [(p.name, p.start / fps, (p.start + p.duration) / fps) for p in al.phones()]
    if not segs:
        raise RuntimeError("empty phone alignment")
    return segs


def _word_segments(x: np.ndarray, words: Sequence[str]) -> list[tuple[str, int, int]]:
    """Word-level alignment of the whole audio: (word or filler, start_frame, end_frame)."""
    d = _align_decoder()
    d.set_align_text(" ".join(words))
    _decode(d, _to_pcm16(x))
    if d.hyp() is None:
        raise RuntimeError("word alignment did not reach the end of the text")
    return [(s.word, s.start_frame, s.end_frame) for s in d.seg()]


def _is_filler(word: str) -> bool:
    return word[:1] in "<[+" or word.upper() in ("SIL", "(NULL)")


def _text_pieces(
    x: np.ndarray, words: Sequence[str], chunk_frames: int
) -> list[tuple[int, int, list[str]]]:
    """Cut long audio into pieces of <= ~chunk_frames at pauses of a word alignment.

    Returns (start_sample, end_sample, words) triples covering the audio.
    """
    segs = _word_segments(x, words)
    # Candidate cuts: (frame, words before it, is_pause). Pauses cut in their middle.
    cuts: list[tuple[int, int, bool]] = []
    n_words = 0
    seq: list[str] = []
    for word, sf, ef in segs:
        if _is_filler(word):
            cuts.append(((sf + ef + 1) // 2, n_words, True))
        else:
            cuts.append((sf, n_words, False))
            seq.append(re.sub(r"\(\d+\)$", "", word))
            n_words += 1
    n_total = x.size // HOP_LENGTH
    pieces: list[tuple[int, int, list[str]]] = []
    start_f, start_w = 0, 0
    while n_total - start_f > chunk_frames:
        window = [c for c in cuts if start_f + chunk_frames // 3 <= c[0] <= start_f + chunk_frames]
        if not window:  # no boundary in range: take the next one, however far
            window = [c for c in cuts if c[0] > start_f][:1]
            if not window:
                break
        pauses = [c for c in window if c[2]]
        frame, w, _ = (pauses or window)[-1]
        pieces.append((start_f * HOP_LENGTH, frame * HOP_LENGTH, seq[start_w:w]))
        start_f, start_w = frame, w
    pieces.append((start_f * HOP_LENGTH, x.size, seq[start_w:]))
    return pieces


def _quiet_cut(x: np.ndarray, lo: int, hi: int) -> int:
    """Sample index in [lo, hi) at the centre of the quietest 100 ms stretch."""
    hop = HOP_LENGTH
    seg = x[lo:hi]
    n = seg.size // hop
    if n < 1:
        return lo
    frame_energy = np.square(seg[: n * hop], dtype=np.float64).reshape(n, hop).sum(axis=1)
    smooth = np.convolve(frame_energy, np.ones(10), mode="same")
    return lo + int(np.argmin(smooth)) * hop + hop // 2


def _silence_pieces(x: np.ndarray, chunk_s: float) -> list[tuple[int, int]]:
    """Cut audio into pieces of <= chunk_s at the quietest point of their last third."""
    chunk = int(chunk_s * SAMPLE_RATE)
    pieces = []
    start = 0
    while x.size - start > chunk:
        cut = _quiet_cut(x, start + 2 * chunk // 3, start + chunk)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, x.size))
    return pieces


def _tidy(segs: list[_Seg], duration: float) -> list[Phone]:
    """Normalise labels, clip to [0, duration], fill gaps with SIL, merge adjacent SILs."""
    out: list[Phone] = []

    def push(label: str, a: float, b: float) -> None:
        if b - a <= 1e-9:
            return
        if out and out[-1].label == "SIL" and label == "SIL":
            out[-1] = Phone("SIL", out[-1].start_s, b)
        else:
            out.append(Phone(label, a, b))

    t = 0.0
    for label, a, b in sorted(segs, key=lambda s: s[1]):
        lab = _normalize_phone(label)
        if lab is None:
            logger.debug("unknown phone label %r treated as SIL", label)
            lab = "SIL"
        a, b = max(a, t), min(b, duration)
        if b <= a:
            continue
        push("SIL", t, a)
        push(lab, a, b)
        t = b
    push("SIL", t, duration)
    if not out:
        out.append(Phone("SIL", 0.0, duration))
    return out


def _text_words(text: str) -> list[str]:
    """Lower-case dictionary tokens of a transcript (letters, digits, inner apostrophes)."""
    tokens = re.findall(r"[a-z0-9']+", text.lower())
    return [w for w in (t.strip("'") for t in tokens) if w]


SPEECH_LEVEL_DB = -16.0  # dBFS: quieter speech (loud parts' RMS) is brought up to this before phone recognition
MAX_LEVEL_GAIN_DB = 50.0  # ... with at most this much gain (the silence threshold is -50 dBFS)
PEAK_LIMIT = 0.99  # ... and its peaks kept below this (no clipping of loud consonants)


def normalize_level(audio: np.ndarray) -> np.ndarray:
    """Quiet speech brought up to :data:`SPEECH_LEVEL_DB`, the level of a close, well-recorded
    voice: the 95th percentile of its 10 ms window RMS (the loud parts, so pauses do not count) is
    raised to that level, with at most :data:`MAX_LEVEL_GAIN_DB` of gain and peaks below
    :data:`PEAK_LIMIT`. Speech at that level or louder is returned unchanged.

    For quiet input the result does not depend on the level (``normalize_level(k * x)`` equals
    ``normalize_level(x)`` for any k within the gain limit), so quiet recordings are recognised as
    well as loud ones. Silent input (all zeros) is returned unchanged.
    """
    x = np.asarray(audio, np.float32)
    rms = _frame_rms(x, MEL_FRAMES_PER_SECOND, max(1, int(np.ceil(x.size / HOP_LENGTH))))
    ref = float(np.percentile(rms, 95)) if rms.size else 0.0
    peak = float(np.abs(x).max(initial=0.0))
    if ref <= 0.0 or peak <= 0.0:
        return x
    gain = min(10.0 ** (SPEECH_LEVEL_DB / 20.0) / ref, 10.0 ** (MAX_LEVEL_GAIN_DB / 20.0), PEAK_LIMIT / peak)
    if gain <= 1.0:
        return x
    return (x * np.float32(gain)).astype(np.float32)


def recognize_phones(
    audio: np.ndarray, text: str | None = None, *, chunk_s: float = CHUNK_SECONDS, progress: bool = False,
    helpers: int | None = 0,
) -> list[Phone]:
    """Time-aligned phones of speech audio with pocketsphinx (US English).

    With ``text`` the transcript is force-aligned (accurate; words are looked up in the CMU
    dictionary after lower-casing and stripping punctuation). Without it, or when alignment
    fails (a word missing from the dictionary, a transcript that does not match the audio),
    phones are decoded freely with the phone language model (noisier), and a warning is
    logged in the fallback case.

    Audio longer than ``chunk_s`` is processed in pieces: for alignment, a word-level pass
    over the whole clip finds pauses to cut at (each piece is then aligned with its own words);
    for free decoding, pieces are cut at the quietest 100 ms of the last third of each piece.
    Silent pieces (see :func:`is_silent`) are not decoded. Before decoding, quiet speech is
    level-normalised (:func:`normalize_level`), so quiet recordings are recognised as well as
    loud ones; silent audio (:func:`is_silent`) is one ``'SIL'``. :class:`PhoneRecognition`
    does the same while the caller does other work.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(n_samples,)`` float mono at ``SAMPLE_RATE`` Hz.
    text : str, optional
        Transcript of the speech; None or a blank string means unknown.
    chunk_s : float
        Maximum piece length in seconds.
    progress : bool
        Report progress (seconds of audio decoded) on stderr.
    helpers : int or None
        Free decoding only: processes (:func:`facecue.parallel.process_context`) that decode
        pieces beside this one; the phones are the same with any number. 0: none; None:
        :func:`phone_helpers` (one per further core). Helper processes import the caller's
        ``__main__``: a script that asks for helpers needs the ``if __name__ == "__main__":`` guard.

    Returns
    -------
    list of Phone
        Contiguous segmentation of ``[0, len(audio) / SAMPLE_RATE]`` s: the first phone starts
        at 0, each starts where the previous ends, the last ends at the duration; gaps are
        ``'SIL'`` and adjacent silences are merged. Times are multiples of 10 ms except the
        final end and piece offsets.
    """
    with PhoneRecognition(audio, text, chunk_s=chunk_s, progress=progress, helpers=helpers) as job:
        return job.result()


class PhoneRecognition:
    """:func:`recognize_phones`, started at construction and finished by :meth:`result`, so that
    the helper processes decode while the caller does other work (``facecue generate`` finds the
    portrait's landmarks meanwhile). The same arguments and the same phones.

    Free decoding hands the helpers their pieces at once; :meth:`result` decodes this process's
    share (the first pieces) and collects theirs. Forced alignment (``text``) works in
    :meth:`result` only. Use it as a context manager (or call :meth:`close`): leaving before
    :meth:`result` cancels the pieces no helper has started.
    """

    def __init__(self, audio: np.ndarray, text: str | None = None, *, chunk_s: float = CHUNK_SECONDS,
                 progress: bool = False, helpers: int | None = 0) -> None:
        x = _check_audio(audio)
        self._duration = x.size / SAMPLE_RATE
        self._chunk_frames = max(100, int(chunk_s * PHONE_FRAMES_PER_SECOND))
        self._progress = progress
        self._helpers = helpers
        self._silent = is_silent(x)
        if self._silent and text:
            logger.warning("audio is silent; ignoring the transcript and returning silence")
        if text is not None and not text.strip():
            text = None  # an empty transcript field means "no transcript"
        self._text = text
        self._x = x if self._silent else normalize_level(x)
        self._free: _FreeDecoding | None = None
        if not self._silent and text is None:  # free decoding: start the helpers now
            self._free = _FreeDecoding(self._x, self._chunk_frames, helpers)
        self._phones: list[Phone] | None = None

    def result(self) -> list[Phone]:
        """The phones (see :func:`recognize_phones`); waits for the helpers."""
        if self._phones is not None:
            return self._phones
        if self._silent:
            self._phones = [Phone("SIL", 0.0, self._duration)]
            return self._phones
        from .progress import progress_bar

        x, text = self._x, self._text
        bar = progress_bar(enabled=self._progress, total=round(self._duration, 1), desc="phones", unit="s",
                           leave=False)
        segs: list[_Seg] = []
        with _DECODER_LOCK, bar:
            aligned = False
            words = _text_words(text) if text is not None else []
            if text is not None and not words:
                logger.warning("transcript %r has no words; decoding phones without it", text)
            elif words:
                missing = [w for w in words if _align_decoder().lookup_word(w) is None]
                if missing:
                    logger.warning(
                        "words not in the pronunciation dictionary: %s; decoding phones without "
                        "the transcript",
                        ", ".join(sorted(set(missing))),
                    )
                else:
                    aligned = _align_all(x, words, self._chunk_frames, segs, bar)
            if not aligned:
                segs.clear()
                bar.n = 0
                if self._free is None:
                    self._free = _FreeDecoding(x, self._chunk_frames, self._helpers)
                segs.extend(self._free.result(bar))
        self._phones = _tidy(segs, self._duration)
        return self._phones

    def close(self) -> None:
        """Cancel what no helper has started and let the helpers go (idempotent)."""
        if self._free is not None:
            self._free.close()

    def __enter__(self) -> PhoneRecognition:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def phone_helpers(n_pieces: int) -> int:
    """Helper processes :func:`recognize_phones` decodes ``n_pieces`` pieces with, beside its own
    process: one per further usable core (at most one per piece but the first); none for a single
    piece, on a single core, or in a process that is itself a multiprocessing worker (batch jobs
    and render workers already share out the cores)."""
    import multiprocessing

    from .parallel import usable_cores

    if n_pieces < 2 or multiprocessing.parent_process() is not None:
        return 0
    return max(0, min(usable_cores() - 1, n_pieces - 1))


class _FreeDecoding:
    """Free phone decoding of ``x`` in pieces of at most ``chunk_frames`` phone frames (cut at
    quiet points, :func:`_silence_pieces`): ``helpers`` helper processes are given the last
    pieces at construction; :meth:`result` decodes the first ones here and collects the rest, in
    clip time.

    Each piece is decoded from a reset decoder, so the phones are the same with any number of
    helpers; this process's share is the first pieces that end within ``1 / (helpers + 1)`` of the
    audio (at least one). If the helpers cannot start or fail, their pieces are decoded here.
    """

    def __init__(self, x: np.ndarray, chunk_frames: int, helpers: int | None) -> None:
        self._x = x
        self._pieces = _silence_pieces(x, chunk_frames / PHONE_FRAMES_PER_SECOND)
        n = len(self._pieces)
        n_helpers = phone_helpers(n) if helpers is None else max(0, min(int(helpers), n - 1))
        if n_helpers:
            import multiprocessing

            if multiprocessing.current_process().daemon:  # daemonic processes may not have children
                logger.debug("phone decoding in this process only (a daemonic process cannot start helpers)")
                n_helpers = 0
        lengths = np.array([s1 - s0 for s0, s1 in self._pieces], np.float64)
        self._split = n if not n_helpers else int(np.clip(
            np.searchsorted(np.cumsum(lengths), lengths.sum() / (n_helpers + 1), side="right"), 1, n - 1))
        self._remote: dict[int, Any] = {}
        self._pool = None
        if self._split < n:
            from concurrent.futures import ProcessPoolExecutor

            from .parallel import process_context

            try:
                self._pool = ProcessPoolExecutor(n_helpers, mp_context=process_context())
                self._remote = {i: self._pool.submit(_allphone_piece, x[s0:s1])
                                for i, (s0, s1) in enumerate(self._pieces) if i >= self._split}
            except (OSError, RuntimeError) as e:  # pragma: no cover - no processes on this system
                logger.debug("phone decoding in this process only (%s)", e)

    def result(self, bar: Any = None) -> list[_Seg]:
        segs: list[_Seg] = []
        try:
            for i, (s0, s1) in enumerate(self._pieces):
                local = None
                if i in self._remote:
                    try:
                        local = self._remote[i].result()
                    except Exception as e:  # a helper died: decode its piece here
                        logger.debug("phone helper failed on piece %d (%s); decoding it here", i, e)
                segs.extend(_shift(_allphone_piece(self._x[s0:s1]) if local is None else local, s0, s1))
                if bar is not None:
                    bar.update(round((s1 - s0) / SAMPLE_RATE, 1))
        finally:
            self.close(wait=True)
        return segs

    def close(self, wait: bool = False) -> None:
        """Let the helpers go; ``wait=False`` (left before :meth:`result`, e.g. on an error in the
        caller) also stops the pieces they are decoding, which no one will read: otherwise the
        interpreter would wait for them at exit (seconds, on a bad portrait)."""
        if self._pool is None:
            return
        if not wait:
            # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14
            # (terminate_workers); its process table has been `_processes` since 3.3
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._pool = None


def _align_all(x: np.ndarray, words: list[str], chunk_frames: int, segs: list[_Seg], bar: Any = None) -> bool:
    """Forced alignment of the whole clip into ``segs``; False (with a warning) on failure."""
    try:
        if x.size // HOP_LENGTH <= chunk_frames:
            pieces = [(0, x.size, words)]
        else:
            pieces = _text_pieces(x, words, chunk_frames)
    except RuntimeError as e:
        logger.warning("forced alignment failed (%s); decoding phones without the transcript", e)
        return False
    for s0, s1, piece_words in pieces:
        off = s0 / SAMPLE_RATE
        piece = x[s0:s1]
        if not piece_words:
            continue  # a pause: filled with SIL
        try:
            local = _align_piece(piece, piece_words)
        except RuntimeError as e:
            logger.warning(
                "forced alignment failed for %.2f-%.2f s (%s); decoding that stretch without "
                "the transcript",
                off,
                s1 / SAMPLE_RATE,
                e,
            )
            local = _allphone_piece(piece)
        segs.extend(_shift(local, s0, s1))
        if bar is not None:
            bar.update(round((s1 - s0) / SAMPLE_RATE, 1))
    return True


def _shift(local: list[_Seg], s0: int, s1: int) -> list[_Seg]:
    """Move a piece's segments to clip time; stretch the last one to the piece end.

    pocketsphinx emits ~2 frames fewer than the piece has hops (its 25.6 ms window), which
    would leave a 10-30 ms gap, filled with a spurious SIL, at every piece boundary.
    """
    off, end = s0 / SAMPLE_RATE, s1 / SAMPLE_RATE
    out = [(lab, a + off, b + off) for lab, a, b in local]
    if out and end - out[-1][2] < 0.05:
        lab, a, _ = out[-1]
        out[-1] = (lab, a, end)
    return out
