"""Frames rendered in worker processes while the calling process encodes them.

The mesh renderer is plain NumPy / OpenCV, mostly small operations that hold the GIL, so threads
do not help; but its frames are a deterministic function of their landmarks and emotion weights
(see :mod:`facecue.render`), so any process can render any frame. :class:`RenderWorkers` is a
few helper processes that take a prepared renderer and render chunks of frames, chunk ``c``
on worker ``c % n``; :func:`render_in_workers` hands them the chunks and yields the frames in
order, so that the caller (the H.264 encoder, :class:`facecue.io.VideoWriter`) works on one
frame while the workers render the next ones::

    with RenderWorkers(2) as workers:           # start early: their start-up overlaps other work
        ...                                      # landmarks, cues
        frames = facecue.render.render(portrait, points, sequence, workers=workers)
        for frame in frames: writer.write(frame)

Memory stays bounded in the video length: each worker holds at most :data:`AHEAD` chunks of
landmarks and its result queue at most :data:`QUEUE_FRAMES` frames. An exception in a worker is
raised again in the caller (same type and message, the worker's traceback attached as the
cause); a worker that dies is a :class:`RuntimeError`. Workers are forked from a fork server
(:func:`process_context`; not from the caller, which may run MediaPipe, torch or OpenCV threads),
so, as with spawned processes, a script that calls facecue needs the usual
``if __name__ == "__main__":`` guard; without it the workers cannot start and the frames are
rendered in the calling process instead (with a warning).
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CHUNK_FRAMES = 8  # frames per task
AHEAD = 2  # chunks queued per worker beyond the one it renders
QUEUE_FRAMES = 12  # rendered frames a worker may hold ahead of the consumer
POLL_SECONDS = 0.5  # how often a waiting consumer checks that the workers are alive
START_SECONDS = 120.0  # a worker that has not started by then is given up
MAX_WORKERS = 8
MIN_SECONDS = 10.0  # shorter videos are rendered in the calling process by default


# what facecue's helper processes run: imported once in the fork server, not in every process
PRELOADED_MODULES = ("numpy", "cv2", "facecue.render", "facecue.io", "facecue.audio", "pocketsphinx")


def process_context() -> Any:
    """The multiprocessing context of facecue's helper processes (render workers, phone helpers).

    A fork server where the platform has one: a fresh interpreter (started once, on first use or
    by :func:`start_process_server`) that imports :data:`PRELOADED_MODULES` and then forks each
    helper, so a helper starts in milliseconds with NumPy, OpenCV and facecue already imported
    (spawning imports them again in every helper: about 0.35 s of CPU each). Like spawn, and
    unlike fork, the helpers share nothing with the caller's threads (MediaPipe, torch, OpenCV).
    Elsewhere: spawn."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED_MODULES))
    return context


def start_process_server() -> None:
    """Start :func:`process_context`'s fork server now, without waiting for it: its imports then
    run beside the caller's own work instead of delaying the first helper."""
    import multiprocessing

    if multiprocessing.current_process().daemon:  # it could not start helpers: no server either
        return
    context = process_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(seconds: float | None = None) -> int:
    """Render workers :func:`facecue.generate.generate` uses by default for ``seconds`` of video:
    one per usable core (the encoder's threads share the cores with them); none on a single
    core, for clips under :data:`MIN_SECONDS` (starting workers costs about a second of CPU), or
    in a process that is itself a multiprocessing worker (``facecue batch --jobs N``: the jobs
    already share out the cores)."""
    import multiprocessing

    cores = usable_cores()
    if cores < 2 or (seconds is not None and seconds < MIN_SECONDS) or multiprocessing.parent_process() is not None:
        return 0
    return min(cores, MAX_WORKERS)


class WorkerError(RuntimeError):
    """A render worker failed in a way that cannot be raised as its own exception."""


class _RemoteTraceback(Exception):
    """The worker's traceback, attached as the ``__cause__`` of an exception raised again here."""

    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return "\n\n" + self.args[0]


