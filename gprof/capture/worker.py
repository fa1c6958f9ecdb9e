"""The step worker: a process that builds, analyses and writes handed-off steps while training goes on.

``prof.step()`` spools the step's records (gprof/capture/handoff.py) and sends the spool file's name
over a socket; the worker runs :func:`complete_spooled` (the same build and ``complete_step`` as the
in-process path, gprof/capture/handoff.py) and answers with a small result file: the written
step's meta and where its graph is, read back only when ``prof.graphs`` asks (:class:`LazyGraph`).

One worker per training process (per rank under torchrun), started by the first profile that hands
off and reused by later ones (a notebook's next cell): it is a fresh interpreter (``python -c``,
see ``_BOOT``), never a fork of a process whose torch threads are up, and, unlike multiprocessing's
``spawn`` and ``forkserver``, it never re-imports the user's ``__main__``, so scripts without an
``if __name__ == "__main__"`` guard work. It imports torch, the builder, the store and the analyses
(~0.9 s on this machine, quiet); the training thread pays only the ``Popen``. The worker ignores
SIGINT (Ctrl-C is the training loop's to handle) and, when the training process goes away, finishes
what it was sent, then removes the spool directory.

Nothing handed off is lost: a dead worker's unanswered steps are built in the training process from
their spool files (one warning), and the profile stays in-process from then on; an interpreter that
exits without closing the profile drains the queue at exit. While the training thread waits for the
drain it builds steps itself: whoever renames a spool file first (``_claim``) builds that step.
Spool directories are ``<tmp>/gprof-spool-<owner pid>-*``, locked by the owner and its worker;
:func:`remove_stale_spools` removes those of processes killed together with their workers.
"""
from __future__ import annotations

import atexit
import fcntl
import itertools
import os
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import ClassVar

from gprof.capture.handoff import SpooledStep, StepHeader, complete_step, replay_spool
from gprof.graph.model import StepGraph, StepMeta
from gprof.store.temp_files import pid_alive


class LazyGraph:
    """A written step's graph, made an object on first use (``prof.graphs``, a step callback): built
    in this process (the object itself), pickled by the worker (when a step callback wants every
    graph at once, or the step file could not be written), or else read back from the step file,
    which holds exactly the graph that was built (tests/test_worker.py). Pickling every graph back
    cost the worker ~5 ms of a GPT-2-like step's ~30 ms, on the way to the last step's write."""

    def __init__(self, has_nodes: bool, graph: StepGraph | None = None, data: bytes | None = None,
                 path: Path | None = None, meta: StepMeta | None = None) -> None:
        self.has_nodes = has_nodes
        self._graph = graph
        self._data = data
        #: the step file and the meta it must hold (a file replaced meanwhile is not this step)
        self._file = (path, meta)

    def load(self) -> StepGraph:
        if self._graph is None:
            if self._data is not None:
                self._graph, self._data = pickle.loads(self._data), None
            else:
                self._graph = self._read()
        return self._graph

    def _read(self) -> StepGraph:
        from gprof.store.decode import StoreError
        from gprof.store.step_file import StepReader

        path, meta = self._file
        assert path is not None and meta is not None
        try:
            with StepReader(path) as reader:
                graph = reader.load()
        except (OSError, StoreError) as e:
            raise RuntimeError(f"torch-gprof: the graph of step {meta.step} is read from its step file {path} on first "
                               f"use, and that file cannot be read now ({e})") from e
        if (graph.meta.step, graph.meta.session, graph.meta.rank) != (meta.step, meta.session, meta.rank):
            raise RuntimeError(f"torch-gprof: the graph of step {meta.step} is read from its step file {path} on first "
                               "use, and that file now holds another step")
        return graph

    def shipped(self, result: StepResult, pickled: bool) -> LazyGraph:
        """What the worker sends back of a graph it built: the pickled graph, or where to read it."""
        graph = self.load()
        if pickled or result.path is None:
            return LazyGraph(self.has_nodes, data=pickle.dumps(graph, pickle.HIGHEST_PROTOCOL))
        return LazyGraph(self.has_nodes, path=result.path, meta=result.meta)


@dataclass
class StepResult:
    meta: StepMeta
    path: Path | None
    graph: LazyGraph
    #: why the step file could not be written (path None), and where it was going
    store_error: str | None = None
    where: Path | None = None


