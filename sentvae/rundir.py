"""A training run's output folder: one writer at a time, no run clobbered, metrics kept whole.

    with RunDir(out, resume=False, overwrite=False) as run:   # creates, locks, checks the folder
        run.log({"split": "train", ...})                      # one line of metrics.jsonl

- **One writer.** The folder is locked (an exclusive `flock` on OUT/.lock, which the kernel
  drops when the process dies, so a killed run never leaves a stale lock) for as long as the
  run writes. A second `sentvae train --out OUT` is refused with the holder's pid.
- **No clobbering.** A folder that already holds a run (last.pt, best.pt or metrics.jsonl) is
  continued with `resume`, or replaced with `overwrite`; anything else is refused, naming both
  ways out.
- **Nothing lost before a run is known to start.** A new run (`start`) first moves the run
  files already there (last.pt, best.pt, metrics.jsonl, tokenizer.model) into OUT/.replaced,
  so the folder never mixes two runs; they are deleted only once the new run has saved its
  first last.pt (`committed`). Any failure before that (an exception, a non-finite loss, a
  second Ctrl-C) removes what the new run wrote and moves them back: the folder is left as it
  was found, and a folder this run created is removed again. A run killed before that point
  (SIGKILL) leaves OUT/.replaced behind: the next `sentvae train --out OUT` puts it back first
  (`check`) and says so.
- **Whole metrics.** A failed append (disk full, permissions) is one line, exit 1, and the
  file is cut back to its last whole line.
"""

import errno
import json
import os
import shutil
from pathlib import Path

from sentvae.atomic import write_atomically
from sentvae.checkpoint import SET_ASIDE, remove_stale_temporaries
from sentvae.errors import SentvaeError

try:
    import fcntl
except ImportError:             # not on Windows: there the folder is not locked
    fcntl = None

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")
KEPT = (*RUN_FILES, "tokenizer.model")     # what a new run sets aside until its first checkpoint
LOCK = ".lock"
MOVED = "moved.json"                        # in SET_ASIDE: the names moved there, written first
GONE = SET_ASIDE + ".gone"                  # a committed run's SET_ASIDE, while it is deleted
_held: dict[Path, "RunDir"] = {}     # folders this process has locked (re-entrant: CLI, then train())


