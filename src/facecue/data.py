"""Training data: preprocessing talking-face videos into a cue cache, and windows of it.

Cache layout (``facecue preprocess ... --out CACHE``)::

    CACHE/clips/<clip_id>.npz   one clip: FaceCues fields at 25 fps, audio features of the same
                                frames, labels (kind "facecue.clip", versioned)
    CACHE/index.csv             one row per finished clip (clip_id, file, emotion, ...)
    CACHE/failures.csv          clips of the last run that failed, with the reason

Every clip file is written atomically and validated when read, so a rerun skips finished clips
and redoes missing or corrupt ones.

Per-frame training targets derived from a clip (see :class:`ClipData`):

* ``expression`` ``(T, 468, 3)``: normalized mesh landmarks minus the speaker's identity shape
  (the iris belongs to gaze), canonical units;
* ``pose`` ``(T, 6)``: :func:`pose_features`, head pose relative to the clip's start;
* ``gaze`` ``(T, 2)``: both eyes' gaze (yaw, pitch) degrees, weighted by eye aperture;
* ``mel`` ``(T, MEL_SUBFRAMES, N_MELS)`` log-mel and ``loudness`` ``(T,)`` RMS of the same frames.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .constants import DEFAULT_FPS, EMOTIONS, MEAD_LEVELS, MEL_SUBFRAMES, N_MELS, N_MESH_POINTS, SAMPLE_RATE
from .cues import FaceCues, angles_to_rotation, combined_gaze, rotation_to_angles
from .errors import CheckpointError, FacecueError, InputError, OutputError, check_file_header
from .inputs import check_intensity, emotion_id
from .workers import run_in_workers  # noqa: F401  (re-exported)

log = logging.getLogger("facecue.data")

CLIP_FILE_KIND = "facecue.clip"
CLIP_FORMAT_VERSION = 1
CLIPS_DIR = "clips"
INDEX_FILE = "index.csv"
FAILURES_FILE = "failures.csv"
INDEX_COLUMNS = ("clip_id", "file", "emotion", "intensity", "speaker", "n_frames", "fps", "valid_fraction", "source", "audio_source")

ANCHOR_FRAMES = 5  # frames at a clip's start averaged into the pose anchor (0.2 s at 25 fps)
SILENCE_LOG_MEL = -10.0  # log10 of the log-mel floor: the feature of digital silence (facecue.audio)
MIN_VALID_FRACTION = 0.5  # a clip whose face is found in fewer frames fails preprocessing
MAX_AUDIO_MISMATCH_S = 1.0  # audio and video lengths may differ by this much (or 20%)

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


# --- emotions and intensities ----------------------------------------------------------------


def parse_intensity(value: str | float) -> float:
    """Intensity in 0..1 from a number, or from a MEAD level (``level_2``, ``level2``) as n / 3."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"level_?(\d+)", text)
    if match:
        level = int(match.group(1))
        if not 1 <= level <= MEAD_LEVELS:
            raise InputError(None, f"MEAD level {level} is out of 1..{MEAD_LEVELS}")
        return level / MEAD_LEVELS
    try:
        x = float(text)
    except ValueError:
        raise InputError(None, f"intensity {value!r} is not a number in 0..1 (or a MEAD level like level_2)") from None
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise InputError(None, f"intensity {value!r} is out of range 0..1 (write MEAD levels as level_1..level_{MEAD_LEVELS})")
    return check_intensity(x)


# --- clip sources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSource:
    """One clip to preprocess.

    video : the talking video
    audio : separate audio file used when the video has no audio track (or None)
    intensity : 0..1 (MEAD level n -> n / 3)
    """

    clip_id: str
    video: Path
    audio: Path | None
    emotion: str
    intensity: float
    speaker: str


