"""Atomic file writes: a file is replaced whole or not at all.

The new content goes to a temporary file beside the target (`.NAME.tmpPID`, so a killed
writer's leftovers can be told apart and swept), is flushed and fsynced, then renamed over the
target; the rename is made durable by syncing the folder. Whatever happens, the temporary file
does not stay behind (except after SIGKILL, which no code can catch).
"""

import os
from pathlib import Path


def write_atomically(path, write) -> None:
    """Call write(f) on a binary file that becomes `path` only once it is complete. Raises
    OSError (disk full, permissions); the previous `path`, if any, is then unchanged. A symbolic
    link stays: the file it points at is replaced. A device or a FIFO is not a file to replace
    (renaming over /dev/full would put a plain file in its place): it is written into."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        with open(path, "wb") as f:
            write(f)
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def output_problem(path, make_folders: bool = False) -> str:
    """Why a file could not be written at `path`, as far as can be told before the work that
    makes it ("" if nothing): it is a directory, a folder above it is a file, or (unless the
    writer makes the missing folders) its folder does not exist."""
    path = Path(path)
    if path.is_dir():
        return "is a directory"
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        return f"{above} is a file, not a folder"
    if not make_folders and not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    return ""


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not possible on every platform
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
