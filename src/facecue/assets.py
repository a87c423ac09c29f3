"""Files bundled in ``facecue/assets``: the demo portrait and speech, the cue priors, the face
template and the stage-1 checkpoint. A leaf module: everything may import it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset_path(name: str) -> Path:
    """Path of a file bundled in ``facecue/assets``. Found through this module's own package, so
    that an older tree imported under another name (``benchmarks/bench_render_ab.py``) reads its
    own assets, not the installed ones."""
    return Path(str(resources.files(__package__) / "assets" / name))


def bundled_checkpoint() -> Path | None:
    """The stage-1 checkpoint shipped in the package, if this build has one."""
    path = asset_path("stage1.pt")
    return path if path.is_file() else None


__all__ = ["asset_path", "bundled_checkpoint"]
