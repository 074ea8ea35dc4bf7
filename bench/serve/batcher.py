"""Dynamic batching: concurrent requests become one forward pass.

Requests wait in a queue; one task takes the first, then more until the batch holds `max_batch` texts
or `max_wait_ms` has passed since the first was taken (0: whatever is already waiting), and runs the
model on one worker thread, so inference never blocks the event loop and two passes never compete for
the model's cores. A request larger than `max_batch` runs as its own batch; requests are never split.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class Overloaded(Exception):
    """The queue already holds `max_queue` texts."""


@dataclass
class Counters:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    max_batch_texts: int | None = None

    def as_dict(self) -> dict:
        return {"requests": self.requests, "texts": self.texts, "batches": self.batches,
                "mean_batch_texts": round(self.texts / self.batches, 3) if self.batches else None,
                "max_batch_texts": self.max_batch_texts}


class Batcher:
    """`await submit(items)` → the model's output rows for those items, in order.

    `predict(items)` takes a list of inputs and returns an array with one row per input."""

    def __init__(self, predict: Callable[[list], np.ndarray], max_batch: int = 1, max_wait_ms: float = 0.0,
                 max_queue: int = 1024):
        self.predict, self.max_batch, self.max_wait_s = predict, max_batch, max_wait_ms / 1e3
        self.max_queue = max_queue
        self.counters = Counters()
        self._queue: asyncio.Queue | None = None
        self._waiting = 0  # texts queued, not yet taken into a batch
        self._carry = None  # a request taken that did not fit the batch being formed
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, items: Sequence) -> np.ndarray:
        if self._waiting + len(items) > self.max_queue:
            raise Overloaded(f"{self._waiting} texts are already waiting (max_queue {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._waiting += len(items)
        self.counters.requests += 1
        self._queue.put_nowait((list(items), future))
        return await future

    async def _next(self, timeout: float | None):
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait()  # raises QueueEmpty
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._next(None)]
            size = len(batch[0][0])
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:
                try:
                    item = await self._next(deadline - loop.time())
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if size + len(item[0]) > self.max_batch:
                    self._carry = item  # starts the next batch
                    break
                batch.append(item)
                size += len(item[0])
            self._waiting -= size
            await self._run(loop, batch, size)

    async def _run(self, loop, batch: list, size: int) -> None:
        items = [x for request, _ in batch for x in request]
        try:
            out = await loop.run_in_executor(self._executor, self.predict, items)
        except Exception as exc:  # every request of the batch gets the error; the loop goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.counters.texts += size
        self.counters.batches += 1
        self.counters.max_batch_texts = max(self.counters.max_batch_texts or 0, size)
        start = 0
        for request, future in batch:
            if not future.done():  # a client that went away cancelled its future
                future.set_result(out[start : start + len(request)])
            start += len(request)
