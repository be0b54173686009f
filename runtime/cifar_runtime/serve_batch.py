"""The service's micro-batcher: images of concurrent requests run together on one ONNX Runtime session."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from cifar_runtime.api import Classifier, Prediction

if TYPE_CHECKING:
    from cifar_runtime.serve import Metrics


class Overloaded(Exception):
    """The queue is full: the caller should retry later."""


@dataclass
class _Item:
    pixels: np.ndarray  # one row of a model_input batch
    top_k: int
    future: asyncio.Future[Prediction]


class Batcher:
    """Collects model inputs across requests into batches and runs each on one worker thread."""

    def __init__(
        self, classifier: Classifier, metrics: Metrics, max_batch: int, max_delay_ms: float, queue: int
    ) -> None:
        self.classifier, self.metrics = classifier, metrics
        self.max_batch, self.max_delay_ms, self.capacity = max_batch, max_delay_ms, queue
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.waiting = 0  # images accepted and not yet answered
        self.coming = 0  # images of accepted requests still being decoded: the only company worth waiting for
        self.runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cifar-serve-ort")  # one session, in order

    def reserve(self, images: int) -> bool:
        """Room in the queue for `images` about to be decoded (counted from now on), or False when it is full."""
        if self.waiting + self.coming + images > self.capacity:
            return False
        self.coming += images
        return True

    async def classify(self, inputs: list[np.ndarray], top_k: int) -> list[Prediction]:
        if self.waiting + len(inputs) > self.capacity:
            raise Overloaded
        loop = asyncio.get_running_loop()
        items = [_Item(x, top_k, loop.create_future()) for x in inputs]
        self.waiting += len(items)
        self.metrics.queue.set(self.waiting)
        for item in items:
            self.queue.put_nowait(item)
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:
            self.waiting -= len(items)
            self.metrics.queue.set(self.waiting)

    async def run(self) -> None:
        """The batching loop: a batch starts with the first waiting image and closes when full, when no other image
        is on its way (waiting for nothing would only add latency: one client alone is never slowed), or when its
        first image has waited max_delay_ms. Under load, batches form from what arrives while the last one runs."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            closes = loop.time() + self.max_delay_ms / 1000
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                if not self.coming:
                    break
                left = closes - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            batch = [item for item in batch if not item.future.done()]  # a request past its deadline left
            if not batch:
                continue
            self.metrics.batch.observe(len(batch))
            k = max(item.top_k for item in batch)
            try:
                predictions = await loop.run_in_executor(
                    self.runner, self.classifier.predict_batch, np.stack([item.pixels for item in batch]), k
                )
            except Exception as e:  # the session failed: every request of the batch gets the error, the loop goes on
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            for item, p in zip(batch, predictions, strict=True):
                if not item.future.done():
                    item.future.set_result(replace(p, top_k=p.top_k[: item.top_k]))
