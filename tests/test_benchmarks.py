"""`benchmarks/run.py`: the table it prints and the report it writes (never timing assertions)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "run.py"


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the markdown table, keyed by their first cell (the stage title)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| stage |"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    # an earlier report: its kept measurements (GPU runs) and its old-vs-new speed section survive
    out.write_text("# old\n\n| stale | row |\n\n<!-- kept measurements: start -->\nGPU: 287 frames/s\n"
                   "<!-- kept measurements: end -->\n\n<!-- bench_speed: start -->\nold 0.48, new 0.19\n"
                   "<!-- bench_speed: end -->\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--stages", "audio,phonetic", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, out


def test_quick_run_prints_one_row_per_stage_with_numbers(quick_run):
    proc, _ = quick_run
    rows = table_rows(proc.stdout)
    assert set(rows) == {"audio features (log-mel + loudness)", "stage 1: phonetic cue model"}, proc.stdout
    for title, cells in rows.items():
        context = f"{title}:\n{proc.stdout}"
        _, _, media_s, frames, compute_s, fps, rtf, rss, _ = cells
        assert float(media_s) == 5, context
        assert int(frames) == 125, context  # 5 s at 25 fps
        # printed with 3 significant digits: the derived columns agree with the printed time to about 1%,
        # however fast the stage (a rounded "0.01 s" next to an unrounded frames/s made this flaky)
        assert float(compute_s) > 0 and float(fps) > 0 and float(rtf) > 0, context
        assert float(rtf) == pytest.approx(float(compute_s) / 5, rel=0.015), context
        assert float(fps) == pytest.approx(125 / float(compute_s), rel=0.015), context
        assert 50 < float(rss) < 20_000, f"peak RSS {rss} MB is no process's size; {context}"
    assert "[1/2]" in proc.stderr and "[2/2]" in proc.stderr, f"a progress line per measurement:\n{proc.stderr}"


def test_report_has_machine_table_and_how_to_reproduce(quick_run):
    proc, out = quick_run
    text = out.read_text()
    assert re.search(r"CPU: .+, \d+ cores", text) and "torch " in text and "mediapipe " in text
    assert table_rows(text) == table_rows(proc.stdout)
    assert "python benchmarks/run.py --quick --stages audio,phonetic" in text
    assert "Other processes may have been running" in text
    assert "GPU: 287 frames/s" in text and "old 0.48, new 0.19" in text  # kept from the earlier report
    assert "| stale | row |" not in text


def test_unknown_stage_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--stages", "audio,warp"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "warp" in proc.stderr


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package), registered as
    ``facecue_bench_<name>`` (dataclasses look their module up)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"facecue_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("compute_s", [0.006, 0.0149, 0.4, 3.3333, 250.4])
def test_printed_columns_agree_with_each_other(compute_s):
    """frames/s and the real-time factor are derived from the unrounded time: the printed time
    must be precise enough for a reader (and the test above) to check them, however fast the stage."""
    run = load_benchmark("run")
    table = run.format_table([run.Measurement("audio", "CPU", 5.0, frames=125, compute_s=compute_s)])
    (cells,) = table_rows(table).values()
    _, _, _, _, printed_s, fps, rtf, _, _ = cells
    assert float(fps) == pytest.approx(125 / float(printed_s), rel=0.015), table
    assert float(rtf) == pytest.approx(float(printed_s) / 5, rel=0.015), table


def test_mouth_interior_fractions_known_answer():
    """`benchmarks/mouth_readback.py`'s teeth / dark shares inside the inner-lip polygon: a mouth
    half white (teeth) and half near-black (cavity) on skin-coloured cheeks reads 0.5 / 0.5; a
    lip-coloured mouth reads neither; a polygon of a few pixels reads NaN."""
    import numpy as np

    readback = load_benchmark("mouth_readback")
    frame = np.full((100, 120, 3), (200, 160, 140), np.uint8)  # skin: HSV value 200
    points = np.zeros((478, 2))
    points[list(readback.CHEEK_POINTS)] = [[10, 10], [110, 10]]
    loop = np.array([0, 1, 2, 3])
    points[loop] = [[40, 40], [80, 40], [80, 60], [40, 60]]
    frame[40:61, 40:60] = (245, 245, 240)  # teeth: bright, unsaturated
    frame[40:61, 60:81] = (20, 8, 10)  # cavity: value 20 < 0.4 x 200
    teeth, dark = readback.interior_fractions(frame, points, loop)
    assert abs(teeth - 0.5) < 0.03 and abs(dark - 0.5) < 0.03
    frame[40:61, 40:81] = (170, 60, 70)  # lip colour: saturated, mid value
    assert readback.interior_fractions(frame, points, loop) == (0.0, 0.0)
    points[loop] = [[40, 40], [41, 40], [41, 41], [40, 41]]
    assert all(np.isnan(readback.interior_fractions(frame, points, loop)))


def test_crop_fill_streak_measure_known_answer():
    """`benchmarks/crop_fill.py`'s streak measure reads colour changing along the portrait's edge
    (stripes repeated outward) and not colour changing away from it (a smooth fade)."""
    import numpy as np

    along_edge_gradient = load_benchmark("crop_fill").along_edge_gradient

    inside = np.zeros((80, 80), np.uint8)
    inside[:, 40:] = 255  # the portrait is the right half; its edge is vertical
    streaks = np.full((80, 80, 3), 128, np.uint8)
    streaks[::4, :40] = 200  # stripes of 2 rows outside: each row's edge pixel repeated leftward
    streaks[1::4, :40] = 200
    fade = np.repeat(np.linspace(60, 200, 80).astype(np.uint8)[None, :, None], 80, axis=0).repeat(3, axis=2)
    near, whole = along_edge_gradient(streaks, inside, 80)
    assert near > 100 and whole > 100  # Sobel across 72-level stripes: 4 x 72 on every row
    near, whole = along_edge_gradient(fade, inside, 80)
    assert near < 1 and whole < 1


def test_mouth_readback_teeth_colour_known_answer():
    """`benchmarks/mouth_readback.py`'s teeth colour: the colour / luma ratio of the teeth-like pixels
    inside the inner-lip polygon, whatever their lightness; None where too few show."""
    import numpy as np

    readback = load_benchmark("mouth_readback")
    frame = np.full((100, 120, 3), (200, 160, 140), np.uint8)
    points = np.zeros((478, 2))
    points[list(readback.CHEEK_POINTS)] = [[10, 10], [110, 10]]
    loop = np.array([0, 1, 2, 3])
    points[loop] = [[40, 40], [80, 40], [80, 60], [40, 60]]
    frame[40:61, 40:60] = (240, 200, 150)  # teeth in warm light (saturation 0.375)
    frame[40:61, 60:81] = (20, 8, 10)  # cavity
    luma = 0.299 * 240 + 0.587 * 200 + 0.114 * 150
    np.testing.assert_allclose(readback.teeth_chroma(frame, points, loop), np.array([240, 200, 150]) / luma, atol=1e-3)
    frame[40:61, 40:60] = (120, 100, 75)  # the same colour in shadow: too dark to count as teeth
    assert readback.teeth_chroma(frame, points, loop) is None
    frame[40:42, 40:45] = (240, 200, 150)  # 10 px of teeth: enough
    np.testing.assert_allclose(readback.teeth_chroma(frame, points, loop), np.array([240, 200, 150]) / luma, atol=1e-3)


def test_mouth_readback_renders_a_mead_clip_with_its_own_emotion_and_level():
    """`benchmarks/mouth_readback.py` drives the renderer with a MEAD clip's emotion at level / 3;
    videos whose names carry no emotion (the talking videos) get none."""
    from facecue.constants import EMOTIONS

    readback = load_benchmark("mouth_readback")
    weights = readback.clip_expression("W009_disgusted_level3_001", 4)
    assert weights.shape == (4, len(EMOTIONS))
    assert weights[:, EMOTIONS.index("disgusted")].tolist() == [1.0] * 4 and weights.sum() == 4.0
    neutral = readback.clip_expression("M030_neutral_level1_001", 2)
    assert neutral[0, EMOTIONS.index("neutral")] == pytest.approx(1 / 3) and neutral.sum() == pytest.approx(2 / 3)
    assert readback.clip_expression("styletalk_Obama_clip1", 3) is None


def test_mouth_from_bar_known_answers_and_references_never_the_judged_clip(tmp_path):
    """`benchmarks/mouth_from.py`: the bar's ratios (p90 within 20 %, p50 within 30 %) and its
    cases: every judged clip has a reference that is another clip or the other half, never itself."""
    import numpy as np

    bench = load_benchmark("mouth_from")
    real = np.linspace(0.0, 0.2, 101)  # p50 0.1, p90 0.18
    assert bench.ratio_row(real, real * 1.15)["met"] and not bench.ratio_row(real, real * 1.25)["met"]
    row = bench.ratio_row(real, real * 0.75)
    assert abs(row["ratio_p50"] - 0.75) < 1e-9 and not row["met"], "p50 at 0.75 is within 30 %, p90 not within 20 %"
    for name in ("styletalk_KristiNoem", "styletalk_Obama_clip1", "styletalk_Obama_clip3"):
        (tmp_path / "talking").mkdir(exist_ok=True)
        (tmp_path / "talking" / f"{name}.mp4").write_bytes(b"x")
    cases = bench.cases(tmp_path)
    assert [c["name"] for c in cases] == ["styletalk_KristiNoem", "styletalk_Obama_clip1", "styletalk_Obama_clip3",
                                         "M030_sad_level3_001"]
    for case in cases:
        assert case["name"] in bench.HALF_CLIPS or Path(bench.OTHER_CLIP[case["name"]]).stem != case["name"]


def test_an_older_tree_imported_under_another_name_reads_its_own_assets(tmp_path, monkeypatch):
    """``bench_render_ab`` imports an older ``src/facecue`` as ``facecue_old``. Its renderer, cue
    priors and face template must come from that tree's assets, not the installed package's
    (before, the old renderer was handed the new expression-detail maps and an asset change never
    showed in the comparison). Here the copy's detail maps are zeroed."""
    import importlib
    import shutil
    import sys

    import numpy as np

    import facecue
    from facecue.assets import asset_path
    from facecue.render import expression_detail_maps

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps")
    source = Path(facecue.__file__).resolve().parent
    shutil.copytree(source, tmp_path / "facecue_copy", ignore=shutil.ignore_patterns("__pycache__", "stage1.pt"))
    detail = tmp_path / "facecue_copy" / "assets" / "expression_detail.npz"
    with np.load(detail) as data:
        fields = dict(data)
    fields["log_ratio_q"] = np.zeros_like(fields["log_ratio_q"])
    np.savez_compressed(detail, **fields)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        copy = importlib.import_module("facecue_copy.render")
        copy_assets = importlib.import_module("facecue_copy.assets")
        assert copy_assets.asset_path("cue_priors.npz").parent == tmp_path / "facecue_copy" / "assets"
        assert asset_path("cue_priors.npz").parent == source / "assets"
        assert not copy.expression_detail_maps().any()
        assert expression_detail_maps().any()
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == "facecue_copy"]:
            del sys.modules[name]