def find_mead_clips(root: str | Path) -> tuple[list[ClipSource], list[tuple[str, str]]]:
    """Front-view clips of a MEAD tree: ``<actor>/video/front/<emotion>/level_<n>/<id>.mp4`` with
    audio at ``<actor>/audio/<emotion>/level_<n>/<id>.m4a`` (any supported audio extension).

    Returns
    -------
    sources, problems : problems are (clip, reason) rows for folders that cannot be used.
    """
    from .io import SUPPORTED_AUDIO, SUPPORTED_VIDEO

    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "MEAD root folder not found")
    sources, problems = [], []
    for video in sorted(root.glob("*/video/front/*/level_*/*")):
        if video.suffix.lower() not in SUPPORTED_VIDEO or video.name.startswith("."):
            continue
        level_dir, emotion_dir, actor_dir = video.parent, video.parent.parent, video.parents[4]
        actor, emotion, level = actor_dir.name, emotion_dir.name.lower(), level_dir.name
        clip_id = _safe_id(f"{actor}_{emotion}_{level.replace('_', '')}_{video.stem}")
        try:
            emotion_id(emotion)
            intensity = parse_intensity(level)
        except InputError as exc:
            problems.append((clip_id, str(exc)))
            continue
        audio = None
        audio_dir = actor_dir / "audio" / emotion_dir.name / level
        for suffix in (".m4a",) + tuple(s for s in SUPPORTED_AUDIO if s != ".m4a"):
            candidate = audio_dir / f"{video.stem}{suffix}"
            if candidate.is_file():
                audio = candidate
                break
        sources.append(ClipSource(clip_id, video, audio, emotion, intensity, actor))
    if not sources and not problems:
        raise InputError(root, "no MEAD front-view videos found (expected <actor>/video/front/<emotion>/level_<n>/<id>.mp4)")
    return sources, problems


def read_labels(videos_dir: str | Path, labels_csv: str | Path) -> tuple[list[ClipSource], list[tuple[str, str]]]:
    """Clips listed in a CSV with columns ``path, emotion, intensity, speaker`` (``path`` relative to
    ``videos_dir`` or absolute; an optional ``audio`` column names a separate audio file; without
    it, an audio file with the video's stem next to it is used when the video has no audio)."""
    from .io import SUPPORTED_AUDIO

    videos_dir, labels_csv = Path(videos_dir), Path(labels_csv)
    if not videos_dir.is_dir():
        raise InputError(videos_dir, "videos folder not found")
    if not labels_csv.is_file():
        raise InputError(labels_csv, "labels file not found")
    try:
        with labels_csv.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {(h or "").strip().lower(): h for h in (reader.fieldnames or [])}
            missing = [c for c in ("path", "emotion", "intensity", "speaker") if c not in header]
            if missing:
                raise InputError(labels_csv, f"missing column(s) {', '.join(missing)} (need path, emotion, intensity, speaker)")
            rows = [{k: (row.get(h) or "").strip() for k, h in header.items()} for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(labels_csv, f"not a readable CSV ({exc})") from None
    sources, problems, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        rel = row["path"]
        clip_id = _safe_id(str(Path(rel).with_suffix("")).replace(os.sep, "__")) if rel else f"row{line}"
        try:
            if not rel:
                raise InputError(None, f"{labels_csv.name} line {line}: empty path")
            video = Path(rel) if Path(rel).is_absolute() else videos_dir / rel
            if not video.is_file():
                raise InputError(video, "video not found")
            emotion = EMOTIONS[emotion_id(row["emotion"])]
            intensity = parse_intensity(row["intensity"])
            speaker = row["speaker"]
            if not speaker:
                raise InputError(None, "empty speaker")
            if clip_id in seen:
                raise InputError(video, "listed twice")
            audio = None
            if row.get("audio"):
                audio = Path(row["audio"]) if Path(row["audio"]).is_absolute() else videos_dir / row["audio"]
            else:
                for suffix in SUPPORTED_AUDIO:
                    if video.with_suffix(suffix).is_file():
                        audio = video.with_suffix(suffix)
                        break
        except InputError as exc:
            problems.append((clip_id, str(exc)))
            continue
        seen.add(clip_id)
        sources.append(ClipSource(clip_id, video, audio, emotion, intensity, speaker))
    return sources, problems


_LOOSE_MEAD_NAME = re.compile(r"(?P<actor>[MW]\d{3})_(?P<emotion>[a-z]+)_level_?(?P<level>\d)_(?P<id>\d{3})$")


def arrange_mead_tree(
    videos: Iterable[str | Path],
    root: str | Path,
    audio: dict[str, np.ndarray] | None = None,
) -> list[Path]:
    """Lay out loose MEAD clips named ``<actor>_<emotion>_level<n>_<id>.mp4`` (the naming of
    DreamTalk / EAT crops) as a MEAD tree under ``root`` (videos are symlinked).

    ``audio`` maps a clip's stem to (N,) float32 samples at 16 kHz, written with
    :func:`facecue.io.write_wav` as ``<actor>/audio/<emotion>/level_<n>/<id>.wav``. Returns the
    tree's video paths.
    """
    from .io import write_wav

    root = Path(root)
    out = []
    for video in videos:
        video = Path(video)
        match = _LOOSE_MEAD_NAME.match(video.stem)
        if not match:
            raise InputError(video, "not named <actor>_<emotion>_level<n>_<id> (e.g. M030_angry_level3_001)")
        g = match.groupdict()
        target = root / g["actor"] / "video" / "front" / g["emotion"] / f"level_{g['level']}" / f"{g['id']}{video.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(video.resolve())
        if audio is not None and video.stem in audio:
            wav = root / g["actor"] / "audio" / g["emotion"] / f"level_{g['level']}" / f"{g['id']}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            write_wav(wav, audio[video.stem])
        out.append(target)
    return out


def _safe_id(text: str) -> str:
    return _SAFE_ID.sub("-", text).strip("-.") or "clip"


# --- clip files --------------------------------------------------------------------------------

_CUE_FIELDS = ("normalized", "scale", "rotation", "translation", "gaze", "aperture", "valid", "identity")


def save_clip(path: str | Path, cues: FaceCues, mel: np.ndarray, loudness: np.ndarray, *, clip_id: str,
              emotion: str, intensity: float, speaker: str, source: str = "", audio_source: str = "") -> Path:
    """Write one clip's cues, audio features and labels atomically (see the module docstring)."""
    from .io import atomic_path

    t = cues.n_frames
    if mel.shape != (t, MEL_SUBFRAMES, N_MELS) or loudness.shape != (t,):
        raise ValueError(f"audio features of shape {mel.shape}/{loudness.shape} do not match {t} frames")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            kind=CLIP_FILE_KIND,
            version=CLIP_FORMAT_VERSION,
            clip_id=clip_id,
            emotion=emotion,
            intensity=np.float64(intensity),
            speaker=speaker,
            source=source,
            audio_source=audio_source,
            fps=np.float64(cues.fps),
            image_size=np.array(cues.image_size, dtype=np.int64),
            mel=mel.astype(np.float32),
            loudness=loudness.astype(np.float32),
            **{name: getattr(cues, name) for name in _CUE_FIELDS},
        )
    return path