def complete_spooled(spool: str | os.PathLike[str]) -> StepResult:
    """Build, analyse and write one spooled step, in the worker or (after it died) in-process."""
    builder, head, writer, end = replay_spool(spool)
    try:
        if end is None:
            raise ValueError(f"{spool}: the spooled step has no end")
        graph, path = complete_step(builder, end, head.analyze, writer)
    except BaseException:
        writer.abort()
        raise
    return StepResult(graph.meta, path, LazyGraph(bool(graph.nodes), graph), writer.error, writer.where)


def _claim(spool: Path) -> Path | None:
    """Take a spooled step to build: the worker, or the training process while it waits (see
    ``StepWorker.drain``); the rename makes sure only one of them does."""
    taken = spool.with_suffix(".taken")
    try:
        os.rename(spool, taken)
    except FileNotFoundError:
        return None
    return taken


_SPOOL_PREFIX = "gprof-spool-"
_LOCK = "lock"


def _lock_held(lock: str) -> bool:
    """Does a live process (a training process, a fork of it, or its worker) hold this spool
    directory's lock? A missing lock (its owner died before taking it) is held by nobody."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:  # a symlink, or unreadable: not ours to judge
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def remove_stale_spools(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the spool directories that processes killed with SIGKILL left in the temp directory,
    together with their workers (a worker whose training process dies removes the directory itself
    once it has written what it was sent). Only real directories of this user, named with an owner
    pid that is gone, whose lock no live process holds; never through a symlink. Returns them."""
    base = Path(root if root is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        pid = entry.name.removeprefix(_SPOOL_PREFIX).partition("-")[0]
        if not entry.name.startswith(_SPOOL_PREFIX) or not pid.isdigit():
            continue  # another program's, or an older gprof's (no owner in the name): left alone
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or pid_alive(int(pid)) or \
                _lock_held(os.path.join(entry.path, _LOCK)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)  # never follows symlinks inside (fd-based on POSIX)
        removed.append(Path(entry.path))
    return removed


#: the ticket of the worker's first message: its imports are done
_READY = -1
#: called with (result, None) when a handed-off step is written, or (None, traceback text)
Done = Callable[[StepResult | None, str | None], None]


class StepWorker:
    """The training process's side of the worker: the process, the socket, the unanswered steps."""

    _shared: ClassVar[StepWorker | None] = None

    @classmethod
    def shared(cls) -> StepWorker:
        """This process's worker, started on first use (again if the last one died)."""
        w = cls._shared
        if w is None or not w.alive or w.owner != os.getpid():  # a forked child gets its own
            w = cls._shared = StepWorker()
        return w

    def __init__(self) -> None:
        #: the process this worker serves: a fork of it (a DataLoader worker) must not drain or stop it
        self.owner = os.getpid()
        remove_stale_spools()
        self.spool_dir = Path(tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{self.owner}-"))
        #: held (shared) by this process and the worker, which inherits it: a spool directory whose
        #: lock nobody holds belongs to no live process (see remove_stale_spools)
        self._lock = os.open(self.spool_dir / _LOCK, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_SH)
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # gprof's own directory, wherever it was imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        with theirs:
            self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(theirs.fileno()), str(self.spool_dir),
                                          str(self.owner)],
                                         pass_fds=(theirs.fileno(), self._lock), stdin=subprocess.DEVNULL, env=env)
        self.conn = Connection(ours.detach())
        self.alive = True
        #: the worker has started (imported torch): until then, waiting for it would only wait for that
        self.ready = False
        #: ticket -> (spool file, who to tell), in hand-off order, until told
        self.pending: dict[int, tuple[Path, Done]] = {}
        #: ticket -> (result, error) of steps finished before an earlier one
        self._finished: dict[int, tuple[StepResult | None, str | None]] = {}
        self._tickets = itertools.count()
        atexit.register(self.shutdown)

    def spool_path(self) -> Path:
        return self.spool_dir / f"{next(self._tickets)}.step"

    def submit(self, spool: Path, done: Done, pickled: bool = False) -> None:
        """Queue a spooled step; ``pickled``: send its graph back pickled (a step callback wants
        each graph as it is written), not only where to read it."""
        ticket = int(spool.stem)
        self.pending[ticket] = (spool, done)
        if not self.alive:
            self._take_over()
            return
        try:
            self.conn.send((ticket, str(spool), pickled))
        except OSError:
            self._died()

    def collect(self, timeout: float | None = 0.0) -> bool:
        """Take in the steps the worker has answered (and its start), waiting up to ``timeout`` for
        the first message (None: until one comes). Returns whether a step was answered."""
        got = False
        while self.pending or (self.alive and not self.ready):
            if not self.alive:
                self._take_over()
                return True
            try:
                if not self.conn.poll(timeout):
                    return got
                ticket, result_file, error = self.conn.recv()
            except (EOFError, OSError):
                self._died()
                continue
            timeout = 0.0
            if ticket == _READY:
                self.ready = True
                continue
            if result_file is None and error is None:  # built here (see drain) before the worker came to it
                continue
            result = None
            if result_file is not None:
                with open(result_file, "rb") as f:
                    result = pickle.load(f)
                os.unlink(result_file)
            self.pending[ticket][0].with_suffix(".taken").unlink(missing_ok=True)
            self._finished[ticket] = (result, error)
            self._deliver()
            got = True
        return got

    def _deliver(self) -> None:
        """Tell the owners of finished steps, in hand-off order (graphs and callbacks stay in step order)."""
        while self.pending:
            ticket = next(iter(self.pending))
            if ticket not in self._finished:
                return
            _, done = self.pending.pop(ticket)
            done(*self._finished.pop(ticket))

    def _build_here(self, ticket: int, taken: Path) -> None:
        try:
            self._finished[ticket] = (complete_spooled(taken), None)
        except Exception:
            self._finished[ticket] = (None, traceback.format_exc())
        finally:
            taken.unlink(missing_ok=True)

    def _steal(self, ticket: int) -> bool:
        """Build a step here if the worker has not taken it yet."""
        taken = _claim(self.pending[ticket][0])
        if taken is not None:
            self._build_here(ticket, taken)
            self._deliver()
        return taken is not None

    def _died(self) -> None:
        self.alive = False
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        warnings.warn(f"torch-gprof: the step worker (pid {self.proc.pid}) stopped (exit status {code}); its "
                      f"{len(self.pending)} unsaved step(s) and the profile's later steps are built here, on the "
                      "training thread", RuntimeWarning, stacklevel=2)

    def _take_over(self) -> None:
        """A dead worker's unanswered steps, built in this process from their spool files (also the
        one it had taken and not finished), in order."""
        for ticket, (spool, _) in list(self.pending.items()):
            if ticket in self._finished:
                continue
            taken = _claim(spool) or spool.with_suffix(".taken")
            if taken.exists():
                self._build_here(ticket, taken)
            else:
                self._finished[ticket] = (None, f"its spool file {spool} is gone")
        self._deliver()

    def backlog(self) -> int:
        """Handed-off steps not built yet."""
        return sum(1 for t in self.pending if t not in self._finished)

    def work_or_wait(self) -> None:
        """The training thread would wait for the worker: build a step the worker has not taken
        instead (the oldest while the worker is still starting, else the newest while it builds an
        older one), or else wait a little for its next answer."""
        self.collect()
        waiting = [t for t in self.pending if t not in self._finished]
        if self.alive and waiting and (not self.ready or len(waiting) > 1) and \
                self._steal(waiting[0] if not self.ready else waiting[-1]):
            return
        self.collect(timeout=0.25)

    def drain(self, label: str = "torch-gprof") -> None:
        """Wait for every handed-off step (see :meth:`work_or_wait`); say so on stderr when it
        takes over a second."""
        t0 = time.monotonic()
        shown = 0.0
        while self.pending:
            self.work_or_wait()
            waited = time.monotonic() - t0
            if self.pending and waited > 1.0 and waited - shown >= 1.0:
                shown = waited
                print(f"{label}: saving profiled steps in the background, {len(self.pending)} left "
                      f"({waited:.0f} s)", file=sys.stderr, flush=True)

    def shutdown(self) -> None:
        """At exit (or when tests replace the worker): save what was handed off, then stop the worker."""
        if os.getpid() != self.owner:
            return
        if self.pending:
            self.drain("torch-gprof (exiting)")
        if self.alive:
            self.alive = False
            self.conn.close()
            if not self.ready:  # still importing torch, with nothing left to do (drain built it all)
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
        atexit.unregister(self.shutdown)


