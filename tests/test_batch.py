"""`facecue batch`: a CSV of generate jobs, run in worker processes, rerun-safe, failures reported."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from facecue.batch import read_jobs, run_batch
from facecue.cli import asset_path, main
from facecue.errors import InputError
from facecue.io import probe_video, read_audio, write_wav

SECONDS = 1.6


def make_inputs(folder: Path, seconds: float) -> Path:
    """``folder`` with in/me.png (the bundled portrait) and in/hi.wav (``seconds`` of the bundled speech)."""
    (folder / "in").mkdir()
    (folder / "in" / "me.png").write_bytes(asset_path("portrait.png").read_bytes())
    write_wav(folder / "in" / "hi.wav", read_audio(asset_path("speech.wav"))[: int(seconds * 16000)])
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder with a portrait and a short speech clip, next to which the CSVs are written."""
    return make_inputs(tmp_path_factory.mktemp("batch"), SECONDS)


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_failures(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_batch_runs_good_rows_reports_bad_ones_and_reruns_safely(inputs, capsys):
    jobs = write_csv(inputs / "jobs.csv", [
        dict(portrait="in/me.png", audio="in/hi.wav", emotion="happy", output="out/happy.mp4", intensity="0.8",
             seed="", size="128", full="false"),
        dict(portrait="in/missing.png", audio="in/hi.wav", emotion="sad", output="out/missing.mp4", intensity="",
             seed="", size="128", full="false"),
        dict(portrait="in/me.png", audio="in/hi.wav", emotion="neutral@0,sad@0.8", output="out/sad.mp4", intensity="",
             seed="3", size="128", full="false"),
    ])
    assert main(["batch", str(jobs), "-j", "2", "-q"]) == 2
    out, err = capsys.readouterr()
    assert "2 done, 0 skipped, 1 failed" in out
    assert "row 3" in err and "missing.png" in err
    # what generate tells about a row is passed on: neutral and sad on a broadly smiling portrait, not happy
    assert "row 4 (out/sad.mp4): the portrait smiles broadly" in out and "row 2 " not in out
    for name in ("happy", "sad"):
        info = probe_video(inputs / "out" / f"{name}.mp4")
        assert (info.width, info.height) == (128, 128) and info.has_audio
        assert abs(info.n_frames - SECONDS * 25) <= 1
    assert not (inputs / "out" / "missing.mp4").exists()
    failures = read_failures(inputs / "jobs.failures.csv")
    assert [f["row"] for f in failures] == ["3"]
    assert failures[0]["output"] == "out/missing.mp4" and "portrait file not found" in failures[0]["reason"]

    mtimes = {p.name: p.stat().st_mtime_ns for p in (inputs / "out").glob("*.mp4")}
    report = run_batch(jobs, jobs=2, progress=False)
    assert report.done == [] and report.skipped == [2, 4] and [f[0] for f in report.failed] == [3]
    assert report.exit_code == 2
    assert {p.name: p.stat().st_mtime_ns for p in (inputs / "out").glob("*.mp4")} == mtimes, "nothing re-rendered"
    assert [f["row"] for f in read_failures(inputs / "jobs.failures.csv")] == ["3"]


def test_every_row_is_checked_before_anything_runs(inputs):
    (inputs / "out").mkdir(exist_ok=True)
    (inputs / "out" / "exists.mp4").write_bytes(b"finished earlier")
    good = dict(portrait="in/me.png", audio="in/hi.wav", emotion="happy", output="out/a.mp4", pose_scale="", gaze="")
    rows = [
        good,
        {**good, "emotion": "bored", "output": "out/b.mp4"},
        {**good, "output": "out/a.mp4"},
        {**good, "audio": "in/none.wav", "output": "out/c.mp4"},
        {**good, "pose_scale": "lots", "output": "out/d.mp4"},
        {**good, "gaze": "50,0", "output": "out/e.mp4"},
        {**good, "output": "out/f.avi"},
        {**good, "emotion": "", "output": "out/g.mp4"},
        {**good, "output": "out/exists.mp4"},
        {**good, "output": "new/folder/h.mp4", "pose_scale": "0.5", "gaze": "camera"},
    ]
    path = write_csv(inputs / "check.csv", rows)
    todo, skipped, failed = read_jobs(path)
    reasons = {row: reason for row, _, reason in failed}
    assert [job.row for job in todo] == [2, 11] and skipped == [10]
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9]
    assert "bored" in reasons[3]
    assert reasons[4] == "same output as row 2"
    assert "none.wav: audio file not found" in reasons[5]
    assert "pose_scale: 'lots' is not a float" in reasons[6]
    assert "gaze" in reasons[7] and ".avi" in reasons[8] and "empty emotion" in reasons[9]
    last = todo[1]
    assert last.output == inputs / "new" / "folder" / "h.mp4" and last.output.parent.is_dir(), "output folders are made"
    assert last.portrait == inputs / "in" / "me.png", "relative to the CSV's folder"
    assert last.config.pose_scale == 0.5 and last.config.gaze == "camera" and last.config.emotion == "happy"
    todo, skipped, _ = read_jobs(path, force=True)
    assert 10 in [job.row for job in todo] and skipped == []


@pytest.mark.parametrize("columns, message", [
    (["portrait", "audio", "output"], "missing column"),
    (["portrait", "audio", "emotion", "output", "colour"], "unknown column"),
    (["portrait", "audio", "emotion", "output", "Seed", "seed"], "given twice"),
])
def test_csv_level_problems_stop_the_batch(inputs, columns, message, capsys):
    path = inputs / "bad_header.csv"
    path.write_text(",".join(columns) + "\n" + ",".join(["x"] * len(columns)) + "\n")
    with pytest.raises(InputError, match=message):
        run_batch(path, progress=False)
    assert main(["batch", str(path), "-q"]) == 2
    assert message in capsys.readouterr().err


