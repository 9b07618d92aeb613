"""Write outputs whole or not at all.

One file (`atomic_path`, `write_text`, `write_bytes`): write to a temporary file beside the target, then
rename. The temporary file is created by `tempfile.mkstemp`, which makes it private (mode 0600); before the
rename it gets the mode a plain ``open(target, "w")`` gives a new file, 0666 less the process's umask, so
outputs are as readable as any other file the user writes.

A folder of files that belong together (`replace_folder`, `recover_folder`; `results/`, `extraction/` after
an import): build the complete new folder beside the target, then swap the two in one atomic step, so a
crash at any moment leaves the previous set or the new set, never a mix (see `replace_folder`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status);
    elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path in the target's folder; on success it replaces `target` atomically, with the
    mode of a newly written file (`new_file_mode`), not the temporary file's private 0600."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding, newline="\n")


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


# ------------------------------------------------------------------------------------------ whole folders
#: The names `replace_folder` gives its work beside the target `NAME`, in the target's parent folder:
#: ``.NAME.new-TAG`` while it is being built (incomplete), ``.NAME.ready-TAG`` once complete (renamed from
#: ``.new-`` after every file was written and synced: the rename is the completion mark), and
#: ``.NAME.old-TAG`` for the previous folder moved aside where an atomic exchange is not available.
_LEFTOVER = re.compile(r"\.(?P<base>.+)\.(?P<state>new|ready|old)-(?P<tag>[0-9a-f]+)")
_RENAME_EXCHANGE, _AT_FDCWD = 2, -100  # <linux/fs.h>, <fcntl.h>
_NOT_SUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def leftover_base(name: str) -> str | None:
    """The target's name when `name` is something `replace_folder` left beside it, else None."""
    match = _LEFTOVER.fullmatch(name)
    return match["base"] if match else None


@lru_cache(maxsize=1)
def _renameat2():
    """libc's renameat2 (Linux, glibc >= 2.28), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the two existing paths `a` and `b` in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`, see
    renameat2(2)). False, with nothing changed, where the system or the filesystem cannot do it."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NOT_SUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems cannot sync a folder; the data files were synced
        if not directory or exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _sync_tree(folder: Path) -> None:
    """Write every file under `folder`, and the folders themselves, to disk (a power cut after the swap
    must not leave empty files behind a complete-looking folder)."""
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                _fsync(path)
        _fsync(Path(dirpath), directory=True)


def _link_or_copy(src: str, dst: str) -> None:
    """Carry a file over unchanged: a hard link (no copy, same bytes), or a copy where links fail (another
    filesystem, a filesystem without links)."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _leftovers(target: Path) -> dict[str, list[Path]]:
    """What earlier `replace_folder(target)` calls left beside `target`, by state (new, ready, old)."""
    out: dict[str, list[Path]] = {"new": [], "ready": [], "old": []}
    if not target.parent.is_dir():
        return out
    for entry in target.parent.iterdir():
        match = _LEFTOVER.fullmatch(entry.name)
        if match and match["base"] == target.name:
            out[match["state"]].append(entry)
    return out


def recover_folder(target: str | os.PathLike) -> None:
    """Finish or undo a `replace_folder(target)` that was interrupted (a crash, a kill, a full disk), so that
    `target` is whole, and remove what it left behind:

    * ``target`` missing and a complete new folder (``.NAME.ready-``) present: the crash came between moving
      the old folder aside and moving the new one in; the new one is moved in (the old one removed).
    * ``target`` missing, no complete new folder, the old one moved aside (``.NAME.old-``): it goes back.
    * anything else left beside ``target`` (an incomplete ``.new-`` folder, a ``.ready-`` folder that never
      replaced ``target`` or that holds the previous set after an exchange, an ``.old-`` folder) is removed.

    Also does the same for each folder inside `target` that a `replace_folder` call left work beside
    (e.g. `results/replica/` within `results/`)."""
    target = Path(target)
    found = _leftovers(target)
    if not target.exists() and not target.is_symlink():
        ready = sorted(found["ready"], key=lambda p: p.stat().st_mtime_ns)
        if ready:
            os.rename(ready[-1], target)
            found["ready"].remove(ready[-1])
        elif found["old"]:
            old = sorted(found["old"], key=lambda p: p.stat().st_mtime_ns)[-1]
            os.rename(old, target)
            found["old"].remove(old)
    for paths in found.values():
        for path in paths:
            _remove(path)
    if target.is_dir() and not target.is_symlink():
        inner = {leftover_base(e.name) for e in target.iterdir()} - {None}
        for base in sorted(inner):
            recover_folder(target / base)


def _sibling(target: Path, state: str, tag: str) -> Path:
    return target.parent / f".{target.name}.{state}-{tag}"


def _new_folder(target: Path) -> tuple[Path, str]:
    while True:
        tag = secrets.token_hex(4)
        path = _sibling(target, "new", tag)
        try:
            os.mkdir(path, 0o700)
            return path, tag
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue


def replace_folder(target: str | os.PathLike, build: Callable[[Path], None], *,
                   keep: Callable[[str], bool] = lambda name: False) -> Path:
    """Replace the folder `target` as a whole: after a crash at any moment, `target` holds either all of its
    previous content or all of the new one, and the next call (or `recover_folder`) removes what was left.

    `build(folder)` writes the new content into an empty folder beside `target` (same parent, so the final
    rename is atomic). Entries of the current `target` for which `keep(name)` is true (e.g. `replica/`
    inside `results/`) are carried into the new folder unchanged, by hard link (a copy where links are not
    possible), unless `build` wrote the same name. Every file is synced to disk, the folder is renamed from
    ``.NAME.new-`` to ``.NAME.ready-`` (complete), then swapped with `target` in one step by
    `exchange` (Linux renameat2 with RENAME_EXCHANGE) and the previous content removed. Where an exchange
    is not possible, the previous folder is renamed to ``.NAME.old-`` and the new one to `target`; a crash
    between the two renames leaves no `target`, which `recover_folder` completes from the ready folder.

    The new folder gets the previous folder's mode (a new one: what `mkdir` gives under the umask). A
    `target` that is a symbolic link is resolved: the folder it points to is replaced. Returns `target`."""
    target = Path(target)
    if target.is_symlink():
        target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    exists = target.is_dir()
    if target.exists() and not exists:
        raise NotADirectoryError(errno.ENOTDIR, "not a folder; move the file away", str(target))
    mode = stat.S_IMODE(target.stat().st_mode) if exists else 0o777 & ~_umask()
    staging, tag = _new_folder(target)
    try:
        build(staging)
        if exists:
            for entry in sorted(target.iterdir()):
                if leftover_base(entry.name) is None and keep(entry.name) and not os.path.lexists(staging / entry.name):
                    _carry(entry, staging / entry.name)
        os.chmod(staging, mode)
        _sync_tree(staging)
        ready = _sibling(target, "ready", tag)
        os.rename(staging, ready)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync(target.parent, directory=True)
    if not exists:
        os.rename(ready, target)
    elif exchange(ready, target):
        shutil.rmtree(ready)  # now the previous content
    else:
        old = _sibling(target, "old", tag)
        os.rename(target, old)
        os.rename(ready, target)
        shutil.rmtree(old)
    _fsync(target.parent, directory=True)
    return target
