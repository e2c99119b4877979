"""Server-side batching (`--enable_batching`), modelled on TF Serving's SharedBatchScheduler + BatchingSession.

One queue per (model version, signature); a shared pool of `num_batch_threads` threads takes the oldest ready batch
of any queue. A batch is ready when it is full (`max_batch_size` rows), or when `batch_timeout_micros` has passed
since its first task arrived (0 = as soon as a thread is free, TF Serving's recommended CPU setting). Requests are
concatenated along dimension 0, padded up to the next `allowed_batch_sizes` entry by repeating the first row, run
once, and the outputs are split back; if a merged batch fails, its requests are run one by one so that only the
offending request gets the error. The rules and error messages are TF Serving's: every input needs a batch dimension
and the same 0th-dimension size, a request may not exceed `max_batch_size`, and a queue holding `max_enqueued_batches`
batches refuses new work with UNAVAILABLE (load shedding instead of unbounded latency).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from serving.errors import Code, ServingError, invalid_argument
from serving.model_server.config import BatchingOptions

log = logging.getLogger(__name__)

Process = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class _Task:
    __slots__ = ("inputs", "size", "key", "done", "result", "error", "enqueued")

    def __init__(self, inputs: dict[str, np.ndarray], size: int, key: tuple):
        self.inputs, self.size, self.key = inputs, size, key
        self.done = threading.Event()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.enqueued = time.monotonic()


class _Batch:
    __slots__ = ("tasks", "size", "key", "closed", "created")

    def __init__(self, key: tuple):
        self.tasks: list[_Task] = []
        self.size = 0
        self.key = key
        self.closed = False
        self.created = time.monotonic()


class BatchingQueue:
    """The queue of one (model version, signature). `submit` blocks until the request's rows come back."""

    def __init__(self, scheduler: SharedBatchScheduler, name: str, process: Process):
        self.scheduler, self.name, self.process = scheduler, name, process
        self.batches: collections.deque[_Batch] = collections.deque()
        self.closed = False

    def submit(self, inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        options = self.scheduler.options
        arrays = dict(inputs)
        sizes = set()
        for array in arrays.values():
            if array.ndim == 0:
                raise invalid_argument("Batching session Run() input tensors must have at least one dimension")
            sizes.add(array.shape[0])
        if len(sizes) > 1:
            raise invalid_argument("Batching session Run() input tensors must have equal 0th-dimension size")
        size = sizes.pop() if sizes else 0
        if size > options.max_batch_size:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size "
                                   f"{options.max_batch_size}")
        if size == 0:
            return self.process(arrays)
        key = tuple(sorted((k, a.dtype.str, a.shape[1:]) for k, a in arrays.items()))
        task = _Task(arrays, size, key)
        self.scheduler._enqueue(self, task)
        if not task.done.wait(timeout):
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded while the request waited for its batch")
        if task.error is not None:
            raise task.error
        assert task.result is not None
        return task.result


