"""``facecue batch jobs.csv --ray [auto|ADDRESS]``: the rows of a batch as Ray tasks.

Everything but where the rows run is :func:`facecue.batch.run_rows`, as for the local batch: the
whole CSV validated first, finished outputs skipped, a progress line as rows end, the failures CSV,
exit code 2 when a row failed. Each row is one Ray task (``cpus_per_job`` CPUs, ``gpus_per_job``
GPUs); Ray retries a task whose worker process died (``MAX_RETRIES`` times), and the driver removes
what a killed attempt left half written, so a row's outputs are complete or absent.

Where the files are
-------------------
* Shared file system (the default): every node sees the CSV's input and output paths at the same
  place (an NFS mount, or one machine). A task reads its inputs and writes its outputs itself,
  atomically (temp file in the output's folder, then rename).
* ``ship_inputs=True`` (``--ship-inputs``): the inputs are only on the driver. The driver reads each
  distinct input file once into Ray's object store, the task writes them to a temp folder on its
  node, renders there, and returns the video and its settings file, which the driver writes
  atomically. Nothing of the row's paths needs to exist on the worker nodes.

Ray is an optional extra (``pip install 'facecue[ray]'``); every node of a cluster needs facecue and
Ray of the same versions installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .batch import PATH_FIELDS, BatchJob, BatchReport, failure, run_job, run_rows
from .errors import FacecueError, OutputError

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # attempts after the first, for a task whose worker process died
RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'facecue[ray]'"


def import_ray():
    """The ``ray`` module, or a one-line :class:`FacecueError` saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    try:
        import ray
    except ImportError:
        raise FacecueError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str = "auto", *, verbose: bool = False) -> Iterator[object]:
    """Connect to Ray for one batch; yields the ``ray`` module.

    ``address``: ``"auto"`` joins the cluster ``RAY_ADDRESS`` names or the one ``ray start`` began
    on this machine, and otherwise starts a private local instance for this batch, on the loopback
    interface only, with every CPU; anything else is the address of a cluster's
    head (``host:6379``, or ``ray://host:10001`` for Ray Client). A session already open in this
    process (``ray.init`` by the caller) is used as it is and left open; one opened here is shut
    down at the end, stopping a local instance started here.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    target = address
    try:
        if address == "auto":
            target = _running_instance(ray)
        if target is None:
            start_local_instance(verbose=verbose)
        else:
            _check_reachable(target)
            ray.init(address=target, **_init_options(verbose))
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = "start a local Ray instance" if target is None else f"join the Ray cluster at {target}"
        raise FacecueError(f"cannot {where} ({_first_line(exc)})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _running_instance(ray) -> str | None:
    """The address ``RAY_ADDRESS`` names or ``ray start`` recorded on this machine, else None. Ray's
    own ``address="auto"`` would also take any Ray process it finds, such as another batch's private
    instance, which it cannot join."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # pragma: no cover - another Ray layout: its own rule
        return os.environ.get("RAY_ADDRESS") or None
    return canonicalize_bootstrap_address(None)


