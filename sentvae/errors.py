"""The one exception type for problems the user can fix (bad input, bad options, bad files)."""


class SentvaeError(Exception):
    """A user-facing failure: the CLI prints its message as one line and exits with `exit_code`.

    exit_code 2 means bad usage or bad input; 1 means a failure at run time (disk full,
    non-finite loss). The message names the file, line or option at fault.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving last.pt; the CLI exits 130."""

    def __init__(self, step: int, path):
        super().__init__(f"interrupted at step {step}; saved {path}")
        self.step = step
        self.path = path


def first_line(e: BaseException) -> str:
    """An exception's first line, cut to 120 characters: what a one-line message quotes of it."""
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else type(e).__name__