class SharedBatchScheduler:
    """The thread pool shared by every batching queue of the server."""

    def __init__(self, options: BatchingOptions, on_batch: Callable[[str, int, int], None] | None = None):
        self.options = options.validate()
        self.on_batch = on_batch  # (queue name, real rows, padded rows), for metrics
        self._cond = threading.Condition()
        self._queues: list[BatchingQueue] = []
        self._next = 0
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-thread-{i}", daemon=True)
                         for i in range(options.threads)]
        for t in self._threads:
            t.start()

    def queue(self, name: str, process: Process) -> BatchingQueue:
        q = BatchingQueue(self, name, process)
        with self._cond:
            self._queues.append(q)
        return q

    def close_queue(self, queue: BatchingQueue, timeout: float = 30.0) -> None:
        """Stop taking tasks; let the batch threads finish what is queued (an unloading version drains)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            queue.closed = True
            for batch in queue.batches:
                batch.closed = True
            self._cond.notify_all()
            while queue.batches and time.monotonic() < deadline:
                self._cond.wait(0.05)
            if queue in self._queues:
                self._queues.remove(queue)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            for q in self._queues:
                q.closed = True
                for batch in q.batches:
                    batch.closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(q.batches for q in self._queues) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))

    # -- internals ----------------------------------------------------------------------------------------------------
    def _enqueue(self, queue: BatchingQueue, task: _Task) -> None:
        options = self.options
        with self._cond:
            if queue.closed or self._stopping:
                run_inline = True
            else:
                run_inline = False
                open_batch = queue.batches[-1] if queue.batches and not queue.batches[-1].closed else None
                if open_batch is not None and (open_batch.size + task.size > options.max_batch_size
                                               or open_batch.key != task.key):
                    open_batch.closed = True
                    open_batch = None
                if open_batch is None:
                    if len(queue.batches) >= options.max_enqueued_batches:
                        raise ServingError(Code.UNAVAILABLE,
                                           "The batch scheduling queue to which this task was submitted is full")
                    open_batch = _Batch(task.key)
                    queue.batches.append(open_batch)
                open_batch.tasks.append(task)
                open_batch.size += task.size
                if open_batch.size >= options.max_batch_size:
                    open_batch.closed = True
                self._cond.notify()
        if run_inline:  # the version is unloading: answer from the handle the request already holds
            self._run([task], queue)

    def _ready_batch(self) -> tuple[BatchingQueue, _Batch] | float | None:
        """The next batch to run, or how long to wait for one (None = until notified)."""
        now = time.monotonic()
        timeout = self.options.batch_timeout_micros / 1e6
        wait: float | None = None
        n = len(self._queues)
        for i in range(n):
            q = self._queues[(self._next + i) % n]
            if not q.batches:
                continue
            batch = q.batches[0]
            due = batch.created + timeout
            if batch.closed or now >= due:
                self._next = (self._next + i + 1) % n
                q.batches.popleft()
                return q, batch
            wait = due - now if wait is None else min(wait, due - now)
        return wait

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    found = self._ready_batch()
                    if isinstance(found, tuple):
                        break
                    self._cond.wait(found)
                queue, batch = found
                self._cond.notify_all()  # close_queue/stop may be waiting for the queue to empty
            self._run(batch.tasks, queue)

    def _run(self, tasks: list[_Task], queue: BatchingQueue) -> None:
        size = sum(t.size for t in tasks)
        try:
            names = list(tasks[0].inputs)
            batched = {n: (np.concatenate([t.inputs[n] for t in tasks]) if len(tasks) > 1 else tasks[0].inputs[n])
                       for n in names}
            padded = size
            for allowed in self.options.allowed_batch_sizes:
                if allowed >= size:
                    padded = allowed
                    break
            if padded > size:
                batched = {n: np.concatenate([a, np.repeat(a[:1], padded - size, axis=0)]) for n, a in batched.items()}
            outputs = queue.process(batched)
            for name, out in outputs.items():
                if out.ndim == 0 or out.shape[0] != padded:
                    raise invalid_argument("Batched output tensor's 0th dimension does not equal the sum of the 0th "
                                           f"dimension sizes of the input tensors (output '{name}')")
            start = 0
            for t in tasks:
                t.result = {n: o[start:start + t.size] for n, o in outputs.items()}
                start += t.size
            if self.on_batch is not None:
                self.on_batch(queue.name, size, padded)
        except BaseException as e:  # noqa: BLE001 - every waiting request must get an answer
            if len(tasks) > 1 and isinstance(e, ServingError):
                # One request's bad values (a NaN z caught by an in-graph check) must not fail the requests merged
                # with it: run each task on its own, so only the offending one gets the error. (Beyond TF Serving,
                # whose BatchingSession fails the whole batch.)
                log.info("a merged batch of %d requests on %s failed (%s); running them one by one", len(tasks),
                         queue.name, e.message)
                for t in tasks:
                    self._run([t], queue)
                return
            if not isinstance(e, ServingError):
                log.exception("batch of %s failed", queue.name)
            for t in tasks:
                t.error = e
        finally:
            for t in tasks:
                t.done.set()