def _worker_main(tasks: Any, results: Any, finish: Any = None) -> None:
    """A worker's loop: ("renderer", pickled engine) once, then ("frames", start, landmarks, weights)
    chunks (frames go to ``results`` one by one), until ("stop",)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import cv2

        cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would only compete
    except Exception:  # pragma: no cover
        pass
    import multiprocessing

    parent = multiprocessing.parent_process()

    def put(item: tuple) -> None:  # never blocks for good: a worker ends with its caller
        while True:
            try:
                return results.put(item, timeout=POLL_SECONDS)
            except queue.Full:
                if parent is not None and not parent.is_alive():
                    os._exit(0)  # the caller is gone: nothing to flush, nobody to tell

    def get() -> tuple:
        while True:
            try:
                return tasks.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    os._exit(0)  # the caller is gone: nothing to flush, nobody to tell

    put(("ready", os.getpid()))
    engine = None
    while True:
        message = get()
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "renderer":
                engine = pickle.loads(message[1])
                continue
            _, start, landmarks, weights = message
            for offset, points in enumerate(landmarks):
                if weights is not None:
                    engine.set_expression(weights[offset])
                frame = engine.render_frame(points)
                put(("frame", start + offset, frame if finish is None else finish(frame)))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            put(("error", _portable(exc), f"{exc.__class__.__name__}: {exc}", traceback.format_exc()))
            return


def _portable(exc: BaseException) -> tuple | None:
    """(class, args, attributes) of an exception, enough to make it again in another process
    (facecue's errors take other arguments than their ``args``, so they do not unpickle as they
    are); None when they do not pickle."""
    import pickle

    payload = (type(exc), exc.args, dict(vars(exc)))
    try:
        pickle.loads(pickle.dumps(payload))
    except Exception:
        return None
    return payload


def _rebuilt(payload: tuple | None) -> BaseException | None:
    if payload is None:
        return None
    cls, args, attributes = payload
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(attributes)
    return exc


class RenderWorkers:
    """``n`` processes (:func:`process_context`) that render frames for :func:`render_in_workers`.

    They start at once (forked from the fork server, which imports NumPy, OpenCV and
    :mod:`facecue.render` once, on its first use) and wait for a renderer; use as a context
    manager, or call :meth:`close`. One set of workers serves one :func:`render_in_workers` run
    at a time.

    finish : optional picklable callable applied to every frame in the worker, e.g.
        :class:`facecue.io.Yuv420p` (the encoder's colour conversion, which then runs in the
        workers too, and half the bytes travel back); the frames given out are its results.
    """

    def __init__(self, n: int, finish: Any = None) -> None:
        import multiprocessing

        self._closed = True  # until the workers exist (close() and __del__ then do nothing)
        if int(n) < 1:
            raise ValueError(f"need at least one worker, got {n!r}")
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # a worker that re-imports a main module without the __main__ guard would start
            # workers of its own: it must end instead (the caller then renders in its own process)
            raise RuntimeError("facecue's render workers cannot start while a new process imports the main "
                               "module: guard the script's code with `if __name__ == '__main__':`")
        self.n = int(n)
        self.finish = finish
        context = process_context()
        self._tasks = [context.Queue() for _ in range(self.n)]
        self._results = [context.Queue(maxsize=QUEUE_FRAMES) for _ in range(self.n)]
        self._processes: list[Any] = []
        self._ready = False
        self._closed = False
        self.failed_to_start: str | None = None
        for tasks, results in zip(self._tasks, self._results):
            process = context.Process(target=_worker_main, args=(tasks, results, finish), daemon=True, name="facecue-render")
            process.start()
            self._processes.append(process)

    def __enter__(self) -> RenderWorkers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def usable(self) -> bool:
        """Whether the workers started (waits for them the first time)."""
        if self._closed or self.failed_to_start is not None:
            return False
        if not self._ready:
            for process, results in zip(self._processes, self._results):
                try:
                    message = self._get(results, process, timeout=START_SECONDS)
                except (WorkerError, queue.Empty) as exc:
                    self.failed_to_start = str(exc) or "a worker did not start"
                    self.close()
                    return False
                if message[0] != "ready":  # pragma: no cover - protocol error
                    self.failed_to_start = f"unexpected first message {message[0]!r}"
                    self.close()
                    return False
            self._ready = True
        return True

    def _get(self, results: Any, process: Any, timeout: float | None = None) -> tuple:
        """The next message of one worker; WorkerError when it died without one."""
        waited = 0.0
        while True:
            try:
                return results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                waited += POLL_SECONDS
                if not process.is_alive():
                    try:  # it may have put its last message just before it ended
                        return results.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        raise WorkerError(f"a render worker ended unexpectedly (exit code {process.exitcode})") from None
                if timeout is not None and waited >= timeout:
                    raise

    def close(self) -> None:
        """Stop the workers (at once: frames still queued are dropped)."""
        if self._closed:
            return
        self._closed = True
        for tasks, _ in zip(self._tasks, self._processes):
            try:
                tasks.put(("stop",))
            except Exception:
                pass
        for process in self._processes:
            process.join(timeout=1.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)
        for q in (*self._tasks, *self._results):
            q.cancel_join_thread()
            q.close()

    @staticmethod
    def _raise(message: tuple) -> None:
        _, payload, summary, text = message
        exc = _rebuilt(payload)
        if exc is not None:
            raise exc from _RemoteTraceback(text)
        raise WorkerError(f"a render worker failed: {summary}") from _RemoteTraceback(text)

    def render(self, engine: Any, frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
               pickled: bytes | None = None) -> Iterator[np.ndarray]:
        """Frames of ``engine`` (a prepared renderer; ``pickled``: it pickled already) for
        ``(landmarks (478, 3), emotion weights (8,) or None)`` pairs, in order. The workers must
        be :attr:`usable`."""
        if not self.usable:
            raise WorkerError(f"the render workers did not start ({self.failed_to_start})")
        blob = pickled if pickled is not None else pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
        for tasks in self._tasks:
            tasks.put(("renderer", blob))
        source = iter(frames)
        n = self.n
        sizes: list[int] = []  # frames of each chunk handed out, by chunk number
        next_index = 0

        def hand_out() -> bool:
            nonlocal next_index
            points, weights = [], []
            for pts, w in source:
                points.append(pts)
                weights.append(w)
                if len(points) == CHUNK_FRAMES:
                    break
            if not points:
                return False
            chunk = len(sizes)
            stacked = None if weights[0] is None else np.stack(weights).astype(np.float32)
            self._tasks[chunk % n].put(("frames", next_index, np.stack(points), stacked))
            sizes.append(len(points))
            next_index += len(points)
            return True

        finished = False
        try:
            yield from self._collect(hand_out, sizes)
            finished = True
        finally:
            if not finished:  # an error, or the consumer stopped early: chunks are still queued
                self.close()

    def _collect(self, hand_out, sizes: list[int]) -> Iterator[np.ndarray]:
        n = self.n
        more = True
        for _ in range(n * (AHEAD + 1)):
            more = more and hand_out()
        chunk = 0
        expected = 0
        while chunk < len(sizes):
            worker = chunk % n
            for _ in range(sizes[chunk]):
                message = self._get(self._results[worker], self._processes[worker])
                if message[0] == "error":
                    self._raise(message)
                _, index, frame = message
                if index != expected:  # pragma: no cover - protocol error
                    raise WorkerError(f"frame {index} came back where frame {expected} was expected")
                expected += 1
                yield frame
            chunk += 1
            if more:
                more = hand_out()


def render_in_workers(engine: Any, frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
                      workers: int | RenderWorkers) -> Iterator[np.ndarray]:
    """Frames of a prepared ``engine`` for ``(landmarks, emotion weights)`` pairs, rendered by
    ``workers`` (a number of new processes, closed at the end, or running
    :class:`RenderWorkers`), in order. They are rendered in this process instead (with a
    warning) when the workers cannot start or the renderer does not pickle."""
    try:  # once, here, for every worker
        pickled: bytes | None = pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        pickled = None
        log.warning("the %s renderer cannot be sent to worker processes (%s: %s); rendering in this process",
                    getattr(engine, "name", type(engine).__name__), exc.__class__.__name__, exc)
    own = not isinstance(workers, RenderWorkers)
    pool = workers if not own else RenderWorkers(int(workers)) if pickled is not None else None
    finish = getattr(pool, "finish", None)
    try:
        if pickled is not None and pool is not None and not pool.usable:
            log.warning("render workers unavailable (%s); rendering in this process", pool.failed_to_start)
        if pickled is None or pool is None or not pool.usable:
            for points, weights in frames:
                if weights is not None:
                    engine.set_expression(weights)
                frame = engine.render_frame(points)
                yield frame if finish is None else finish(frame)
            return
        yield from pool.render(engine, frames, pickled)
    finally:
        if own and pool is not None:
            pool.close()

__all__ = ["RenderWorkers", "WorkerError", "default_workers", "render_in_workers", "usable_cores"]