def test_recogniser_region_masks_cover_their_own_landmarks_and_no_other_region():
    """`benchmarks/recogniser_regions.py`'s occlusion regions on facecue's template face: each mask
    is full at the centre of each of its own point groups (a brow, an eye, a cheek...) and empty
    there for every other region; the widening is a fraction of the eye-corner distance (the same
    face twice as large gives a mask twice as wide)."""
    import numpy as np

    from facecue.cues import default_template

    regions = load_benchmark("recogniser_regions")
    template = default_template().points[:, :2].astype(np.float64)
    template = (template - template.min(axis=0)) / (template - template.min(axis=0)).max()
    widths = {}
    for size in (400, 800):
        points = template * size * 0.8 + size * 0.1
        masks = regions.region_masks(points, (size, size))
        assert set(masks) == set(regions.REGIONS)
        for name, groups in regions.REGIONS.items():
            for group in groups:
                x, y = np.round(points[list(group)].mean(axis=0)).astype(int)
                for other, mask in masks.items():
                    assert mask.shape == (size, size) and mask.dtype == np.float32
                    assert (mask[y, x] > 0.99) if other == name else (mask[y, x] < 0.01), (name, other)
        mouth = points[[i for group in regions.REGIONS["mouth+chin"] for i in group], 0]
        widths[size] = int((masks["mouth+chin"] > 0.5).any(axis=0).sum()) - (mouth.max() - mouth.min())  # the margins
    assert widths[400] > 4 and widths[800] == pytest.approx(2 * widths[400], rel=0.2)


