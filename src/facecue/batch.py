"""``facecue batch jobs.csv -j N``: many :func:`facecue.generate.generate` jobs from one CSV.

The CSV has a header row and one job per row::

    portrait,audio,emotion,output,intensity,seed,size,full
    me.png,hello.wav,happy,out/hello.mp4,0.8,1,256,false
    me.png,bye.m4a,"neutral@0,sad@2",out/bye.mp4,,,,

Required columns: ``portrait``, ``audio``, ``emotion``, ``output``. Optional columns: any
:class:`~facecue.generate.GenerateConfig` field (``intensity``, ``seed``, ``pose_scale``, ``mouth_scale``,
``gaze``, ``blink_rate``, ``size``, ``full``, ``cue_model``, ...); an empty cell keeps the default. Relative
paths resolve against the CSV's folder; output folders are created.

The whole CSV is validated first. Rows with a problem (a missing file, an unknown emotion, a bad
value, an output another row also writes) are reported as failures; the other rows still run.
Rows whose output already exists are skipped (rerun-safe; ``force`` redoes them). Row numbers are
the spreadsheet's: the header is row 1. Failures go to ``<csv stem>.failures.csv`` (row, output,
reason) next to the CSV, rewritten by every run. ``check=True`` (``--check``) validates and
reports only: nothing runs and nothing is written.

The executors share all of that (:func:`run_rows`) and differ only in where the rows run: local
worker processes here (:func:`run_batch`), Ray tasks in :mod:`facecue.batch_ray`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .workers import run_in_workers
from .errors import FacecueError, InputError, OutputError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("portrait", "audio", "emotion", "output")
PATH_FIELDS = ("checkpoint", "pose_from", "mouth_from", "renderer_checkpoint")  # GenerateConfig fields that name files
FAILURE_COLUMNS = ("row", "output", "reason")
_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off")


@dataclass(frozen=True)
class BatchJob:
    """One valid CSV row, ready for :func:`generate`."""

    row: int  # spreadsheet row number (header = 1)
    portrait: Path
    audio: Path
    output: Path
    config: object  # GenerateConfig
    output_cell: str = ""  # the output as the CSV writes it (for reports)


@dataclass
class BatchReport:
    done: list[int] = field(default_factory=list)  # row numbers
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (row, output, reason)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (row, output, note): what generate said
    failures_path: Path | None = None
    seconds: float = 0.0
    checked_only: bool = False  # --check: validated, nothing run
    to_run: list[int] = field(default_factory=list)  # rows a run would start (set by --check)

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0

    def summary(self) -> str:
        if self.checked_only:
            return (f"{len(self.to_run)} to run, {len(self.skipped)} skipped, {len(self.failed)} with problems; "
                    "nothing run (--check)")
        text = f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"
        if self.failed and self.failures_path is not None:
            text += f"; failures listed in {self.failures_path}"
        return text


# --- reading and validating the CSV ----------------------------------------------------------


def _config_fields() -> dict[str, str]:
    """GenerateConfig field name -> its annotation (a string: ``from __future__ import annotations``)."""
    from .generate import GenerateConfig

    return {f.name: str(f.type) for f in dataclasses.fields(GenerateConfig)}


def _column_name(header: str) -> str:
    return header.strip().lower().replace("-", "_").replace(" ", "_")


def read_jobs(
    csv_path: str | Path, *, force: bool = False, make_folders: bool = True
) -> tuple[list[BatchJob], list[int], list[tuple[int, str, str]]]:
    """Validate every row of ``csv_path``; ``make_folders=False`` only checks that missing output
    folders could be created (``--check`` writes nothing).

    Returns
    -------
    (jobs to run, rows skipped because their output exists, failures ``(row, output, reason)``).

    Raises
    ------
    InputError
        The CSV is missing or unreadable, lacks a required column or has an unknown one.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "CSV file not found")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(csv_path, f"cannot read the CSV ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise InputError(csv_path, "empty CSV; the first row must name the columns: " + ", ".join(REQUIRED_COLUMNS))
    columns = [_column_name(h) for h in header]
    known = _config_fields()
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(csv_path, f"missing column(s): {', '.join(missing)} (the header is: {', '.join(header)})")
    unknown = [h for h, c in zip(header, columns) if c not in REQUIRED_COLUMNS and c not in known]
    if unknown:
        optional = ", ".join(sorted(set(known) - set(REQUIRED_COLUMNS)))
        raise InputError(csv_path, f"unknown column(s): {', '.join(unknown)}; besides "
                         f"{', '.join(REQUIRED_COLUMNS)} the columns can be: {optional}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InputError(csv_path, f"column(s) given twice: {', '.join(duplicated)}")

    base = csv_path.parent
    jobs: list[BatchJob] = []
    skipped: list[int] = []
    failed: list[tuple[int, str, str]] = []
    outputs: dict[Path, int] = {}
    for row, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(record) > len(columns):
            failed.append((row, "", f"{len(record)} cells but the header has {len(columns)} columns"))
            continue
        values = {c: v.strip() for c, v in zip(columns, record)}
        output_text = values.get("output", "")
        output = _resolve(base, output_text) if output_text else None
        if output is not None:
            first = outputs.setdefault(output.resolve(), row)
            if first != row:
                failed.append((row, output_text, f"same output as row {first}"))
                continue
        if output is not None and output.exists() and not force:
            skipped.append(row)
            continue
        try:
            jobs.append(_job_from_row(row, values, base, known, make_folders))
        except FacecueError as exc:
            failed.append((row, output_text, str(exc)))
    return jobs, skipped, failed


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _job_from_row(row: int, values: dict[str, str], base: Path, known: dict[str, str],
                  make_folders: bool = True) -> BatchJob:
    """A BatchJob from one row's cells; raises FacecueError naming the first problem."""
    from .generate import GenerateConfig, validate_inputs

    empty = [c for c in REQUIRED_COLUMNS if not values.get(c)]
    if empty:
        raise InputError(None, f"empty {', '.join(empty)}")
    overrides = {}
    for name, text in values.items():
        if name in ("portrait", "audio", "output") or text == "":
            continue
        overrides[name] = _parse_value(name, text, known[name], base)
    config = GenerateConfig(**overrides).validate()
    portrait, audio, output = (_resolve(base, values[c]) for c in ("portrait", "audio", "output"))
    for path, what in ((portrait, "portrait"), (audio, "audio")):
        if not path.exists():
            raise InputError(path, f"{what} file not found")
    if output.suffix.lower() != ".mp4":
        raise OutputError(output, f"unsupported output type {output.suffix or '(no extension)'!r}; use .mp4")
    checked_output = output
    if not output.parent.exists():
        if make_folders:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(output, f"cannot create its folder ({exc})") from None
        else:  # validate against the folder that would hold the new ones
            checked_output = _existing_folder_above(output) / output.name
    validate_inputs(portrait, audio, checked_output, config)
    return BatchJob(row, portrait, audio, output, config, values["output"])


def _existing_folder_above(output: Path) -> Path:
    """The nearest existing folder above ``output`` (where its missing folders would be made)."""
    parent = output.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(output, f"cannot create its folder: {parent} is not a folder")
    return parent


def _parse_value(name: str, text: str, annotation: str, base: Path):
    """A cell's text as the type of GenerateConfig field ``name``."""
    if name in PATH_FIELDS:
        return str(_resolve(base, text))
    kind = annotation.replace(" | None", "").strip()
    try:
        if kind == "bool":
            lowered = text.lower()
            if lowered not in _TRUE + _FALSE:
                raise ValueError
            return lowered in _TRUE
        if kind == "int":
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
    except ValueError:
        raise InputError(None, f"{name}: {text!r} is not a{'n' if kind == 'int' else ''} {kind}") from None
    return text


# --- running -------------------------------------------------------------------------------


def run_job(job: BatchJob) -> dict:
    """Worker body: generate one row's video; never raises (a failure is returned)."""
    from .generate import generate

    started = time.perf_counter()
    try:
        result = generate(job.portrait, job.audio, job.output, job.config, progress=False)
    except FacecueError as exc:
        return failure(job, str(exc))
    except Exception as exc:  # a crash on one row must not end the batch
        log.debug("row %d crashed", job.row, exc_info=True)
        return failure(job, f"{exc.__class__.__name__}: {exc}")
    return {"row": job.row, "status": "done", "seconds": time.perf_counter() - started, "notes": list(result.notes)}


def failure(job: BatchJob, reason: str) -> dict:
    """The result of a row that failed while running (what :func:`run_job` returns on an error)."""
    return {"row": job.row, "status": "failed", "reason": reason}


Executor = Callable[[list[BatchJob], Callable[[dict], None]], None]
"""Runs the jobs, calling ``record(result)`` once per job as each ends (``result`` as :func:`run_job`
returns it), and returns when every job is recorded."""


def run_rows(csv_path: str | Path, execute: Executor, *, force: bool = False, progress: bool = True,
             check: bool = False, desc: str = "batch") -> BatchReport:
    """The batch semantics every executor shares: validate the whole CSV, skip finished outputs,
    ``execute`` the rest with a progress line as they end, remove what a killed attempt left half
    written, and write the failures CSV. ``check``: validate and report only (nothing runs, nothing
    is written, ``execute`` is not called)."""
    from .io import remove_temp_siblings

    csv_path = Path(csv_path)
    started = time.perf_counter()
    todo, skipped, failed = read_jobs(csv_path, force=force, make_folders=not check)
    report = BatchReport(skipped=skipped, failed=list(failed))
    if check:
        report.checked_only, report.to_run = True, [job.row for job in todo]
        report.seconds = time.perf_counter() - started
        return report
    by_row = {job.row: job for job in todo}
    bar = None
    if progress:
        from .progress import progress_bar

        bar = progress_bar(total=len(todo) + len(skipped) + len(failed), initial=len(skipped) + len(failed),
                           desc=desc, unit="video", dynamic_ncols=True)
        bar.set_postfix(failed=len(report.failed))

    def record(result: dict) -> None:
        job = by_row[result["row"]]
        if result["status"] == "done":
            report.done.append(job.row)
            report.notes.extend((job.row, job.output_cell, note) for note in result.get("notes", ()))
        else:
            report.failed.append((job.row, job.output_cell, result["reason"]))
        # the row has ended: a temp file of its outputs is what a killed attempt left half written
        remove_temp_siblings(job.output)
        remove_temp_siblings(job.output.with_suffix(".json"))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=len(report.failed))

    try:
        if todo:
            execute(todo, record)
    finally:
        if bar is not None:
            bar.close()
        report.done.sort()
        report.failed.sort()
        report.notes.sort()
        report.seconds = time.perf_counter() - started
        report.failures_path = write_failures(csv_path.with_name(f"{csv_path.stem}.failures.csv"), report.failed)
    return report


def run_batch(csv_path: str | Path, jobs: int = 1, force: bool = False, progress: bool = True,
              check: bool = False) -> BatchReport:
    """Run every row of ``csv_path`` with ``jobs`` worker processes (spawn; one job per worker at a time).

    Returns a :class:`BatchReport`; writes ``<csv stem>.failures.csv`` next to the CSV. Raises
    :class:`InputError` only for problems of the whole CSV (missing file, missing/unknown columns).
    """
    if jobs < 1:
        raise InputError(None, f"jobs must be >= 1, got {jobs}")
    return run_rows(csv_path, functools.partial(_run_local, workers=jobs), force=force, progress=progress,
                    check=check)


def _run_local(todo: list[BatchJob], record: Callable[[dict], None], *, workers: int) -> None:
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            record(run_job(job))
    else:
        run_in_workers(run_job, todo, min(workers, len(todo)), record, failure)


def write_failures(path: Path, failed: list[tuple[int, str, str]]) -> Path:
    """``row, output, reason`` per failure (a header only when nothing failed), atomically."""
    from .io import atomic_path

    try:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(FAILURE_COLUMNS)
            writer.writerows(failed)
    except OSError as exc:
        raise OutputError(path, f"cannot write the failures report ({exc})") from None
    return path
