"""Stopping on SIGINT (Ctrl-C) and SIGTERM (what Kubernetes sends a pod on eviction or preemption, and `kill`).

A long job stops at the first signal, cleanly, and says so; a second signal ends the process at once:

    with stop_on_signals():          # the first SIGINT/SIGTERM raises Interrupted in the main thread
        run_everything()             # ... which unwinds it: `finally` blocks run, nothing partial is passed on
                                     # a second one: os._exit(128 + signal), immediately

`Interrupted` is a KeyboardInterrupt, not an Exception, so that no `except Exception` on the way (a retry loop, a
library's error handling) swallows it; `exit_code` is what shells expect of a process a signal stopped (130 for
SIGINT, 143 for SIGTERM). The training loop (dcgan.train) catches the first signal itself, finishes its step and
checkpoints; a component that must fail on it raises the Exception `StepInterrupted` (components/), so that TFX records
a failed execution and publishes none of its outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked this process to stop. `signum` says which, `exit_code` is 128 + signum."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = int(signum)
        super().__init__(message or f"interrupted by {signal_name(signum)}")

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


class StepInterrupted(RuntimeError):
    """A pipeline step stopped by a signal. An Exception, raised at the step's boundary (`failing_step`), so that the
    orchestrator fails the step: TFX records a failed execution, publishes none of its outputs and caches nothing.
    The message says where it stopped and what to do."""

    def __init__(self, signum: int, message: str):
        self.signum = int(signum)
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


@contextlib.contextmanager
def failing_step(name: str) -> Iterator[None]:
    """Around a pipeline step's work: an `Interrupted` raised inside becomes `StepInterrupted` naming the step."""
    try:
        yield
    except Interrupted as e:
        raise StepInterrupted(e.signum, f"{name} stopped by {signal_name(e.signum)}; nothing of it was kept. "
                                        "Run the pipeline again to redo it.") from None


def exit_now(signum: int, _frame=None) -> None:  # noqa: ANN001 - a signal handler
    """The second signal: leave at once, without unwinding."""
    with contextlib.suppress(Exception):
        sys.stderr.write(f"\n{signal_name(signum)} again: exiting now\n")
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(exit_code(signum))


def _raise_interrupted(signum: int, _frame=None) -> None:  # noqa: ANN001 - a signal handler
    for s in SIGNALS:
        signal.signal(s, exit_now)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block (main thread only; elsewhere a no-op): the first SIGINT or SIGTERM raises `Interrupted` where
    the main thread is; any further one exits at once. The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