@pytest.mark.parametrize("part", ["second", "third"])
def test_unseen_set_files_are_checked_by_their_git_blob_ids(tmp_path, part):
    """`benchmarks/expressiveness.py`'s unseen sets are fixed file by file: the blob id is git's
    (``git hash-object``: a known answer), and a folder holding another file under a listed name
    (or missing one) is refused, naming it, before anything is rendered."""
    expressiveness = load_benchmark("expressiveness")
    unseen = next(u for u in expressiveness.UNSEEN_SETS if u.part == part)
    sample = tmp_path / "hello.txt"
    sample.write_bytes(b"hello\n")
    assert expressiveness.git_blob_id(sample) == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert len({blob for _, _, blob in unseen.files}) == len(unseen.files)
    with pytest.raises(SystemExit, match=f"not found; --{part}-set takes"):
        expressiveness.unseen_set_part(tmp_path, unseen, tmp_path / "empty", tmp_path, "phonetic")
    first = tmp_path / unseen.files[0][0]
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_bytes(b"not the portrait")
    with pytest.raises(SystemExit, match=f"not the file of {unseen.source}") as refused:
        expressiveness.unseen_set_part(tmp_path, unseen, tmp_path, tmp_path, "phonetic")
    assert str(first) in str(refused.value)
    assert expressiveness.PART_KEYS[part] == unseen.results_key == f"emotion_{part}"


