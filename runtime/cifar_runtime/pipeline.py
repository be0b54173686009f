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
from cifar_runtime.preprocess import prepare_file


@dataclass(frozen=True)
class Result:
    """What happened to one input file: a prediction, or a one-line error."""

    path: str
    prediction: Prediction | None = None
    error: str | None = None


def classify_files(
    classifier: Classifier, paths: Iterable[str], top_k: int = 1, batch_size: int = 64, workers: int = 2
) -> Iterator[Result]:
    """One Result per path, in input order, yielded a batch at a time."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cifar-decode")
    # At most two batches in flight: one being decoded while the one before it is classified, so memory
    # stays bounded however many files there are.
    pending: deque[tuple[str, Future[np.ndarray]]] = deque()
    try:
        for path in paths:
            pending.append((path, pool.submit(prepare_file, path, classifier.info)))
            if len(pending) == 2 * batch_size:
                yield from _classify(classifier, [pending.popleft() for _ in range(batch_size)], top_k)
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            yield from _classify(classifier, batch, top_k)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _classify(classifier: Classifier, batch: list[tuple[str, Future[np.ndarray]]], top_k: int) -> list[Result]:
    inputs: list[np.ndarray | ImageError] = []
    for _, future in batch:
        try:
            inputs.append(future.result())
        except ImageError as e:
            inputs.append(e)
    outcomes = classifier.predict_prepared(inputs, top_k)
    return [
        Result(path, error=str(outcome)) if isinstance(outcome, ImageError) else Result(path, prediction=outcome)
        for (path, _), outcome in zip(batch, outcomes, strict=True)
    ]