@dataclass
class ClipFile:
    """The content of one clip file (see :func:`load_clip`)."""

    clip_id: str
    cues: FaceCues
    mel: np.ndarray  # (T, MEL_SUBFRAMES, N_MELS) float32 log10 mel power
    loudness: np.ndarray  # (T,) float32 RMS
    emotion: str
    intensity: float
    speaker: str
    source: str
    audio_source: str

    def index_row(self, file: str) -> dict:
        return {
            "clip_id": self.clip_id, "file": file, "emotion": self.emotion, "intensity": f"{self.intensity:.4f}",
            "speaker": self.speaker, "n_frames": self.cues.n_frames, "fps": f"{self.cues.fps:g}",
            "valid_fraction": f"{self.cues.valid.mean():.3f}", "source": self.source, "audio_source": self.audio_source,
        }


def load_clip(path: str | Path) -> ClipFile:
    """Read and validate a clip file; :class:`CheckpointError` when missing, corrupt or inconsistent."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "clip file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            check_file_header(path, data, CLIP_FILE_KIND, CLIP_FORMAT_VERSION, "clip file")
            arrays = {k: data[k] for k in _CUE_FIELDS}
            mel, loudness = data["mel"], data["loudness"]
            meta = {k: str(data[k]) for k in ("clip_id", "emotion", "speaker", "source", "audio_source")}
            intensity = float(data["intensity"])
            fps = float(data["fps"])
            size = tuple(int(v) for v in data["image_size"])
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, zlib.error...
        raise CheckpointError(path, f"corrupt or incomplete clip file ({exc.__class__.__name__})") from None
    try:
        cues = FaceCues(**arrays, fps=fps, image_size=size, meta={"source": meta["source"]})
    except InputError as exc:
        raise CheckpointError(path, f"inconsistent clip file ({exc})") from None
    t = cues.n_frames
    if t < 1 or mel.shape != (t, MEL_SUBFRAMES, N_MELS) or loudness.shape != (t,):
        raise CheckpointError(path, f"clip file has {t} frames but audio features of shape {mel.shape}")
    if not all(np.isfinite(a).all() for a in (cues.normalized, cues.scale, cues.rotation, cues.translation, mel, loudness)):
        raise CheckpointError(path, "clip file holds NaN or infinite values")
    if meta["emotion"] not in EMOTIONS:
        raise CheckpointError(path, f"clip file has unknown emotion {meta['emotion']!r}")
    return ClipFile(meta["clip_id"], cues, mel, loudness, meta["emotion"], intensity, meta["speaker"], meta["source"], meta["audio_source"])


# --- preprocessing -----------------------------------------------------------------------------


@dataclass
class PreprocessReport:
    done: list[str] = field(default_factory=list)  # clip ids processed by this run
    skipped: list[str] = field(default_factory=list)  # already in the cache and valid
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    index: Path | None = None
    failures: Path | None = None

    def summary(self) -> str:
        return (f"{len(self.done)} clip(s) processed, {len(self.skipped)} already done, {len(self.failed)} failed; "
                f"index {self.index}" + (f", failures listed in {self.failures}" if self.failed else ""))


def preprocess_clip(source: ClipSource, cache_dir: str | Path, fps: float = DEFAULT_FPS) -> dict:
    """Extract cues and audio features of one clip and write ``cache_dir/clips/<id>.npz``.

    Returns the clip's index row. Raises :class:`FacecueError` with the reason on failure.
    """
    from . import io
    from .audio import loudness_envelope, mel_frames
    from .cues import extract_cues

    info = io.probe_video(source.video)
    if info.has_audio:
        audio, audio_source = io.read_audio(source.video), f"{source.video} (audio track)"
    elif source.audio is not None:
        audio, audio_source = io.read_audio(source.audio), str(source.audio)
    else:
        raise InputError(source.video, "the video has no audio track and no audio file was found for it")
    if audio.size == 0:
        raise InputError(source.video, "the audio is empty")
    cues = extract_cues(source.video, fps=fps)
    video_s, audio_s = cues.n_frames / fps, audio.size / SAMPLE_RATE
    if abs(video_s - audio_s) > max(MAX_AUDIO_MISMATCH_S, 0.2 * video_s):
        raise InputError(source.video, f"audio ({audio_s:.2f} s, {audio_source}) and video ({video_s:.2f} s) lengths differ")
    if cues.valid.mean() < MIN_VALID_FRACTION:
        raise InputError(source.video, f"face found in only {cues.valid.mean():.0%} of the frames")
    mel = mel_frames(audio, fps, cues.n_frames)
    loudness = loudness_envelope(audio, fps, cues.n_frames)
    rel = f"{CLIPS_DIR}/{source.clip_id}.npz"
    path = save_clip(Path(cache_dir) / rel, cues, mel, loudness, clip_id=source.clip_id, emotion=source.emotion,
                     intensity=source.intensity, speaker=source.speaker, source=str(source.video), audio_source=audio_source)
    return load_clip(path).index_row(rel)


def _process_or_skip(source: ClipSource, cache_dir: str, fps: float) -> dict:
    """Worker body: skip a valid finished clip, otherwise (re)process it; never raises."""
    rel = f"{CLIPS_DIR}/{source.clip_id}.npz"
    path = Path(cache_dir) / rel
    if path.exists():
        try:
            return {"clip_id": source.clip_id, "status": "skipped", "row": load_clip(path).index_row(rel)}
        except CheckpointError as exc:
            log.info("redoing %s: %s", source.clip_id, exc)
    try:
        return {"clip_id": source.clip_id, "status": "done", "row": preprocess_clip(source, cache_dir, fps)}
    except FacecueError as exc:
        return {"clip_id": source.clip_id, "status": "failed", "reason": str(exc)}
    except Exception as exc:  # a decoder or tracker crash on one clip must not end the run
        return {"clip_id": source.clip_id, "status": "failed", "reason": f"{exc.__class__.__name__}: {exc}"}


def preprocess(
    sources: Sequence[ClipSource],
    cache_dir: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    fps: float = DEFAULT_FPS,
    problems: Iterable[tuple[str, str]] = (),
) -> PreprocessReport:
    """Preprocess clips into ``cache_dir`` with ``jobs`` worker processes (spawn; MediaPipe per
    worker). Resumable; failures (and ``problems`` found while listing sources) go to
    ``failures.csv``; the index merges this run's clips with valid rows of an earlier index."""
    cache = Path(cache_dir)
    try:
        (cache / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(cache, f"cannot create the cache folder ({exc})") from None
    report = PreprocessReport(failed=list(problems))
    rows: dict[str, dict] = {}
    bar = None
    if progress:
        from .progress import progress_bar

        bar = progress_bar(total=len(sources), desc="preprocess", unit="clip", dynamic_ncols=True)

    def record(result: dict) -> None:
        status = result["status"]
        if status == "failed":
            report.failed.append((result["clip_id"], result["reason"]))
        else:
            (report.done if status == "done" else report.skipped).append(result["clip_id"])
            rows[result["clip_id"]] = result["row"]
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=len(report.failed))

    try:
        if jobs <= 1:
            for source in sources:
                record(_process_or_skip(source, str(cache), fps))
        else:
            run_in_workers(functools.partial(_process_or_skip, cache_dir=str(cache), fps=fps), sources, jobs, record,
                           lambda source, reason: {"clip_id": source.clip_id, "status": "failed", "reason": reason})
    finally:
        if bar is not None:
            bar.close()
        report.index = _write_index(cache, rows)
        report.failures = _write_failures(cache, report.failed)
    return report