class StepQueue:
    """One profile's hand-off: a bounded number of steps in flight, errors named, drained at close."""

    def __init__(self, on_written: Callable[[StepResult], None], max_behind: int = 3) -> None:
        self.worker = StepWorker.shared()
        self.on_written = on_written
        #: when more than this many steps wait for the worker, ``prof.step()`` waits for it
        self.max_behind = max_behind
        self.in_flight = 0
        self._told_wait = False

    @property
    def usable(self) -> bool:
        return self.worker.alive

    def open_step(self, header: StepHeader) -> SpooledStep:
        return SpooledStep(self.worker.spool_path(), header)

    def submit(self, spool: SpooledStep, pickled: bool = False) -> None:
        """Queue a spooled step (``pickled``: see :meth:`StepWorker.submit`)."""
        self.in_flight += 1
        self.worker.submit(spool.path, lambda result, error: self._done(spool.step, result, error), pickled)
        worker = self.worker
        worker.collect()
        if worker.ready and worker.backlog() > self.max_behind:
            t0 = time.perf_counter()
            while worker.backlog() > self.max_behind:
                worker.work_or_wait()
            if not self._told_wait:
                self._told_wait = True
                warnings.warn(f"torch-gprof: prof.step() waited {time.perf_counter() - t0:.2f} s for the step worker, "
                              f"which was more than {self.max_behind} steps behind (building and writing a step "
                              "takes longer than training one here), building steps itself meanwhile; later waits "
                              "are not reported", RuntimeWarning,
                              stacklevel=8)  # the user's prof.step()

    def collect(self) -> None:
        """Take in what the worker has finished, without waiting."""
        if self.in_flight:
            self.worker.collect()

    def drain(self) -> None:
        if self.in_flight:
            self.worker.drain()

    def _done(self, step: int, result: StepResult | None, error: str | None) -> None:
        self.in_flight -= 1
        if result is not None:
            self.on_written(result)
        else:
            warnings.warn(f"torch-gprof: step {step} could not be saved:\n{error}", RuntimeWarning, stacklevel=2)