def test_same_person_clips_are_checked_and_counted(tmp_path):
    """`benchmarks/same_person.py`: the person's clips are fixed by git blob id (a missing or other
    file is refused, naming it, before anything is rendered; the neutral clip, whose first frame is
    the portrait, comes first), and the page counts each side's readings of the emotions acted,
    neutral apart, and the clips within the mouth bar."""
    same_person = load_benchmark("same_person")
    person = same_person.PERSON
    assert person.files[0][1] == "neutral" and len({blob for _, _, blob in person.files}) == len(person.files)
    with pytest.raises(SystemExit, match="not found; --clips takes"):
        same_person.checked_clips(tmp_path)
    for name, _, _ in person.files:
        (tmp_path / name).write_bytes(b"not the clip")
    with pytest.raises(SystemExit, match=f"not the file of {person.source}") as refused:
        same_person.checked_clips(tmp_path)
    assert str(tmp_path / person.files[0][0]) in str(refused.value)

    def row(emotion, real, fake, bar, matched_bar=None):
        out = {"clip": f"{emotion}.flv", "emotion": emotion, "real_read": real, "real_p_target": 0.4,
               "facecue_read": fake, "facecue_p_target": 0.5, "real_p50": 0.05, "real_p90": 0.2, "facecue_p50": 0.05,
               "facecue_p90": 0.2, "ratio_p50": 1.0, "ratio_p90": 1.0, "mouth_bar": bar}
        if matched_bar is not None:
            out.update(mouth_from_ratio_p50=1.0, mouth_from_ratio_p90=1.0, mouth_from_bar=matched_bar)
        return out

    rows = [row("neutral", "neutral", "happy", True), row("angry", "neutral", "angry", False, True),
            row("fear", "fear", "fear", True, False), row("sad", "sad", "neutral", False, True)]
    text = same_person.report(rows, "phonetic")
    assert "real clips **2/3**, facecue **2/3**" in text
    assert "neutral read as neutral: real 1/1, facecue 0/1" in text
    assert "2 of 4 clips by default; with the neutral clip as `--mouth-from` reference, 2 of the 3 emotion clips " \
           "(1 by default)" in text
    assert text.count("| neutral.flv |") == 1 and "| 1.00 | 1.00 | - | - |" in text
    assert same_person.within_mouth_bar(0.71, 1.19) and not same_person.within_mouth_bar(0.69, 1.0)
    assert not same_person.within_mouth_bar(1.0, 1.21)


