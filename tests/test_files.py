"""saliency_core.files in one process: the claim, what counts as abandoned, and one-line write errors.
(Real concurrent and killed writers: tests/test_concurrent_writes.py.)"""
from __future__ import annotations

import errno
import os

import pytest

from saliency_core import files


def _write(target, text: str, overwrite: bool = False) -> None:
    with files.staged_folder(target, overwrite) as folder:
        (folder / "a.txt").write_text(text)


def _hidden(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_claim_refuses_a_folder_or_a_file_that_appeared_and_overwrite_replaces_it_whole(tmp_path):
    target = tmp_path / "x"
    _write(target, "one")
    with pytest.raises(files.TargetExistsError, match="already exists"):
        _write(target, "two")
    assert (target / "a.txt").read_text() == "one"
    _write(target, "three", overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"] and (target / "a.txt").read_text() == "three"
    plain = tmp_path / "y"
    plain.write_text("a file")
    with pytest.raises(files.TargetExistsError):
        _write(plain, "four")
    assert plain.read_text() == "a file" and _hidden(tmp_path) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with files.staged_folder(tmp_path / "x"):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_work_folder_is_stale_only_when_no_one_holds_its_lock(tmp_path):
    work = tmp_path / ".x.0123abcd.staging"
    (work / "result").mkdir(parents=True)
    held = files._lock(work, wait=False)
    assert held is not None
    try:
        assert files.clean_stale(tmp_path / "x") == [] and work.exists(), "a live writer's folder was removed"
    finally:
        os.close(held)
    other = tmp_path / ".xy.0123abcd.staging"  # another target's: never touched
    other.mkdir()
    assert files.clean_stale(tmp_path / "x") == [work]
    assert _hidden(tmp_path) == [other.name]


def test_without_flock_nothing_is_judged_stale(tmp_path, monkeypatch):
    work = tmp_path / ".x.0123abcd.staging"
    work.mkdir()
    monkeypatch.setattr(files, "fcntl", None)
    assert files.clean_stale(tmp_path / "x") == [] and work.exists()
    _write(tmp_path / "x", "one")
    assert (tmp_path / "x" / "a.txt").read_text() == "one"


def test_a_stale_folder_that_holds_the_moved_aside_result_puts_it_back(tmp_path):
    work = tmp_path / ".x.0123abcd.staging"
    (work / "old-1").mkdir(parents=True)
    (work / "old-1" / "a.txt").write_text("old")
    (work / "result").mkdir()
    files.clean_stale(tmp_path / "x")
    assert (tmp_path / "x" / "a.txt").read_text() == "old" and _hidden(tmp_path) == []


@pytest.mark.parametrize("error, reason", [
    (OSError("110592 requested and 76768 written"), "No space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), os.strerror(errno.EDQUOT)),
    (OSError("encoder error -2"), "encoder error -2"),
])
def test_write_errors_are_one_line_naming_the_file(error, reason):
    err = files.write_error(error, "o/x/mask.npy")
    assert str(err) == f"could not write o/x/mask.npy: {reason}"
    assert isinstance(err, OSError)


def test_atomic_write_replaces_the_file_whole_and_a_failed_write_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "state.bin"
    files.atomic_write_bytes(target, b"one")  # the folder is made
    assert target.read_bytes() == b"one"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    files.atomic_write_text(target, "two")
    assert target.read_text() == "two" and synced, "the bytes reach the disk before the rename publishes them"

    def half(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(files.WriteError) as caught:
        files.atomic_write(target, half, shown="out/state.bin")
    assert str(caught.value) == "could not write out/state.bin: No space left on device"
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "two" and sorted(p.name for p in target.parent.iterdir()) == ["state.bin"]

    with pytest.raises(KeyboardInterrupt):  # not an OSError: raised as it is, the temporary file still removed
        files.atomic_write(target, lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.bin"]


def test_the_package_writes_files_through_one_atomic_writer():
    """Every write-to-a-temporary-name-then-rename in the package is files.atomic_write (or the staged folder's
    claim): no module renames a file of its own into place."""
    from pathlib import Path

    root = Path(files.__file__).resolve().parent
    own = []
    for path in root.rglob("*.py"):
        if path.name == "files.py":
            continue
        text = path.read_text()
        if "os.replace(" in text or ".tmp\"" in text or "mkstemp(" in text or "tmp.replace(" in text:
            own.append(str(path.relative_to(root)))
    allowed = {"train/runlog.py"}  # moves an earlier run's files aside into previous-<n>/, whole files as they are
    assert set(own) <= allowed, f"atomic writers outside saliency_core/files.py: {sorted(set(own) - allowed)}"


def test_an_atomically_written_file_has_an_ordinary_file_s_permissions(tmp_path):
    """The temporary file is created as open() would (0666 less the umask), not 0600 as mkstemp makes it: an
    explanation written on a shared machine stays readable by the group, as before."""
    mask = os.umask(0o022)
    try:
        files.atomic_write_bytes(tmp_path / "a.bin", b"x")
        (tmp_path / "b.bin").write_bytes(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644
