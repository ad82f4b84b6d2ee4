"""Requests that arrive together, predicted together: a short batching window (the dynamic batching of
TensorFlow Serving and Triton) in front of one model, which runs in one worker thread so that decoding and
the network never block the event loop, and a bounded number of requests in the house, past which a new
one is refused at once (HTTP 503) instead of queueing until memory runs out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cxr_age.serve.limits import Batching

Job = TypeVar("Job")
Result = TypeVar("Result")
log = logging.getLogger(__name__)
DEFAULT_BATCHING = Batching()


class Busy(Exception):
    """Every place in the queue is taken (HTTP 503)."""


@dataclass
class _Waiting(Generic[Job, Result]):
    job: Job
    size: int
    answer: asyncio.Future


class Batcher(Generic[Job, Result]):
    """Runs `work(jobs) -> results` (one result per job, in order) on jobs gathered within the window.

    Examples:
        >>> batcher = Batcher(service.predict_jobs, Batching(window=0.02))
        >>> with batcher.place():                # Busy when full
        ...     result = await batcher.submit(job, size=len(job.files))
    """

    def __init__(self, work: Callable[[Sequence[Job]], list[Result]], batching: Batching = DEFAULT_BATCHING) -> None:
        self.work = work
        self.batching = batching
        self.in_house = 0
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._task: asyncio.Task | None = None

    def place(self) -> _Place:
        """A place in the house for one request, held for the `with` block; Busy if there is none."""
        if self.in_house >= self.batching.capacity:
            raise Busy(f"the server is busy ({self.in_house} requests in progress); retry shortly")
        return _Place(self)

    async def submit(self, job: Job, size: int) -> Result:
        """The result of `job` (of `size` images), predicted in the next batch."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._serve())
        answer = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(job, size, answer))
        return await answer

    async def _gather(self) -> list[_Waiting]:
        """The first waiting job, and those that arrive within the window after it, up to `max_images`."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.batching.window
        while sum(waiting.size for waiting in batch) < self.batching.max_images:
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), max(deadline - loop.time(), 0)))
            except TimeoutError:
                break
        return batch

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            live = [waiting for waiting in batch if not waiting.answer.done()]  # a client may have gone
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self.work, [waiting.job for waiting in live])
            except Exception as err:  # noqa: BLE001 - the work answers per file; anything else ends this batch only
                log.exception("a batch of %d requests failed", len(live))
                for waiting in live:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(err)
                continue
            for waiting, result in zip(live, results):
                if not waiting.answer.done():
                    waiting.answer.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class _Place:
    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def __enter__(self) -> _Place:
        self.batcher.in_house += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.batcher.in_house -= 1
