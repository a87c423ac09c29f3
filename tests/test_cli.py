"""The `facecue` command line, end to end, through `facecue.cli.main` and the installed script."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from facecue import FaceCues
from facecue.cli import asset_path, main
from facecue.io import probe_video, read_image, write_video


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "cues" in out and "demo" in out and "examples:" in out


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = run_cli([], capsys)
    assert code == 2 and "usage: facecue" in out


def test_cues_on_image_with_png_preview(tmp_path, capsys):
    out_npz, preview = tmp_path / "p.npz", tmp_path / "p.png"
    code, out, err = run_cli(["cues", asset_path("portrait.png"), "-o", out_npz, "--preview", preview, "-q"], capsys)
    assert code == 0, err
    cues = FaceCues.load(out_npz)
    assert cues.n_frames == 1 and cues.image_size == (512, 512)
    frame = read_image(preview)
    assert frame.shape == (512, 512, 3)
    assert np.abs(frame.astype(int) - read_image(asset_path("portrait.png")).astype(int)).mean() > 0.5, "overlay drawn"
    assert "1 frame(s)" in out


def test_cues_on_video_with_preview_keeps_audio_and_frames(tmp_path, capsys):
    portrait = read_image(asset_path("portrait.png"))
    frames = [np.roll(portrait, 3 * k, axis=1) for k in range(20)]
    tone = (0.2 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32)
    video = write_video(tmp_path / "talk.mp4", frames, fps=25, audio=tone[: int(16000 * 20 / 25)])
    out_npz, preview = tmp_path / "talk.npz", tmp_path / "preview.mp4"
    code, _, err = run_cli(["cues", video, "-o", out_npz, "--preview", preview, "-q"], capsys)
    assert code == 0, err
    cues = FaceCues.load(out_npz)
    assert cues.n_frames == 20 and cues.fps == 25
    info = probe_video(preview)
    assert info.n_frames == 20 and info.has_audio and (info.width, info.height) == (512, 512)
    # the face moved 3 px per frame: the pose translation follows
    np.testing.assert_allclose(np.diff(cues.translation[:, 0]), 3.0, atol=0.6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["cues", "missing.mp4", "-o", "x.npz"], "missing.mp4: file not found"),
        (["cues", "{portrait}", "-o", "x.txt"], "unsupported output type '.txt'"),
        (["cues", "{portrait}", "-o", "no/such/folder/x.npz"], "does not exist"),
        (["cues", "{blank}", "-o", "x.npz"], "no face found"),
        (["cues", "{empty}", "-o", "x.npz"], "file is empty"),
        (["cues", "{portrait}", "-o", "x.npz", "--fps", "-3"], None),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    blank = tmp_path / "blank.png"
    from facecue.io import write_image

    write_image(blank, np.full((200, 200, 3), 128, np.uint8))
    (tmp_path / "empty.mp4").write_bytes(b"")
    args = [a.format(portrait=asset_path("portrait.png"), blank=blank, empty=tmp_path / "empty.mp4") for a in args]
    if message is None:  # argparse's own validation
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        return
    code, out, err = run_cli(args, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("facecue: error:") and message in lines[0], err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*")), "nothing half-written"


def test_demo_writes_video_cues_and_preview(tmp_path, capsys):
    code, out, err = run_cli(["demo", "-o", tmp_path, "-q"], capsys)
    assert code == 0, err
    from facecue.io import audio_duration

    speech = audio_duration(asset_path("speech.wav"))
    for name in ("demo.mp4", "demo_landmarks.mp4"):
        info = probe_video(tmp_path / name)
        assert abs(info.n_frames - round(speech * 25)) <= 1 and info.has_audio
    cues = FaceCues.load(tmp_path / "demo_cues.npz")
    assert cues.pose_angles[:, 0].std() > 0.5, "the head moves"
    assert "real-time factor" in out


@pytest.mark.skipif(shutil.which("facecue") is None and not (sys.prefix and (__import__("pathlib").Path(sys.prefix) / "bin" / "facecue").exists()),
                    reason="console script not installed (pip install -e .)")
def test_console_script_runs():
    from pathlib import Path

    exe = Path(sys.prefix) / "bin" / "facecue"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("facecue ")