class RunDir:
    def __init__(self, path, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.resume, self.overwrite = resume, overwrite
        self._lock_fd = None
        self._lock_was: bytes | None = None  # .lock's content before this run took it (None: no file)
        self._made: list[Path] = []          # the folders this run created, deepest first
        self._metrics = None
        self._outer = None
        self._started = False                # start() called: the run writes here
        self.pending = False                 # started, no last.pt saved yet: a failure rolls back
        self.set_aside: list[str] = []       # the run files moved to SET_ASIDE by start()
        self.recovered = ""                  # what check() put right after a killed run, if anything

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
            self._leave_as_found()
            self._unlock()
            raise
        _held[self._key()] = self
        return self

    def __exit__(self, *exc) -> None:
        if self._outer is not None:          # the outer `with` releases it
            return
        self.close_metrics()
        try:
            if self.pending:
                self._roll_back()
            elif exc[0] is not None and not self._started:    # refused before writing (a resume
                self._leave_as_found()                         # whose data does not fit, ...)
        finally:
            _held.pop(self._key(), None)
            self._unlock()

    def _key(self) -> Path:
        return self.path.resolve()

    def _create(self) -> None:
        missing, p = [], self.path.absolute()
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SentvaeError(f"{self.path}: cannot create the output folder ({e.strerror})", 1) from None
        self._made = self._made or missing

    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self.path / LOCK
        for _ in range(5):
            was = _read_or_none(path)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise SentvaeError(f"{self.path}: cannot write there ({e.strerror})", 1) from None
            self._flock(fd)
            # a failed run removes the .lock it made: one opened just before that is locked in
            # vain (no one else would see it), so lock the file that is there now
            if _same_file(fd, path):
                break
            os.close(fd)
            self._create()
        self._lock_was = was
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

    def _refuse_a_file(self) -> None:
        """--out is a file, or below one: said before any work (the folder cannot be made)."""
        above = next((p for p in (self.path, *self.path.parents) if p.exists()), None)
        if above is not None and not above.is_dir():
            what = "is a file, not a folder" if above == self.path else f"{above} is a file, not a folder"
            raise SentvaeError(f"--out {self.path}: cannot create the output folder ({what})")

    def existing(self) -> list[str]:
        return [n for n in RUN_FILES if (self.path / n).exists()]

    def check(self) -> None:
        """Refuse a folder holding a run unless resuming or overwriting (the check is made again
        under the lock). Reads only, unless a killed run left files set aside: they are put back
        first (under the lock) and `recovered` says so."""
        self._refuse_a_file()
        self._probe_lock()
        self.recover()
        if self.resume:
            if not (self.path / "last.pt").exists():
                raise SentvaeError(f"--resume: {self.path / 'last.pt'} not found (nothing to resume)")
            return
        found = self.existing()
        if found and not self.overwrite:
            raise SentvaeError(f"{self.path}: already holds a run ({', '.join(found)}); continue it with "
                               "--resume, or replace it with --overwrite")

    # --- a new run: set the old one aside, commit, or roll back
    def start(self, tokenizer) -> None:
        """Begin writing the run: a new run sets the run files there aside and writes
        tokenizer.model; then metrics.jsonl is started (appended to on resume)."""
        self._started = True
        if not self.resume:
            self._set_aside()
            path = self.path / "tokenizer.model"
            try:
                tokenizer.save(path)
            except OSError as e:
                raise SentvaeError(f"{path}: cannot write ({e.strerror}); {self.as_found()}", 1) from None
        self.open_metrics()

    def _set_aside(self) -> None:
        """Move the run files here into SET_ASIDE, their names written there first (so that
        putting them back, even after a kill halfway, knows which files are the old run's)."""
        aside = self.path / SET_ASIDE
        names = [n for n in KEPT if os.path.lexists(self.path / n)]
        self.pending = True
        try:
            aside.mkdir()
            write_atomically(aside / MOVED, lambda f: f.write(json.dumps(names).encode()))
            for n in names:
                os.replace(self.path / n, aside / n)
        except OSError as e:
            raise SentvaeError(f"{aside}: cannot set the run there aside ({e.strerror}); "
                               "nothing was changed", 1) from None
        self.set_aside = names

    def as_found(self) -> str:
        """What a failure now leaves, for its message."""
        if self.set_aside:
            return f"{self.path} is left as it was (the run it held is kept)"
        return "nothing was saved"

    def committed(self) -> None:
        """The new run has saved its first last.pt: the files set aside are deleted for good."""
        if not self.pending:
            return
        try:
            os.replace(self.path / SET_ASIDE, self.path / GONE)   # one step: no half-deleted old run
        except OSError as e:
            raise SentvaeError(f"{self.path / SET_ASIDE}: cannot remove the replaced run ({e.strerror})", 1) from None
        self.pending = False
        shutil.rmtree(self.path / GONE, ignore_errors=True)

    def _roll_back(self) -> None:
        """A new run failed before its first checkpoint: its files go, the set-aside ones come
        back, and .lock and the folders this run created are as they were."""
        self.pending = False
        try:
            put_back(self.path)
        except OSError as e:
            raise SentvaeError(f"{self.path / SET_ASIDE}: cannot put the run set aside there back ({e.strerror}); "
                               f"the next `sentvae train --out {self.path}` does it", 1) from None
        self._leave_as_found()

    def _leave_as_found(self) -> None:
        """.lock as it was before this run took it (none: removed), and the folders this run
        created removed (if empty)."""
        try:
            if self._lock_was is None:
                (self.path / LOCK).unlink(missing_ok=True)     # still locked by us: see _lock
            elif self._lock_fd is not None:
                os.ftruncate(self._lock_fd, 0)
                os.pwrite(self._lock_fd, self._lock_was, 0)
            for d in self._made:
                d.rmdir()
        except OSError:
            pass

    def recover(self) -> str:
        """Put back what a run killed before its first checkpoint set aside (under the lock; a
        live writer's folder is refused); -> what was done ("" for nothing), also kept in
        `recovered`."""
        if not any(os.path.lexists(self.path / n) for n in (SET_ASIDE, GONE)):
            return ""
        mine = self._lock_fd is None and self._key() not in _held
        if mine:
            self._lock()
        try:
            names = put_back(self.path)
        finally:
            if mine:
                self._unlock()
        if names is not None:
            self.recovered = (f"{self.path}: put back the run that a killed `sentvae train` had set aside "
                              f"({', '.join(names)}) before saving a checkpoint of its own" if names else
                              f"{self.path}: removed what a killed `sentvae train` wrote before its first checkpoint")
        return self.recovered

    # --- metrics.jsonl
    def open_metrics(self) -> None:
        """Start metrics.jsonl (append on resume)."""
        path = self.path / "metrics.jsonl"
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


def put_back(folder) -> list[str] | None:
    """Undo an uncommitted new run in `folder`: delete its run files and move those it set
    aside back; -> their names, or None if nothing was pending. Safe to repeat after a kill
    halfway: the list of moved names is read from SET_ASIDE/MOVED, never guessed."""
    folder = Path(folder)
    shutil.rmtree(folder / GONE, ignore_errors=True)      # a committed run's: finish deleting
    aside = folder / SET_ASIDE
    if not aside.is_dir():
        return None
    try:
        moved = json.loads((aside / MOVED).read_text())
    except (OSError, ValueError):        # killed before writing it: nothing was moved, nor written
        shutil.rmtree(aside)
        return None
    for n in KEPT:
        if os.path.lexists(aside / n):
            os.replace(aside / n, folder / n)
        elif n not in moved:
            (folder / n).unlink(missing_ok=True)          # the new run's own
    shutil.rmtree(aside)
    return moved


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
