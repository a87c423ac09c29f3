"""Exceptions users can act on. The CLI prints ``str(error)`` on one line and exits with 2."""

from __future__ import annotations

from pathlib import Path


class FacecueError(Exception):
    """Base of every error caused by the user's input or environment (exit code 2)."""

    exit_code = 2


class InputError(FacecueError):
    """An input file or argument is missing, unreadable or invalid."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class NoFaceError(InputError):
    """No face was found where one is required."""


class OutputError(FacecueError):
    """An output cannot be written (unwritable folder, disk full...)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


class CheckpointError(InputError):
    """A checkpoint/cue file is corrupt, of the wrong kind, or of an unsupported version."""


def check_file_header(path: str | Path, data, kind: str, max_version: int, what: str) -> int:
    """The ``kind`` / ``version`` entries every facecue ``.npz`` file carries (an open ``np.load`` of
    ``path`` as ``data``): :class:`CheckpointError` naming the file when it is not a ``kind`` file
    (``what`` names it: "cue file") or newer than this facecue reads; returns the version."""
    found = str(data["kind"]) if "kind" in data.files else ""
    if found != kind:
        raise CheckpointError(path, f"not a facecue {what} (kind {found or 'missing'!r})")
    version = int(data["version"])
    if version > max_version:
        raise CheckpointError(path, f"{what} version {version} is newer than this facecue ({max_version}); upgrade facecue")
    return version
