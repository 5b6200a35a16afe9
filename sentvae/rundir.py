"""A training run's output folder: one writer at a time, no run clobbered, metrics kept whole.

    with RunDir(out, resume=False, overwrite=False) as run:   # creates, locks, checks the folder
        run.log({"split": "train", ...})                      # one line of metrics.jsonl

- **One writer.** The folder is locked (an exclusive `flock` on OUT/.lock, which the kernel
  drops when the process dies, so a killed run never leaves a stale lock) for as long as the
  run writes. A second `sentvae train --out OUT` is refused with the holder's pid.
- **No clobbering.** A folder that already holds a run (last.pt, best.pt or metrics.jsonl) is
  continued with `resume`, or replaced with `overwrite` (the old last.pt and best.pt are removed
  when the new run starts writing, so the folder never mixes two runs); anything else is
  refused, naming both ways out.
- **Whole metrics.** A failed append (disk full, permissions) is one line, exit 1, and the
  file is cut back to its last whole line.
"""

import errno
import json
import os
from pathlib import Path

from sentvae.checkpoint import remove_stale_temporaries
from sentvae.errors import SentvaeError

try:
    import fcntl
except ImportError:             # not on Windows: there the folder is not locked
    fcntl = None

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")
LOCK = ".lock"
_held: dict[Path, "RunDir"] = {}     # folders this process has locked (re-entrant: CLI, then train())


class RunDir:
    def __init__(self, path, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self._lock_fd = None
        self._metrics = None
        self._outer = None

    # --- opening: create, lock, check
    def __enter__(self) -> "RunDir":
        held = _held.get(self._key())
        if held is not None:                 # this process holds it already (the CLI, then train())
            self._outer = held
            return held
        self._outer = None
        self._create()
        self._lock()
        try:
            self.check()                    # again, now that no one else can write here
            remove_stale_temporaries(self.path)
        except BaseException:
            self._unlock()
            raise
        _held[self._key()] = self
        return self

    def __exit__(self, *exc) -> None:
        if self._outer is not None:          # the outer `with` releases it
            return
        self.close_metrics()
        _held.pop(self._key(), None)
        self._unlock()

    def _key(self) -> Path:
        return self.path.resolve()

    def _create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SentvaeError(f"{self.path}: cannot create the output folder ({e.strerror})", 1) from None

    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise SentvaeError(f"{self.path}: cannot write there ({e.strerror})", 1) from None
        self._flock(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _flock(self, fd: int) -> None:
        """Take the exclusive lock on fd, or close fd and say who holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise SentvaeError(f"{self.path}: another sentvae train (pid {holder}) is writing this "
                                   "folder; wait for it to end, or use another --out") from None
            raise SentvaeError(f"{self.path}: cannot lock the folder ({e.strerror})", 1) from None

    def _probe_lock(self) -> None:
        """Refuse now if a live writer holds the folder (reads only: creates nothing)."""
        if fcntl is None or self._lock_fd is not None or self._key() in _held:
            return
        try:
            fd = os.open(self.path / LOCK, os.O_RDONLY)
        except OSError:
            return                            # no lock file: nobody has ever written here
        self._flock(fd)
        os.close(fd)                          # taken and dropped at once: free

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)       # closing drops the flock; the file stays, harmless
            self._lock_fd = None

    def existing(self) -> list[str]:
        return [n for n in RUN_FILES if (self.path / n).exists()]

    def check(self) -> None:
        """Refuse a folder holding a run unless resuming or overwriting (reads only; the check
        is made again under the lock)."""
        self._probe_lock()
        if self.resume:
            if not (self.path / "last.pt").exists():
                raise SentvaeError(f"--resume: {self.path / 'last.pt'} not found (nothing to resume)")
            return
        found = self.existing()
        if found and not self.overwrite:
            raise SentvaeError(f"{self.path}: already holds a run ({', '.join(found)}); continue it with "
                               "--resume, or replace it with --overwrite")

    def _clear_old_run(self) -> None:
        """--overwrite: the old run's files go when the new run starts writing its own (not
        before: a failure until then, e.g. writing the tokenizer, leaves the old run whole)."""
        for name in ("last.pt", "best.pt"):
            try:
                (self.path / name).unlink(missing_ok=True)
            except OSError as e:
                raise SentvaeError(f"{self.path / name}: cannot remove it for --overwrite ({e.strerror})", 1) from None

    # --- metrics.jsonl
    def open_metrics(self) -> None:
        """Start metrics.jsonl (append on resume; a new run replaces an old run's files)."""
        path = self.path / "metrics.jsonl"
        if not self.resume:
            self._clear_old_run()
        try:
            self._metrics = open(path, "a" if self.resume else "w", encoding="utf-8")
        except OSError as e:
            raise SentvaeError(f"{path}: cannot write ({e.strerror})", 1) from None

    def log(self, row: dict) -> None:
        """Append one JSON line, flushed; on failure cut the file back to its last whole line."""
        if self._metrics is None:
            return
        f = self._metrics
        try:
            end = f.tell()
            f.write(json.dumps(row) + "\n")
            f.flush()
        except OSError as e:
            self._metrics = None
            try:
                f.close()
            except OSError:
                pass
            try:
                os.truncate(self.path / "metrics.jsonl", end)
            except OSError:
                pass
            raise SentvaeError(f"{self.path / 'metrics.jsonl'}: cannot write ({e.strerror}); "
                               "the checkpoints already saved are unchanged", 1) from None

    def close_metrics(self) -> None:
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:
                pass
            self._metrics = None
