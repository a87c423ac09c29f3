"""`facecue.inputs`: one set of rules for the CLI, the UI, batch and generate(); module layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from facecue import inputs
from facecue.errors import InputError

SRC = Path(__file__).resolve().parents[1] / "src" / "facecue"


def test_emotion_aliases_and_schedules():
    assert inputs.emotion_name(" Sadness ") == "sad" and inputs.emotion_id("surprise") == 7
    assert inputs.parse_emotion_schedule("neutral@0, happiness@2.5,sad@6") == [(0.0, "neutral"), (2.5, "happy"),
                                                                                (6.0, "sad")]
    assert inputs.parse_emotion_schedule("happy@1") == [(0.0, "happy"), (1.0, "happy")]
    for bad, message in (("joyful", "choose one of"), ("happy@soon", "seconds"), ("happy@nan", "seconds >= 0"),
                         ("happy@", "give the seconds"), ("happy@1,sad@1", "twice"), ("", "empty emotion")):
        with pytest.raises(InputError, match=message):
            inputs.parse_emotion_schedule(bad)


def test_the_same_values_pass_and_fail_everywhere(tmp_path):
    """'sadness' and temperature 0 are accepted by generate's config, the UI's widgets, batch's CSV
    rows, the data pipeline and stage 1; size 16 is refused by all."""
    from facecue.data import emotion_id as data_emotion_id
    from facecue.generate import GenerateConfig
    from facecue.stage1 import check_intensity
    from facecue.ui import config_from_widgets

    GenerateConfig(emotion="sadness", temperature=0).validate()
    config = config_from_widgets("neutral", "sadness@0,happy@1", 0.5, 1.0, "auto", 0, 0, "auto", 0, "128",
                                 "face crop", "auto")
    assert config.emotion == "sadness@0,happy@1"
    assert data_emotion_id("sadness") == inputs.emotion_id("sad") and check_intensity(1) == 1.0
    for bad in (dict(size=16), dict(temperature=-1), dict(fps=0), dict(intensity=1.5), dict(emotion="joyful")):
        with pytest.raises(InputError):
            GenerateConfig(**bad).validate()
    with pytest.raises(InputError, match="size must be within 64..4096"):
        config_from_widgets("neutral", "", 0.5, 1.0, "auto", 0, 0, "auto", 0, "16", "face crop", "auto")


def _imports(path: Path) -> set[str]:
    """facecue modules imported by ``path`` (at any depth, relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("facecue."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("facecue."))
    return found


def test_no_upward_imports():
    """cli, ui and batch are the top; generate is below them only; the leaves import no stage."""
    # batch_ray is the batch layer's Ray executor: it shares batch's row logic
    top = {"cli": set(), "ui": {"cli"}, "batch": {"cli", "ui", "batch_ray"}, "batch_ray": {"cli"},
           "generate": {"cli", "ui", "batch", "batch_ray"}}
    for path in sorted(SRC.glob("*.py")):
        name = path.stem
        imported = _imports(path)
        for module, allowed_importers in top.items():
            if module in imported:
                assert name in allowed_importers, f"{name} imports {module}"
    assert "data" not in _imports(SRC / "batch.py"), "batch imports the training-data pipeline"
    for leaf in ("inputs", "assets", "progress", "workers", "errors", "constants"):
        assert _imports(SRC / f"{leaf}.py") <= {"errors", "constants"}, leaf