def _check_reachable(address: str, timeout: float = 10) -> None:
    """A ``host:port`` that nothing answers on is one line at once (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://... (Ray Client) or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port}: {exc.strerror or exc}") from None


def start_local_instance(num_cpus: int | None = None, *, verbose: bool = False):
    """Start a private Ray instance in this process (``num_cpus``: None = every CPU) that listens
    on 127.0.0.1 only, as Ray does where it does not support clusters (its own processes read the
    variable, this one the constant); stop it with ``ray.shutdown()``. Returns the ``ray`` module."""
    ray = import_ray()
    from ray._private import ray_constants

    name = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    saved_env, saved = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(num_cpus=num_cpus, **_init_options(verbose))
    finally:  # the instance's processes have read it; a later session in this process may join a cluster
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(name)
        else:
            os.environ[name] = saved_env
    return ray


def _init_options(verbose: bool) -> dict:
    """No dashboard, Ray's own log lines only for errors, the workers' output only with -v."""
    return dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=verbose)


def run_batch_ray(
    csv_path: str | Path,
    address: str = "auto",
    *,
    cpus_per_job: float = 1,
    gpus_per_job: float = 0,
    ship_inputs: bool = False,
    max_in_flight: int | None = None,
    force: bool = False,
    progress: bool = True,
    check: bool = False,
    verbose: bool = False,
) -> BatchReport:
    """Run every row of ``csv_path`` as a Ray task; the same report and files as
    :func:`facecue.batch.run_batch`.

    Parameters
    ----------
    address : "auto" (join this machine's instance or start one) or a cluster's address
    cpus_per_job, gpus_per_job : Ray resources each row's task asks for (torch uses that many threads)
    ship_inputs : the inputs are only on the driver: send their bytes, write the results back here
    max_in_flight : at most this many rows submitted at once (None: all; Ray schedules them by resources)
    check : validate and report only; Ray is not even started
    """
    if not cpus_per_job > 0 or gpus_per_job < 0:
        raise FacecueError(f"cpus per job must be > 0 and gpus per job >= 0, got {cpus_per_job} and {gpus_per_job}")
    if max_in_flight is not None and max_in_flight < 1:
        raise FacecueError(f"jobs in flight must be >= 1, got {max_in_flight}")
    if not check:
        import_ray()  # the missing extra is one line before anything is read

    def execute(todo: list[BatchJob], record: Callable[[dict], None]) -> None:
        with ray_session(address, verbose=verbose) as ray:
            _check_resources(ray, cpus_per_job, gpus_per_job)
            _run_tasks(ray, todo, record, cpus_per_job, gpus_per_job, ship_inputs, max_in_flight)

    return run_rows(csv_path, execute, force=force, progress=progress, check=check, desc="batch (ray)")


def _check_resources(ray, cpus: float, gpus: float) -> None:
    """A task asking for more than the cluster has would wait for ever: say so instead."""
    total = ray.cluster_resources()
    for name, wanted, flag in (("CPU", cpus, "--cpus-per-job"), ("GPU", gpus, "--gpus-per-job")):
        if wanted > total.get(name, 0):
            raise FacecueError(f"{flag} {wanted:g}: the Ray cluster has {total.get(name, 0):g} {name}s in all")


def _run_tasks(ray, todo: list[BatchJob], record: Callable[[dict], None], cpus: float, gpus: float,
               ship: bool, max_in_flight: int | None) -> None:
    """Submit the rows (at most ``max_in_flight`` at once) and record each as it ends."""
    threads = max(1, int(cpus))
    options = dict(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False)
    if not gpus:  # Ray hides no GPU from a task that asked for none; device=auto would take one
        options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
    task = ray.remote(run_shipped_job if ship else run_task)
    shipped: dict[str, object] = {}  # input path -> its bytes in the object store, put once
    pending: dict[object, BatchJob] = {}
    queue = list(todo)

    def submit(job: BatchJob) -> None:
        named = task.options(name=f"facecue batch row {job.row}", **options)  # the worker's title: ray::<name>
        if not ship:
            pending[named.remote(job, threads)] = job
            return
        paths = input_files(job)
        try:
            for path in paths:
                if path not in shipped:
                    shipped[path] = ray.put(Path(path).read_bytes())
        except OSError as exc:
            record(failure(job, f"cannot read {path} to ship it ({exc.strerror or exc})"))
            return
        pending[named.remote(job, threads, paths, *(shipped[p] for p in paths))] = job

    while queue or pending:
        while queue and (max_in_flight is None or len(pending) < max_in_flight):
            submit(queue.pop(0))
        if not pending:
            continue
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.WorkerCrashedError:
                result = failure(job, f"its worker process died in all {MAX_RETRIES + 1} attempts (rerun to retry)")
            except ray.exceptions.RayError as exc:
                result = failure(job, f"Ray: {exc.__class__.__name__}: {_first_line(exc)}")
            if ship and result["status"] == "done":
                result = write_shipped_outputs(job, result)
            record(result)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


# --- task bodies (run on the workers) --------------------------------------------------------


def _use_threads(threads: int) -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import torch

    torch.set_num_threads(threads)


def run_task(job: BatchJob, threads: int = 1) -> dict:
    """A row on a shared file system: :func:`facecue.batch.run_job` with ``threads`` torch threads."""
    _use_threads(threads)
    return run_job(job)


def input_files(job: BatchJob) -> tuple[str, ...]:
    """Every file a row reads (portrait, audio and any file a setting names), each once."""
    paths = [str(job.portrait), str(job.audio)]
    paths += [str(value) for name in PATH_FIELDS if (value := getattr(job.config, name)) is not None]
    return tuple(dict.fromkeys(paths))


def run_shipped_job(job: BatchJob, threads: int, paths: tuple[str, ...], *contents: bytes) -> dict:
    """A row whose inputs are only on the driver: ``contents[i]`` is the file the driver calls
    ``paths[i]``. Renders in a temp folder and returns, on success, the video's and the settings
    file's bytes under ``"files"`` (keys: their suffixes), with the driver's paths in the settings."""
    _use_threads(threads)
    with tempfile.TemporaryDirectory(prefix="facecue-ship-") as tmp:
        local: dict[str, str] = {}
        for index, (path, data) in enumerate(zip(paths, contents)):
            target = Path(tmp, "in", str(index), Path(path).name)  # keeps the name: the suffix tells the kind
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            local[path] = str(target)
        config = dataclasses.replace(job.config, **{name: local[str(value)] for name in PATH_FIELDS
                                                    if (value := getattr(job.config, name)) is not None})
        output = Path(tmp, "out", job.output.name)
        output.parent.mkdir()
        result = run_job(dataclasses.replace(job, portrait=Path(local[str(job.portrait)]),
                                             audio=Path(local[str(job.audio)]), output=output, config=config))
        if result["status"] == "done":
            settings = output.with_suffix(".json").read_text()
            for path, copy in local.items():  # the settings name the driver's files, not the copies
                settings = settings.replace(json.dumps(copy), json.dumps(path))
            result["files"] = {".json": settings.encode(), ".mp4": output.read_bytes()}
    return result


def write_shipped_outputs(job: BatchJob, result: dict) -> dict:
    """Write a shipped row's returned files next to each other on the driver, atomically, the
    settings before the video (whose presence marks the row finished)."""
    from .io import atomic_path

    files = result.pop("files")
    try:
        for suffix in (".json", ".mp4"):
            with atomic_path(job.output.with_suffix(suffix)) as tmp:
                tmp.write_bytes(files[suffix])
    except OSError as exc:
        return failure(job, str(OutputError(job.output, f"cannot write the result ({exc.strerror or exc})")))
    return result
