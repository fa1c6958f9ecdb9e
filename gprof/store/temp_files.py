"""Step files' temp files: created beside the step without following links, placed without replacing
another session's step, and removed when their writer died mid-step (gprof/store/step_file.py)."""
from __future__ import annotations

import os
import re
import secrets
import socket
import time
from pathlib import Path

#: ``.<step file name>.<host>.<pid>.<random>.tmp``: who writes it, so a later session can tell a dead
#: writer's leftover (``kill -9`` mid-write) from a live writer's file
_TEMP_RE = re.compile(r"^\.(?P<name>.+\.sqlite)\.(?P<host>[A-Za-z0-9-]*)\.(?P<pid>[0-9]+)\.[0-9a-f]+\.tmp$")
#: a temp file untouched this long is a dead writer's, whoever wrote it (a live writer keeps writing
#: to it; another host's pid cannot be checked)
STALE_TEMP_S = 3600.0


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64]


def create_temp(path: Path) -> Path:
    """A new temp file beside ``path``, created exclusively without following links, with mode
    0666 less the umask: the mode survives the rename, and readers of other users must be able to
    open the step as they can the tfevents marker (``mkstemp``'s 0600 locked them out)."""
    while True:
        tmp = path.parent / f".{path.name}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def place_new(tmp: Path, path: Path) -> bool:
    """Move ``tmp`` to ``path`` only if nothing is there (a hard link cannot replace a file, so two
    sessions racing for one name cannot overwrite each other). False: ``path`` was taken."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem: check, then rename
        if path.exists():
            return False
        os.replace(tmp, path)
        return True
    tmp.unlink()
    return True


def remove_stale_temp_files(directory: str | os.PathLike[str], max_age_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove the temp files of writers that died mid-step: this host's whose pid is gone, and any
    untouched for ``max_age_s``. A live writer's temp file is never touched. Returns what was removed."""
    removed: list[Path] = []
    host, now = _host_tag(), time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None and not (entry.name.startswith(".step") and entry.name.endswith(".tmp")):
            continue  # not a step temp file (an older writer's, without host and pid, goes by age only)
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            dead = m is not None and m["host"] == host and not pid_alive(int(m["pid"]))
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has ``pid`` (a dead writer's, or the step worker's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
