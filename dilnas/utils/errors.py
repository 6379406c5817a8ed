"""The exceptions that command-line entry points turn into one line: user errors (exit status 2) and runs
stopped by a signal after saving their checkpoint (exit status 128 + the signal number)."""

import signal
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (a file, a config value, an argument).

    Entry points print it as one line on stderr and exit with status 2, without a traceback.
    The message must name the file, field or value at fault and what is allowed.
    """


class InvalidFileError(UserError):
    """A file that cannot be used; lists every problem with its path inside the file."""

    what = "file"

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid {self.what}: " + "; ".join(problems))


class Interrupted(Exception):
    """A stop signal (SIGINT, SIGTERM, SIGUSR2) ended the command cleanly: one line, exit 128 + the signal."""

    def __init__(self, signum: int, message: str):
        self.signum = signum
        super().__init__(message)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class RunInterrupted(Interrupted):
    """A stop signal ended the run after its checkpoint was saved; ``resume=true`` continues it."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(
            signum,
            f"stopped by {signal.Signals(signum).name} at step {step}; saved {checkpoint}; "
            "run the same command with resume=true to continue",
        )


def os_reason(error: OSError) -> str:
    """Why the file system refused, in words (``FileExistsError`` from a mkdir: a file is in the way)."""
    if isinstance(error, FileExistsError | NotADirectoryError):
        return "a file is in the way where a directory is needed"
    return error.strerror or str(error)


def one_line(error: BaseException) -> str:
    """The message of a UserError, also when a DataLoader worker raised it: PyTorch then re-raises it in the
    main process with the worker's traceback folded in ("Caught DataError in DataLoader worker process 0.
    Original Traceback ... dilnas.data.common.DataError: <message>"); the message follows the last mention
    of the error's class."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    cls = type(error)
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    found = text.rfind(marker)
    return text[found + len(marker) :].strip() if found >= 0 else text
