"""Write files and output folders whole or not at all: the package's one place for atomic writes.

A file (:func:`atomic_write`, :func:`atomic_write_bytes`, :func:`atomic_write_text`) is written to a temporary
name beside it, flushed to disk and renamed over the target, so a reader sees the old file or the new one,
never half of one; a failed write removes the temporary file and raises a one-line :class:`WriteError`.

An output folder (:func:`staged_folder`) is written whole the same way. A writer stages its files in a hidden work folder beside the target, ``.<name>.<hex>.staging/result/``, and
holds an exclusive ``flock`` on the work folder for as long as it lives (the kernel drops the lock when the
process dies, however it dies). At the end ``result/`` is renamed onto the target, which claims it atomically:
the rename fails when another writer's result got there first (a non-empty folder), so without ``overwrite``
the slower writer is refused and nothing of the faster one is touched. With ``overwrite`` the slower writer
moves what is there into its work folder (``old-<n>``) and tries again: the target always holds one writer's
complete result, never a mix.

Every write first removes the work folders of the same target that no live process holds (``clean_stale``):
what a killed writer left. When such a writer died between moving the old result aside and renaming its own
in, the old result is put back. Where ``flock`` is not available (Windows, some network filesystems) nothing
is judged stale and nothing is removed.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no folder is ever judged abandoned
    fcntl = None  # type: ignore[assignment]

STAGING = ".staging"
DONE = ".done"
MAX_CLAIMS = 50  # overwrite: how often a writer moves another writer's fresh result aside before giving up
_TAKEN = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR}  # rename's answers when the target is there
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's message when the disk fills mid-array


class TargetExistsError(FileExistsError):
    """The target appeared while the result was being written, and overwriting was not asked for."""


class WriteError(OSError):
    """A file could not be written; ``str()`` is the one line (``could not write x/mask.npy: No space ...``)."""

    def __str__(self) -> str:
        return str(self.strerror)


def write_error(exc: OSError, shown: str | Path) -> WriteError:
    """``exc`` as one line naming ``shown`` (the file as the user knows it, not its staging path).

    numpy reports a short write (a full disk, a quota) with no errno, as ``110592 requested and 76768
    written``; it reads as the full disk it almost always is."""
    text = exc.strerror or str(exc)
    code = errno.ENOSPC if exc.errno is None and _SHORT_WRITE.search(text) else exc.errno
    reason = os.strerror(code) if code else text
    return WriteError(code, f"could not write {shown}: {reason}")


def atomic_write(path: str | Path, write: Callable[[Path], None], shown: str | Path | None = None) -> Path:
    """Write ``path`` whole: ``write(tmp)`` fills a temporary file beside it, which is flushed to disk and renamed
    onto ``path``. On any error the temporary file is removed; an ``OSError`` (full disk, no permission) becomes a
    :class:`WriteError` naming ``shown`` (the file as the user knows it; default ``path``). Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, shown if shown is not None else path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, shown: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` whole (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), shown)


def atomic_write_text(path: str | Path, text: str, shown: str | Path | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), shown)


def _new_temp_file(path: Path) -> Path:
    """An empty new file ``.<name>.<hex>.tmp`` beside ``path``, created with the permissions an ordinary new file
    gets (0666 less the umask; ``tempfile.mkstemp`` would make it 0600, and so the published file)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to disk (so that the rename never publishes a file whose bytes a crash loses)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_folder(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """An empty private folder to write a result into; when the block ends without error it becomes
    ``target`` in one rename (see the module's docstring). Raises :class:`TargetExistsError` when ``target``
    is there by then and ``overwrite`` is false. The work folder is removed in every case."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    work, lock = _new_work_folder(target)
    try:
        result = work / "result"
        result.mkdir()
        yield result
        _claim(result, target, overwrite, work)
    finally:
        _abandon(work, target)
        if lock is not None:
            os.close(lock)


def clean_stale(target: str | Path) -> list[Path]:
    """Remove the work folders of ``target`` that no live writer holds (a killed writer's), putting back an
    old result that such a writer had moved aside when ``target`` is missing. Returns the folders removed."""
    target = Path(target)
    pattern = _work_pattern(target.name)
    removed = []
    try:
        entries = [Path(e.path) for e in os.scandir(target.parent)
                   if pattern.match(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for work in entries:
        lock = _lock(work, wait=False)
        if lock is None:  # a live writer holds it (or nobody can tell here)
            continue
        try:
            _abandon(work, target)
            removed.append(work)
        finally:
            os.close(lock)
    return removed


def _work_pattern(name: str) -> re.Pattern[str]:
    """The names of ``name``'s work folders: ``.<name>.<8 hex>.staging`` or ``.done``, and the
    ``.<name>.<8 chars>`` staging folders that writers before the locks left behind."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:[0-9a-f]{{8}}(?:{re.escape(STAGING)}|{re.escape(DONE)})"
                      rf"|[a-z0-9_]{{8}})$")


def _new_work_folder(target: Path) -> tuple[Path, int | None]:
    """A fresh work folder beside ``target``, locked by this process (lock None where flock is unavailable).
    A cleaner may remove it between mkdir and lock (it is not held yet): then another is made."""
    while True:
        work = target.parent / f".{target.name}.{secrets.token_hex(4)}{STAGING}"
        try:
            work.mkdir()
        except FileExistsError:
            continue
        lock = _lock(work, wait=True)
        if lock is None:
            if work.is_dir():
                return work, None
            continue
        try:
            if os.path.samestat(os.fstat(lock), os.stat(work)):
                return work, lock
        except OSError:
            pass
        os.close(lock)


def _lock(folder: Path, wait: bool) -> int | None:
    """A descriptor holding an exclusive flock on ``folder``; None when another process holds one (and
    ``wait`` is false), the folder is gone, or flock is not available here."""
    if fcntl is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def _claim(result: Path, target: Path, overwrite: bool, work: Path) -> None:
    """Rename ``result`` onto ``target``, which must not hold a result: refused (TargetExistsError) unless
    ``overwrite``, which moves what is there into ``work`` and tries again."""
    for attempt in range(1, MAX_CLAIMS + 1):
        try:
            os.rename(result, target)
            return
        except OSError as exc:
            if exc.errno not in _TAKEN:
                raise
        if not overwrite:
            raise TargetExistsError(errno.EEXIST, f"{target} already exists")
        _move_aside(target, work / f"old-{attempt}")
    raise OSError(errno.EBUSY, f"{target} was replaced by other writers {MAX_CLAIMS} times; gave up")


def _move_aside(target: Path, aside: Path) -> None:
    """Move ``target`` to ``aside`` (nothing to do when another writer moved it first)."""
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        pass


def _abandon(work: Path, target: Path) -> None:
    """Remove the work folder ``work``; when ``target`` is missing, first put back the result last moved
    aside into it (a writer died, or failed, between moving the old result aside and renaming its own in)."""
    if work.name.endswith(STAGING):
        olds = sorted(work.glob("old-*"), key=lambda p: int(p.name.split("-")[1]))
        if olds and not os.path.lexists(target):
            try:
                os.rename(olds[-1], target)
            except OSError:
                pass  # another writer's result got there meanwhile
        done = work.with_name(work.name[: -len(STAGING)] + DONE)
        try:  # renamed first, so that a kill during the removal never leaves an 'old-<n>' to put back
            os.rename(work, done)
            work = done
        except OSError:
            pass
    shutil.rmtree(work, ignore_errors=True)