def _write_index(cache: Path, rows: dict[str, dict]) -> Path:
    from .io import atomic_path

    path = cache / INDEX_FILE
    merged = {}
    if path.is_file():
        for row in _read_csv(path):
            if row.get("clip_id") and (cache / row.get("file", "")).is_file():
                merged[row["clip_id"]] = row
    merged.update(rows)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for clip_id in sorted(merged):
            writer.writerow(merged[clip_id])
    return path


def _write_failures(cache: Path, failed: list[tuple[str, str]]) -> Path:
    from .io import atomic_path

    path = cache / FAILURES_FILE
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip", "reason"])
        writer.writerows(sorted(failed))
    return path


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# --- pose features ---------------------------------------------------------------------------

POSE_FEATURES = ("yaw", "pitch", "roll", "tx", "ty", "log_scale")  # columns of pose_features


@dataclass(frozen=True)
class PoseAnchor:
    """The reference pose that :func:`pose_features` are relative to (a clip's start, a portrait).

    angles (3,) degrees, translation (3,) pixels, scale pixels per canonical unit.
    """

    angles: np.ndarray
    translation: np.ndarray
    scale: float

    @classmethod
    def of(cls, scale: np.ndarray, rotation: np.ndarray, translation: np.ndarray, n_frames: int = ANCHOR_FRAMES) -> PoseAnchor:
        """Mean pose of the first ``n_frames`` frames (one frame for a still portrait)."""
        n = max(1, min(n_frames, len(scale)))
        return cls(
            angles=rotation_to_angles(np.asarray(rotation[:n], dtype=np.float64)).mean(axis=0),
            translation=np.asarray(translation[:n], dtype=np.float64).mean(axis=0),
            scale=float(np.exp(np.log(np.asarray(scale[:n], dtype=np.float64)).mean())),
        )