def test_wrinkles_trade_table_counts_each_strength(tmp_path):
    """`benchmarks/wrinkles.py`: per strength, the videos read as the emotion asked for (all and
    per emotion), mean p(target) and the lowest eyes-open share; the page has a row per strength
    and each video's reading at every strength, hits in bold."""
    wrinkles = load_benchmark("wrinkles")
    emotions = wrinkles.EMOTIONS_JUDGED
    assert "neutral" not in emotions and len(emotions) == 6

    def rows(read_as_asked: set[str], p: float, eyes: float) -> list[dict]:
        return [{"portrait": "face", "emotion": e, "recognised": e if e in read_as_asked else "neutral",
                 "p_target": p, "eyes_open_fraction": eyes} for e in emotions]

    results = {"date": "2026-12-06", "strengths": ["1", "0"],
               "rows": {"1": rows({"angry", "sad", "happy"}, 0.5, 0.98), "0": rows({"happy"}, 0.2, 1.0)}}
    results["summary"] = {k: wrinkles.summary(v) for k, v in results["rows"].items()}
    full, none = results["summary"]["1"], results["summary"]["0"]
    assert (full["hits"], full["videos"], none["hits"]) == (3, 6, 1)
    assert full["by_emotion"]["sad"] == 1 and none["by_emotion"]["sad"] == 0 and none["by_emotion"]["happy"] == 1
    assert full["mean_p_target"] == pytest.approx(0.5) and full["eyes_open_lowest"] == pytest.approx(0.98)
    wrinkles.write_report(tmp_path, results, [], 60.0)
    text = (tmp_path / "wrinkles.md").read_text()
    assert "| 1 | 3/6 = 50% (95 % interval" in text and "| 0 | 1/6 = 17% (95 % interval" in text
    assert "| face | sad | **sad** 0.50 | neutral 0.20 |" in text
    assert "further unseen sets" not in text
    unseen_rows = [{**r, "set": name} for name in ("second", "third") for r in rows({"happy", "sad"}, 0.4, 0.99)]
    results["unseen"] = {"sets": ["second", "third"], "rows": {"1": unseen_rows}}
    table = "\n".join(wrinkles.unseen_lines(results))
    # each set 2 of 6; all portraits: 3 of 6 in the report set + 4 of 12 = 7 of 18
    assert "| 1 | 2/6 | 2/6 | **7/18 = 39%** (95 % interval" in table
    (row,) = [line for line in table.splitlines() if line.startswith("| 1 |")]
    assert row.endswith("| 1 | 0 | 0 | 3 | 3 | 0 | 98.0% |"), row  # angry .. surprised, lowest eyes-open share

def test_recogniser_hits_count_emotions_and_neutral_apart():
    """`benchmarks/expressiveness.py`'s top-1 counts: the 6 emotions' hits over their videos and
    neutral read as neutral over the neutral videos; contempt (no recogniser class) is left out."""
    expressiveness = load_benchmark("expressiveness")
    rows = [{"emotion": "neutral", "recognised": "neutral"}, {"emotion": "neutral", "recognised": "happy"},
            {"emotion": "angry", "recognised": "angry"}, {"emotion": "fear", "recognised": "surprised"},
            {"emotion": "sad", "recognised": "sad"}, {"emotion": "contempt", "recognised": "neutral"}]
    assert expressiveness.recogniser_hits(rows) == (2, 3, 1, 2)


def test_by_emotion_table_counts_each_source_and_adds_the_unknown_actors_clips():
    """`benchmarks/expressiveness.py`'s per-emotion table: facecue's report set and both sets beside
    the real clips, the unknown actors' clips added to their emotion only; totals with intervals;
    nothing without per-emotion real counts (results stored before they were kept)."""
    expressiveness = load_benchmark("expressiveness")
    emotions = expressiveness.JUDGED[1:]
    report = [{"emotion": e, "recognised": e if e in ("happy", "sad") else "neutral"} for e in emotions]
    second = [{"emotion": e, "recognised": e} for e in emotions] + [{"emotion": "neutral", "recognised": "happy"}]
    real = {"hits": 8, "total": 14, "per_emotion": {e: [1, 2] for e in expressiveness.JUDGED},
            "unknown_actor": [{"emotion": "fear", "recognised": "fear"},
                              {"emotion": "disgusted", "recognised": "angry"}]}
    lines = expressiveness.by_emotion_lines({"emotion": report, "emotion_second": second, "mead_real": real})
    assert "| emotion | facecue, report set | facecue, report and unseen sets |" in "\n".join(lines)
    rows = {line.split(" | ")[0].strip("| *"): line for line in lines if line.startswith("| ")}
    assert rows["fear"] == "| fear | 0/1 | 1/2 | 1/2 | 2/3 |"
    assert rows["disgusted"] == "| disgusted | 0/1 | 1/2 | 1/2 | 1/3 |"
    assert rows["happy"] == "| happy | 1/1 | 2/2 | 1/2 | 1/2 |"
    assert rows["6 emotions"] == ("| **6 emotions** | **2/6 = 33%** (95 % interval 10%-70%) | **8/12 = 67%** (95 % "
                                  "interval 39%-86%) | **6/12 = 50%** (95 % interval 25%-75%) | **7/14 = 50%** (95 % "
                                  "interval 27%-73%) |")
    assert "disgusted read angry, fear read fear" in "\n".join(lines)
    assert expressiveness.by_emotion_lines({"emotion": report, "mead_real": {"hits": 8, "total": 14}}) == []
    single = expressiveness.by_emotion_lines({"emotion": report, "mead_real": dict(real, unknown_actor=[])})
    assert single[-2] == ("| **6 emotions** | **2/6 = 33%** (95 % interval 10%-70%) | **6/12 = 50%** (95 % "
                          "interval 25%-75%) |")
