"""Atomically written files get the mode a plain open(..., "w") gives a new file (0666 less the umask), not
the private 0600 of the temporary file they were written to."""

import os
import stat

import pytest

from metaexercise import atomic


@pytest.fixture
def umask():
    """Set the umask for one test; the original is restored afterwards."""
    original = os.umask(0o022)
    os.umask(original)
    yield os.umask
    os.umask(original)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027, 0o000])
def test_every_writer_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    plain = tmp_path / "plain.txt"
    with open(plain, "w", encoding="utf-8") as fh:
        fh.write("x")
    assert _mode(plain) == expected
    atomic.write_text(tmp_path / "a.txt", "text")
    atomic.write_bytes(tmp_path / "b.bin", b"bytes")
    with atomic.atomic_path(tmp_path / "sub" / "c.csv") as tmp:
        tmp.write_text("a,b\n", encoding="utf-8")
    with atomic.atomic_path(tmp_path / "d.txt") as tmp:  # a writer that replaces the temporary file
        tmp.unlink()
        tmp.write_text("new", encoding="utf-8")
    for name in ("a.txt", "b.bin", "sub/c.csv", "d.txt"):
        assert _mode(tmp_path / name) == expected, name
    assert atomic.new_file_mode() == expected
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_an_overwritten_file_gets_the_mode_too(tmp_path, umask):
    target = tmp_path / "out.txt"
    umask(0o077)
    atomic.write_text(target, "one")
    assert _mode(target) == 0o600
    umask(0o022)
    atomic.write_text(target, "two")
    assert _mode(target) == 0o644
    assert target.read_text(encoding="utf-8") == "two"


def test_a_failed_write_leaves_nothing(tmp_path, umask):
    umask(0o022)
    with pytest.raises(RuntimeError), atomic.atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_replaced_folder_gets_the_umask_mode_and_keeps_a_chosen_one(tmp_path, umask, mask):
    """`replace_folder` builds in a private staging folder; the folder swapped in gets the mode `mkdir` would
    give (0777 less the umask), or the previous folder's own mode when one existed; its files the mode of a
    newly written file."""
    umask(mask)
    target = tmp_path / "results"

    def build(folder):
        (folder / "a.csv").write_text("a\n", encoding="utf-8")

    atomic.replace_folder(target, build)
    assert _mode(target) == 0o777 & ~mask
    assert _mode(target / "a.csv") == 0o666 & ~mask
    os.chmod(target, 0o750)
    atomic.replace_folder(target, build)
    assert _mode(target) == 0o750
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
