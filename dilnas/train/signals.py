"""Graceful stops for long runs: SIGINT (Ctrl-C), SIGTERM and SIGUSR2 become a request that the training loop
honours at the next step boundary, after it has saved its checkpoint.

SIGUSR2 is what SLURM sends before a time limit (``--signal=USR2@90``) and what submitit uses for
preemption. Once the checkpoint is saved, the signal goes to whoever handled it before the loop started:

* submitit's handler checkpoints its job and requeues it; the requeued job runs in the same run directory
  and, with ``resume=true``, continues from the checkpoint;
* a handler that returns (submitit ignores SIGTERM, waiting for its own signal) lets the training go on;
* with no handler (the default action), the run stops with :class:`RunInterrupted`, which the commands turn
  into one line on stderr and exit status 128 + the signal number, as if the signal had ended the process.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dilnas.train.distributed import DistInfo
from dilnas.utils.errors import RunInterrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)  # Ctrl-C stops like SIGTERM


class StopSignals:
    """Context manager that records stop signals instead of dying of them (main thread only)."""

    def __init__(self) -> None:
        self.received = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: no handlers there
                previous = signal.getsignal(signum)
                if previous is signal.SIG_IGN:  # whoever started us wants this one ignored
                    continue
                signal.signal(signum, self._record)
                self._previous[signum] = previous
        return self

    def _record(self, signum: int, frame: Any) -> None:
        self.received = signum

    def pending(self, info: DistInfo, device: torch.device) -> int:
        """The signal to act on now (0 for none), agreed by every rank so that they all stop together."""
        if not info.enabled:
            return self.received
        flag = torch.tensor([self.received], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def hand_over(self, signum: int, step: int, checkpoint: Path, info: DistInfo) -> None:
        """Call once the checkpoint is saved: pass ``signum`` to its previous handler (which may requeue and
        exit, or return to let training continue), or raise :class:`RunInterrupted` if there was none.

        With several ranks every rank stops: rank 0 hands the signal over (submitit requeues from rank 0
        only), and a handler that returns cannot keep one rank training while another has left."""
        self.received = 0
        previous = self._previous.get(signum, signal.SIG_DFL)
        if previous is signal.default_int_handler:  # Python's KeyboardInterrupt: no one else's handler
            previous = signal.SIG_DFL
        if callable(previous) and info.is_main:
            previous(signum, None)
            if not info.enabled:
                return
        raise RunInterrupted(signum, step, checkpoint)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