def pose_features(scale: np.ndarray, rotation: np.ndarray, translation: np.ndarray, anchor: PoseAnchor) -> np.ndarray:
    """Head pose relative to ``anchor``: ``(T, 6)`` float32 = (yaw, pitch, roll) change in degrees,
    (x, y) translation change over the anchor's scale (canonical units, i.e. eye-corner distances,
    so it does not depend on the image size), log of the scale ratio."""
    angles = rotation_to_angles(np.asarray(rotation, dtype=np.float64)) - anchor.angles
    shift = (np.asarray(translation, dtype=np.float64)[:, :2] - anchor.translation[:2]) / anchor.scale
    log_scale = np.log(np.asarray(scale, dtype=np.float64) / anchor.scale)
    return np.concatenate([angles, shift, log_scale[:, None]], axis=1).astype(np.float32)


def pose_from_features(features: np.ndarray, anchor: PoseAnchor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pose_features`: ``(T, 6)`` -> scale (T,), rotation (T, 3, 3), translation (T, 3)."""
    f = np.asarray(features, dtype=np.float64)
    rotation = angles_to_rotation(anchor.angles + f[:, :3])
    translation = np.tile(anchor.translation, (len(f), 1))
    translation[:, :2] += f[:, 3:5] * anchor.scale
    scale = anchor.scale * np.exp(f[:, 5])
    return scale.astype(np.float32), rotation.astype(np.float32), translation.astype(np.float32)


# --- in-memory clips and windows -------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Which cache to read and how to cut it into training windows."""

    cache: str = "cache/mead"
    window: int = 64  # frames per training window (2.56 s at 25 fps)
    held_out_speakers: tuple[str, ...] = ("M003", "M030", "W009", "W015")  # EAT's test speakers
    identity: str = "neutral"  # neutral | speaker | clip | stored: whose shape expression is measured from
    min_valid_fraction: float = 0.8  # clips with fewer face-found frames are left out of training

    def __post_init__(self) -> None:
        from .train import ConfigError

        if self.window < 2:
            raise ConfigError(None, "data.window must be >= 2")
        if self.identity not in ("neutral", "speaker", "clip", "stored"):
            raise ConfigError(None, f"data.identity must be neutral, speaker, clip or stored, got {self.identity!r}")


@dataclass
class ClipData:
    """One clip's training arrays (see the module docstring); expression and mel kept in float16."""

    clip_id: str
    speaker: str
    emotion: int
    intensity: float
    expression: np.ndarray  # (T, 468, 3) float16
    pose: np.ndarray  # (T, 6) float32
    gaze: np.ndarray  # (T, 2) float32 degrees
    mel: np.ndarray  # (T, MEL_SUBFRAMES, N_MELS) float16
    loudness: np.ndarray  # (T,) float32
    valid: np.ndarray  # (T,) bool
    identity: np.ndarray  # (478, 3) float32 canonical units

    @property
    def n_frames(self) -> int:
        return len(self.pose)


def load_cache(cache_dir: str | Path, identity: str = "neutral", min_valid_fraction: float = 0.0) -> list[ClipData]:
    """All valid clips listed in ``cache_dir/index.csv`` as :class:`ClipData`.

    ``identity`` picks the shape expression is measured from: ``neutral`` = median of the
    speaker's neutral clips (falls back to all the speaker's clips when there is none),
    ``speaker`` = median over all the speaker's clips, ``clip`` = the clip's own median,
    ``stored`` = the identity saved in the clip file (``FaceCues.identity``: the clip's median for
    extracted videos, the rest shape for synthesized data). Corrupt files are left out with a warning.
    """
    cache = Path(cache_dir)
    index = cache / INDEX_FILE
    if not index.is_file():
        raise InputError(cache, f"no {INDEX_FILE} in the cache; run 'facecue preprocess' first")
    files: list[ClipFile] = []
    for row in _read_csv(index):
        try:
            clip = load_clip(cache / row["file"])
        except (CheckpointError, KeyError) as exc:
            log.warning("leaving out %s: %s", row.get("clip_id"), exc)
            continue
        if clip.cues.valid.mean() < min_valid_fraction:
            log.info("leaving out %s: face found in %.0f%% of frames", clip.clip_id, 100 * clip.cues.valid.mean())
            continue
        files.append(clip)
    if not files:
        raise InputError(cache, "the cache holds no usable clips")
    return clips_from_files(files, identity)


def clips_from_files(files: Sequence[ClipFile], identity: str = "neutral") -> list[ClipData]:
    """Derive training arrays from loaded clip files (identity shapes per ``identity`` mode)."""
    by_speaker: dict[str, list[ClipFile]] = {}
    for f in files:
        by_speaker.setdefault(f.speaker, []).append(f)
    shapes: dict[str, np.ndarray] = {}
    for speaker, group in by_speaker.items():
        if identity in ("clip", "stored"):
            break  # per-clip shapes: no speaker medians needed
        chosen = [f for f in group if f.emotion == "neutral"] if identity == "neutral" else []
        chosen = chosen or group
        shapes[speaker] = np.median(np.concatenate([f.cues.normalized[f.cues.valid] for f in chosen]), axis=0)
    out = []
    for f in files:
        c = f.cues
        if identity == "stored":  # the rest shape saved with the cues (teacher data: facecue.phonetic)
            ident = c.identity.astype(np.float32)
        elif identity == "clip":
            ident = np.median(c.normalized[c.valid], axis=0)
        else:
            ident = shapes[f.speaker]
        anchor = PoseAnchor.of(c.scale, c.rotation, c.translation)
        out.append(ClipData(
            clip_id=f.clip_id,
            speaker=f.speaker,
            emotion=EMOTIONS.index(f.emotion),
            intensity=float(f.intensity),
            expression=(c.normalized[:, :N_MESH_POINTS] - ident[None, :N_MESH_POINTS]).astype(np.float16),
            pose=pose_features(c.scale, c.rotation, c.translation, anchor),
            gaze=combined_gaze(c.gaze, c.aperture),
            mel=f.mel.astype(np.float16),
            loudness=f.loudness.astype(np.float32),
            valid=c.valid.astype(bool),
            identity=ident.astype(np.float32),
        ))
    return out


def split_by_speaker(clips: Sequence[ClipData], held_out: Iterable[str]) -> tuple[list[ClipData], list[ClipData]]:
    """(train, held-out) by speaker: no speaker is on both sides."""
    held = set(held_out)
    return [c for c in clips if c.speaker not in held], [c for c in clips if c.speaker in held]


class CueWindows(torch.utils.data.Dataset):
    """Every window of ``window`` consecutive frames of every clip (a uniform draw over indices is
    a random crop, clips weighted by length); deterministic: item ``i`` is always the same window.

    Each item is a dict of tensors:

    * ``mel`` ``(W + 2M, MEL_SUBFRAMES, N_MELS)``, ``loudness`` ``(W + 2M,)``: audio features of the
      window's frames with ``M = audio_margin`` frames of context each side (silence past the
      clip's ends, as at inference);
    * ``expression`` ``(W, 468, 3)``, ``pose`` ``(W, 6)``, ``gaze`` ``(W, 2)``, ``valid`` ``(W,)``;
    * ``prev_expression`` ``(468, 3)``, ``prev_pose`` ``(6,)``, ``prev_gaze`` ``(2,)``: the frame
      before the window (the first frame itself for a window at the clip's start, like a portrait);
    * ``emotion``, ``speaker``, ``clip``, ``start`` (int64), ``intensity`` (float32),
      ``identity`` ``(478, 3)``.

    Clips shorter than the window are left out.
    """

    def __init__(self, clips: Sequence[ClipData], window: int, audio_margin: int = 0, speakers: Sequence[str] | None = None):
        self.window, self.margin = int(window), int(audio_margin)
        self.clips = [c for c in clips if c.n_frames >= self.window]
        if len(self.clips) < len(clips):
            log.info("%d clip(s) shorter than the %d-frame window left out", len(clips) - len(self.clips), self.window)
        self.speakers = list(speakers) if speakers is not None else sorted({c.speaker for c in clips})
        counts = np.array([c.n_frames - self.window + 1 for c in self.clips], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(clip number, start frame) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        clip = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return clip, int(index - self.offsets[clip])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k, start = self.locate(int(index))
        c = self.clips[k]
        stop = start + self.window
        prev = max(start - 1, 0)
        lo, hi = start - self.margin, stop + self.margin
        mel = np.full((hi - lo, MEL_SUBFRAMES, N_MELS), SILENCE_LOG_MEL, dtype=np.float32)
        loud = np.zeros(hi - lo, dtype=np.float32)
        a, b = max(lo, 0), min(hi, c.n_frames)
        mel[a - lo : b - lo] = c.mel[a:b]
        loud[a - lo : b - lo] = c.loudness[a:b]
        speaker = self.speakers.index(c.speaker) if c.speaker in self.speakers else -1
        return {
            "mel": torch.from_numpy(mel),
            "loudness": torch.from_numpy(loud),
            "expression": torch.from_numpy(c.expression[start:stop].astype(np.float32)),
            "pose": torch.from_numpy(c.pose[start:stop].copy()),
            "gaze": torch.from_numpy(c.gaze[start:stop].copy()),
            "valid": torch.from_numpy(c.valid[start:stop].copy()),
            "prev_expression": torch.from_numpy(c.expression[prev].astype(np.float32)),
            "prev_pose": torch.from_numpy(c.pose[prev].copy()),
            "prev_gaze": torch.from_numpy(c.gaze[prev].copy()),
            "emotion": torch.tensor(c.emotion, dtype=torch.int64),
            "intensity": torch.tensor(c.intensity, dtype=torch.float32),
            "speaker": torch.tensor(speaker, dtype=torch.int64),
            "clip": torch.tensor(k, dtype=torch.int64),
            "start": torch.tensor(start, dtype=torch.int64),
            "identity": torch.from_numpy(c.identity),
        }


# --- synthetic data (tests, examples) --------------------------------------------------------


def synthetic_audio(n_seconds: float, rng: np.random.Generator, syllable_rate: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like audio: voiced bursts at ``syllable_rate`` per second with pauses.

    Returns
    -------
    audio (N,) float32 at SAMPLE_RATE, envelope (N,) float32 in 0..1 (the bursts' amplitude).
    """
    n = int(round(n_seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    env = np.zeros(n)
    onset = rng.uniform(0.1, 0.4)
    while onset < n_seconds:
        width = rng.uniform(0.06, 0.12)
        env += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((t - onset) / width) ** 2)
        onset += rng.exponential(1.0 / syllable_rate) + 0.12 + (rng.uniform(0.3, 0.8) if rng.random() < 0.12 else 0)
    env = np.clip(env, 0, 1)
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    noise = rng.standard_normal(n) * 0.3
    audio = 0.25 * env * (voiced + noise)
    return audio.astype(np.float32), env.astype(np.float32)


def _smooth_field(points: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A smooth random displacement (N, 3) over face points, max norm ``scale``."""
    centres = points[rng.choice(len(points), 6, replace=False)]
    field = np.zeros_like(points)
    for c in centres:
        w = np.exp(-np.sum((points - c) ** 2, axis=1) / 0.15)
        field += w[:, None] * rng.standard_normal(3) * np.array([1, 1, 0.3])
    return scale * field / (np.abs(field).max() + 1e-9)


def synthesize_cache(
    cache_dir: str | Path,
    *,
    speakers: Sequence[str] = ("S01", "S02", "S03"),
    emotions: Sequence[str] = EMOTIONS,
    clips_per_emotion: int = 1,
    seconds: float = 4.0,
    fps: float = DEFAULT_FPS,
    seed: int = 0,
) -> Path:
    """Write a cache of synthetic clips whose cues are learnable from their audio and labels.

    The face is the shipped template deformed per speaker; the mouth opens with the audio's
    burst envelope (via :func:`facecue.motion.open_mouth`), each emotion adds its own static
    deformation (scaled by intensity), a gaze direction bias and head-motion amplitude, and eyes
    blink every 2-5 s. Returns the index path.
    """
    from .audio import loudness_envelope, mel_frames
    from .cues import default_template, eye_aperture, gaze_from_normalized, place_iris
    from .motion import close_eyes, open_mouth

    rng = np.random.default_rng(seed)
    template = default_template().points.astype(np.float64)
    emotion_fields = {e: _smooth_field(template, np.random.default_rng(1000 + i), 0.05) for i, e in enumerate(EMOTIONS)}
    emotion_fields["neutral"] = np.zeros_like(template)
    gaze_bias = {e: np.array([6 * np.cos(i), -4 + 5 * np.sin(i)]) for i, e in enumerate(EMOTIONS)}
    cache = Path(cache_dir)
    rows = {}
    n_frames = int(round(seconds * fps))
    t = np.arange(n_frames) / fps
    for si, speaker in enumerate(speakers):
        identity = template + _smooth_field(template, np.random.default_rng(5000 + si), 0.03)
        for emotion in emotions:
            for k in range(clips_per_emotion):
                clip_id = f"{speaker}_{emotion}_{k:03d}"
                intensity = 1 / 3 if emotion == "neutral" else float(rng.choice([1, 2, 3])) / 3
                audio, env = synthetic_audio(seconds, rng)
                env_frames = np.array([env[int(i * SAMPLE_RATE / fps): int((i + 1) * SAMPLE_RATE / fps)].mean() for i in range(n_frames)])
                mouth = 0.12 * env_frames
                blink = np.zeros(n_frames)
                at = rng.uniform(0.5, 2.0)
                while at < seconds:
                    blink = np.maximum(blink, np.exp(-(((t - at) / 0.05) ** 2)))
                    at += rng.uniform(2.0, 5.0)
                shape = identity + intensity * emotion_fields[emotion]
                norm = open_mouth(np.broadcast_to(shape, (n_frames, *shape.shape)), mouth)
                norm = close_eyes(norm, blink)
                gaze = np.zeros((n_frames, 2))
                hold = 0
                for i in range(n_frames):
                    if hold <= 0:
                        current = gaze_bias[emotion] + rng.normal(0, 4, 2)
                        hold = int(rng.integers(10, 40))
                    gaze[i], hold = current, hold - 1
                norm = place_iris(norm, gaze)
                amp = 2.0 + 3.0 * (EMOTIONS.index(emotion) % 3)
                phase = rng.uniform(0, 2 * np.pi, 3)
                angles = np.stack([amp * np.sin(2 * np.pi * t / 3.0 + phase[0]), 0.6 * amp * np.sin(2 * np.pi * t / 2.3 + phase[1]),
                                   0.4 * amp * np.sin(2 * np.pi * t / 4.1 + phase[2])], axis=1)
                angles[:, 1] += 1.5 * mouth / 0.12  # a nod with the syllables
                scale = np.full(n_frames, 100.0) * (1 + 0.01 * np.sin(2 * np.pi * t / 5.0))
                translation = np.tile([128.0, 140.0, 0.0], (n_frames, 1))
                translation[:, 0] += 3 * np.sin(2 * np.pi * t / 3.7)
                cues = FaceCues(
                    normalized=norm.astype(np.float32), scale=scale.astype(np.float32),
                    rotation=angles_to_rotation(angles).astype(np.float32), translation=translation.astype(np.float32),
                    gaze=gaze_from_normalized(norm), aperture=eye_aperture(norm), valid=np.ones(n_frames, bool),
                    identity=identity.astype(np.float32), fps=float(fps), image_size=(256, 256),
                )
                rel = f"{CLIPS_DIR}/{clip_id}.npz"
                save_clip(cache / rel, cues, mel_frames(audio, fps, n_frames), loudness_envelope(audio, fps, n_frames),
                          clip_id=clip_id, emotion=emotion, intensity=intensity, speaker=speaker, source="synthetic")
                rows[clip_id] = load_clip(cache / rel).index_row(rel)
    return _write_index(cache, rows)


__all__ = [
    "ClipData", "ClipSource", "CueWindows", "DataConfig", "PoseAnchor", "POSE_FEATURES", "emotion_id", "find_mead_clips",
    "load_cache", "load_clip", "parse_intensity", "pose_features", "pose_from_features", "preprocess", "preprocess_clip",
    "read_labels", "save_clip", "split_by_speaker", "synthesize_cache", "synthetic_audio",
]
