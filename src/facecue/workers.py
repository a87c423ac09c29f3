"""Worker processes shared by ``facecue preprocess`` and ``facecue batch``: a spawn pool of
one-thread workers, with a crashed worker recorded as a failure instead of ending the run. A leaf
module (no torch at import), so the batch runner need not import the training-data pipeline."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any


def _worker_init() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_threaded_children():
    """Spawned workers inherit the environment at start: keep each one on one BLAS/OMP thread."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run_in_workers(task: Callable[[Any], dict], items: Sequence, workers: int, record: Callable[[dict], None],
                   failure: Callable[[Any, str], dict]) -> None:
    """``record(task(item))`` for every item, as each ends, in ``workers`` spawned processes of one
    thread each; a crashed worker (or an exception ``task`` let through) is recorded as
    ``failure(item, reason)``. ``task`` must pickle: a module-level function or a ``functools.partial``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    with _single_threaded_children(), ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    ) as pool:
        futures = {pool.submit(task, item): item for item in items}
        for future in as_completed(futures):
            item = futures[future]
            try:
                record(future.result())
            except BrokenProcessPool:
                record(failure(item, "worker process crashed (rerun to retry)"))
            except Exception as exc:  # pragma: no cover - the tasks catch their own errors
                record(failure(item, f"{exc.__class__.__name__}: {exc}"))


__all__ = ["run_in_workers"]