def test_all_skipped_is_success(inputs, capsys):
    (inputs / "out").mkdir(exist_ok=True)
    (inputs / "out" / "done.mp4").write_bytes(np.zeros(10, np.uint8).tobytes())
    path = write_csv(inputs / "done.csv", [dict(portrait="in/me.png", audio="in/hi.wav", emotion="sad",
                                                output="out/done.mp4")])
    assert main(["batch", str(path), "-q"]) == 0
    assert "0 done, 1 skipped, 0 failed" in capsys.readouterr().out
    assert read_failures(inputs / "done.failures.csv") == []


def test_a_row_failing_while_running_is_reported(inputs):
    from facecue.io import write_image

    write_image(inputs / "in" / "wall.png", np.full((200, 200, 3), 140, np.uint8))
    path = write_csv(inputs / "wall.csv", [dict(portrait="in/wall.png", audio="in/hi.wav", emotion="happy",
                                                output="out/wall.mp4")])
    report = run_batch(path, jobs=1, progress=False)
    assert report.done == [] and report.exit_code == 2
    assert report.failed[0][:2] == (2, "out/wall.mp4") and "no face found" in report.failed[0][2]
    assert not (inputs / "out" / "wall.mp4").exists()
    assert read_failures(inputs / "wall.failures.csv")[0]["row"] == "2"


def test_batch_progress_in_a_log_is_a_few_plain_lines(inputs, stderr_log):
    """A row skipped, one failing when read, two failing while running, stderr a log file: the
    bar's first and final lines only (with the failure count), no redraws, no line per row."""
    from facecue.io import write_image

    write_image(inputs / "in" / "blank.png", np.full((200, 200, 3), 140, np.uint8))
    (inputs / "out").mkdir(exist_ok=True)
    (inputs / "out" / "logged.mp4").write_bytes(b"finished earlier")
    path = write_csv(inputs / "logged.csv", [
        dict(portrait="in/me.png", audio="in/hi.wav", emotion="sad", output="out/logged.mp4"),
        dict(portrait="in/nobody.png", audio="in/hi.wav", emotion="sad", output="out/logged_nobody.mp4"),
        dict(portrait="in/blank.png", audio="in/hi.wav", emotion="happy", output="out/logged_blank1.mp4"),
        dict(portrait="in/blank.png", audio="in/hi.wav", emotion="happy", output="out/logged_blank2.mp4"),
    ])
    report = run_batch(path, jobs=1, progress=True)
    assert report.skipped == [2] and [f[0] for f in report.failed] == [3, 4, 5]
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("batch")
    assert "\r" not in text and "\x1b" not in text, text
    assert len(lines) == 2 and "2/4" in lines[0] and "4/4" in lines[1] and "failed=3" in lines[1], text


def test_check_validates_every_row_and_runs_and_writes_nothing(inputs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # --check needs no Ray: it never starts one
    path = write_csv(inputs / "checkonly.csv", [
        dict(portrait="in/me.png", audio="in/hi.wav", emotion="happy", output="fresh/dir/ok.mp4"),
        dict(portrait="in/me.png", audio="in/hi.wav", emotion="bored", output="fresh/dir/bad.mp4"),
        dict(portrait="in/nobody.png", audio="in/hi.wav", emotion="sad", output="fresh/dir/gone.mp4"),
    ])
    for extra in ([], ["--ray"]):
        assert main(["batch", str(path), "--check", "-q", *extra]) == 2
        out, err = capsys.readouterr()
        assert "1 to run, 0 skipped, 2 with problems; nothing run (--check)" in out
        lines = err.strip().splitlines()
        assert len(lines) == 2 and lines[0].startswith("facecue: row 3 (fresh/dir/bad.mp4):") and "bored" in lines[0]
        assert lines[1].startswith("facecue: row 4") and "nobody.png: portrait file not found" in lines[1]
        assert not (inputs / "fresh").exists() and not (inputs / "checkonly.failures.csv").exists(), "wrote nothing"
    good = write_csv(inputs / "checkgood.csv", [dict(portrait="in/me.png", audio="in/hi.wav", emotion="happy",
                                                     output="fresh/ok.mp4")])
    report = run_batch(good, check=True, progress=False)
    assert report.exit_code == 0 and report.to_run == [2] and report.done == [] and not (inputs / "fresh").exists()


def test_ray_without_the_extra_is_one_clear_line(inputs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import ray raises ImportError
    path = write_csv(inputs / "noray.csv", [dict(portrait="in/me.png", audio="in/hi.wav", emotion="happy",
                                                 output="out/noray.mp4")])
    assert main(["batch", str(path), "--ray", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == "facecue: error: --ray needs Ray, an optional extra: pip install 'facecue[ray]'\n"
    assert not (inputs / "out" / "noray.mp4").exists() and not (inputs / "noray.failures.csv").exists()
    assert main(["batch", str(path), "--ship-inputs", "-q"]) == 2
    assert "--ship-inputs goes with --ray" in capsys.readouterr().err


def test_temp_files_left_by_a_killed_writer_are_removed_and_only_those(tmp_path):
    from facecue.io import remove_temp_siblings

    names = [".a.tmp-0123abcd.mp4", ".a.tmp-89abcdef.mp4", ".ab.tmp-0123abcd.mp4", ".a.tmp-0123abcd.json",
             "a.mp4", ".a.tmp-xyz.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_temp_siblings(tmp_path / "a.mp4")
    assert [p.name for p in removed] == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
