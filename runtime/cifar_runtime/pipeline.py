"""Classify many image files in order: decode in worker threads while the previous batch runs on the model.

A file that cannot be read becomes a Result with an error; the run goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from cifar_runtime.api import Classifier, Prediction
from cifar_runtime.errors import ImageError


@dataclass(frozen=True)
class Result:
    """What happened to one input file: a prediction, or a one-line error."""

    path: str
    prediction: Prediction | None = None
    error: str | None = None


def classify_files(
    classifier: Classifier, paths: Iterable[str], top_k: int = 1, batch_size: int = 64, workers: int = 2
) -> Iterator[Result]:
    """One Result per path, in input order, yielded a batch at a time.

    At most `workers` images are decoded at once (and within the classifier's pixel budget); at most two batches
    are in flight, one decoding while the one before it is classified, so memory stays bounded however many
    files there are.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cifar-decode")
    pending: deque[tuple[str, Future[np.ndarray]]] = deque()  # (path, its uint8 (H, W, 3) pixels)
    try:
        for path in paths:
            pending.append((path, pool.submit(classifier.read_pixels, path)))
            if len(pending) == 2 * batch_size:
                yield from _classify(classifier, [pending.popleft() for _ in range(batch_size)], top_k)
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            yield from _classify(classifier, batch, top_k)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _classify(classifier: Classifier, batch: list[tuple[str, Future[np.ndarray]]], top_k: int) -> list[Result]:
    pixels: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for i, (_, future) in enumerate(batch):
        try:
            pixels.append(future.result())
        except ImageError as e:
            errors[i] = str(e)
    inputs = classifier.model_input(np.stack(pixels)) if pixels else None
    predictions = iter(classifier.predict_batch(inputs, top_k) if inputs is not None else [])
    return [
        Result(path, error=errors[i]) if i in errors else Result(path, prediction=next(predictions))
        for i, (path, _) in enumerate(batch)
    ]
