"""Child processes that stop with their parent: a stop signal (Ctrl-C, SIGTERM) to a command that runs others
(``dilnas-grid``) goes on to the child, which saves its checkpoint and ends; then the parent ends in one line."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from dilnas.utils.errors import Interrupted

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


def run_child(command: Sequence[str], resume_hint: str) -> int:
    """Run ``command`` and return its exit status. A stop signal received meanwhile is passed to the child,
    which is waited for (it saves its checkpoint and ends); then ``Interrupted`` says so with ``resume_hint``."""
    received: list[int] = []
    process = subprocess.Popen(list(command))

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if process.poll() is None:
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        status = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        name = signal.Signals(received[0]).name
        raise Interrupted(received[0], f"stopped by {name}; the runs saved their checkpoints; {resume_hint}")
    return status