def _serve(fd: int, spool_dir: str, owner: int) -> None:
    """The worker's loop: one spooled step at a time, in order, until the training process (``owner``)
    closes; if it closed by dying, the worker then removes its spool directory. The owner comes from the
    command line, not ``os.getppid()``: a training process killed while its worker was still importing
    would otherwise leave the worker reading its new parent (the reaper) as its owner, alive."""
    try:
        _work(fd)
    finally:
        if not pid_alive(owner) or os.getppid() != owner:  # else it removes the directory itself
            shutil.rmtree(spool_dir, ignore_errors=True)


def _work(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(10)  # on a busy machine the training process comes first (and builds steps itself, see work_or_wait)
    import gc

    import torch

    import gprof.analyses

    gprof.analyses.registry()  # imports every analysis before the first step, not during it
    torch.set_num_threads(1)  # the worker's work is Python: leave the cores to training
    # Everything imported so far (torch: ~170k objects) lives as long as the worker: frozen, the full
    # collections that the steps' garbage triggers no longer scan it (a GPT-2-like step took 32 ms on
    # average instead of 24 ms, full collections ~70-95 ms each; docs/recording-facts.md).
    gc.freeze()
    conn = Connection(fd)
    try:
        conn.send((_READY, None, None))
    except OSError:  # gone: a closed one built its steps itself (see StepWorker.drain), a killed one's
        pass  # are still to build (their messages are still to read)
    while True:
        try:
            ticket, spool, pickled = conn.recv()
        except (EOFError, OSError):  # closed (reset when our answers for steps it built were unread)
            return
        taken = _claim(Path(spool))
        answer: tuple = (ticket, None, None)  # taken by the training process
        if taken is not None:
            try:
                result = complete_spooled(taken)
                result.graph = result.graph.shipped(result, pickled)
                out = f"{taken}.result"
                with open(out, "wb") as f:
                    pickle.dump(result, f, pickle.HIGHEST_PROTOCOL)
                answer = (ticket, out, None)
            except Exception:
                answer = (ticket, None, traceback.format_exc())
        try:
            conn.send(answer)
        except OSError:  # the training process is gone: go on with what it sent
            continue


#: The worker's command (``python -c``): importing ``_serve`` by the module's own name, not running it as
#: ``__main__`` (``python -m``), makes results pickle as this module's classes. It imports only the
#: hand-off, the builder, the store and the analyses (gprof/capture/__init__.py imports nothing).
_BOOT = """
import sys
from gprof.capture.worker import _serve
_serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
"""
