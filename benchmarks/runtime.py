"""`python -m benchmarks.runtime FOLDER`: the runtime's figures on a labelled folder (FOLDER/<class>/*.jpg), each
from real `cifar-infer` processes with default flags unless stated:

- model only: fp32 and int8 images/s on preprocessed batches in this process (no decoding), best of the batch sizes;
- folder: images/s end to end, its ratio to the fp32 model-only figure, peak RSS, accuracy (auto precision);
- accuracy through cifar-infer with --precision fp32 and int8;
- hostile: peak RSS on a folder of tiny files declaring huge sizes plus real images right at the pixel limit;
- reduced-scale JPEG: top-1 agreement with --exact on test images enlarged to 512-1024 px camera-like JPEGs;
- soak: FOLDER listed `soak` times on stdin to one process: RSS after the first 10% and at the end, images/s
  per tenth.
Peak RSS is each child's own (benchmarks.measure); accuracy is benchmarks.score's.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from benchmarks.hostile_files import hostile_headers, maximal_images, upscaled_photos
from benchmarks.measure import run_measured
from benchmarks.score import read_rows, score
from cifar_runtime.api import Classifier
from cifar_runtime.decode import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class BenchConfig:
    folder: Path  # FOLDER/<class>/*.jpg, e.g. ../shared/cifar10-jpeg/test
    photos: int = 1000  # test images enlarged for the reduced-scale agreement
    soak: int = 10  # times the folder is listed for the soak run
    batch_sizes: tuple[int, ...] = (64, 256)  # model-only batch sizes; the best counts
    model_seconds: float = 3.0  # per model-only measurement


@dataclass(frozen=True)
class Run:
    """One cifar-infer process."""

    seconds: float
    peak_rss_mb: float
    images: int
    accuracy: float | None  # percent of classified rows whose label is the file's folder name (benchmarks.score)
    exit_code: int
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds, rows written, RSS MB)
    stderr: str = ""

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def run_cli(args: list[str], out: Path, stdin: str | None = None, sample_every: float = 0.02) -> Run:
    """Run cifar-infer with `args` writing jsonl to `out`: its own peak RSS and (time, rows, RSS) samples."""
    samples: list[tuple[float, int, float]] = []
    counter = _RowCounter(out)

    def sample(seconds: float, rss_mb: float) -> None:
        samples.append((seconds, counter.rows(), rss_mb))

    run = run_measured(
        [sys.executable, "-m", "cifar_runtime", *args, "-f", "jsonl", "-o", str(out)],
        stdin=stdin,
        every=sample_every,
        on_sample=sample,
    )
    if not out.exists() or not out.stat().st_size:
        raise RuntimeError(f"cifar-infer {' '.join(args)} wrote nothing: {run.stderr.strip()}")
    s = score(read_rows(out))
    return Run(run.seconds, run.peak_rss_mb, s.files, s.accuracy, run.returncode, samples, run.stderr)


class _RowCounter:
    """Rows written so far to a jsonl file, counted by reading only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self.read = path, 0, 0

    def rows(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.read)
                tail = f.read()
        except OSError:
            return self.count
        self.count, self.read = self.count + tail.count(b"\n"), self.read + len(tail)
        return self.count


def model_only(folder: Path, precision: str, batch_sizes: tuple[int, ...], seconds: float) -> dict[int, float]:
    """Images/s of the model alone on real preprocessed images, per batch size (ONNX Runtime's default threads)."""
    clf = Classifier(precision=precision, device="cpu")
    paths = sorted(folder.glob("*/*.jpg"))[: max(batch_sizes)]
    images = clf.model_input(np.stack([clf.read_pixels(p) for p in paths]))  # what this file takes, either layout
    rates = {}
    for batch_size in batch_sizes:
        batch = np.resize(images, (batch_size, *images.shape[1:]))  # repeats images when the folder is small
        clf.logits(batch)  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            clf.logits(batch)
            done += batch_size
        rates[batch_size] = done / (time.perf_counter() - start)
    return rates


def soak_summary(run: Run, total: int) -> dict[str, object]:
    """RSS after the first tenth of the rows and at the end, and images/s in each tenth."""
    tenth = total // 10
    first = next((rss for _, rows, rss in run.samples if rows >= tenth), None)
    last = run.samples[-1][2] if run.samples else None
    rates = []
    for k in range(1, 11):
        lo = next(((t, r) for t, r, _ in run.samples if r >= (k - 1) * tenth), None)
        hi = next(((t, r) for t, r, _ in run.samples if r >= k * tenth), None)
        if lo and hi and hi[0] > lo[0]:
            rates.append(round((hi[1] - lo[1]) / (hi[0] - lo[0])))
    drift = 100 * (last - first) / first if first and last else None
    return {"rss_after_first_tenth_mb": first, "rss_at_end_mb": last, "rss_drift_percent": drift, "rates": rates}


def run_bench(cfg: BenchConfig, say: typer.echo = typer.echo) -> dict[str, object]:  # type: ignore[valid-type]
    """Every figure in the module docstring, printed as it is measured; returned as a dict."""
    folder = cfg.folder
    n = len(list(folder.glob("*/*.jpg")))
    result: dict[str, object] = {"config": {k: str(v) for k, v in asdict(cfg).items()}, "images": n}
    with tempfile.TemporaryDirectory(prefix="cifar-bench-") as tmp_name:
        tmp = Path(tmp_name)
        fp32 = model_only(folder, "fp32", cfg.batch_sizes, cfg.model_seconds)
        int8 = model_only(folder, "int8", cfg.batch_sizes, cfg.model_seconds)
        best_fp32 = max(fp32.values())
        say(f"model only, fp32: {_rates(fp32)}; int8: {_rates(int8)}")

        run_cli([str(folder)], tmp / "auto.jsonl")  # warm-up: the files in the page cache, as for every later run
        auto = run_cli([str(folder)], tmp / "auto.jsonl")
        ratio = auto.rate / best_fp32
        say(
            f"folder, default flags: {n} images in {auto.seconds:.2f} s = {auto.rate:.0f} img/s end to end, "
            f"{ratio:.2f}x the fp32 model-only {best_fp32:.0f} img/s; peak RSS {auto.peak_rss_mb:.0f} MB; "
            f"accuracy {auto.accuracy:.2f}%"
        )
        accuracy = {}
        for precision in ("fp32", "int8"):
            run = run_cli(["--precision", precision, str(folder)], tmp / f"{precision}.jsonl")
            accuracy[precision] = run.accuracy
            say(
                f"--precision {precision}: accuracy {run.accuracy:.2f}%, {run.rate:.0f} img/s, "
                f"peak RSS {run.peak_rss_mb:.0f} MB"
            )

        hostile = tmp / "hostile"
        hostile.mkdir()
        files = {**hostile_headers(DEFAULT_MAX_PIXELS), **maximal_images(DEFAULT_MAX_PIXELS)}
        for name, data in files.items():
            (hostile / name).write_bytes(data)
        bad = run_cli([str(hostile)], tmp / "hostile.jsonl")
        say(
            f"hostile folder ({len(files)} files): peak RSS {bad.peak_rss_mb:.0f} MB; "
            f"{bad.images} rows, exit {bad.exit_code}"
        )

        sources = sorted(folder.glob("*/*.jpg"))[:: max(1, n // cfg.photos)][: cfg.photos]
        photos = upscaled_photos(sources, tmp / "photos")
        draft = run_cli(["--precision", "fp32", str(tmp / "photos")], tmp / "draft.jsonl")
        exact = run_cli(["--precision", "fp32", "--exact", str(tmp / "photos")], tmp / "exact.jsonl")
        agreement = _agreement(tmp / "draft.jsonl", tmp / "exact.jsonl")
        say(
            f"large JPEGs ({len(photos)}, 512-1024 px): reduced-scale vs --exact top-1 agreement {agreement:.2f}%; "
            f"accuracy {draft.accuracy:.2f}% vs {exact.accuracy:.2f}%; {draft.rate:.0f} vs {exact.rate:.0f} img/s; "
            f"peak RSS {draft.peak_rss_mb:.0f} vs {exact.peak_rss_mb:.0f} MB"
        )
        shutil.rmtree(tmp / "photos")

        listing = "".join(f"{p}\n" for p in sorted(folder.glob("*/*.jpg"))) * cfg.soak
        soak = run_cli(["-"], tmp / "soak.jsonl", stdin=listing, sample_every=0.5)
        summary = soak_summary(soak, n * cfg.soak)
        say(
            f"soak: {soak.images} files through one process in {soak.seconds:.1f} s ({soak.rate:.0f} img/s); RSS "
            f"{_mb(summary['rss_after_first_tenth_mb'])} after the first tenth, {_mb(summary['rss_at_end_mb'])} at "
            f"the end ({_pct(summary['rss_drift_percent'])}); img/s per tenth: {summary['rates']}"
        )
    result.update(
        model_only={"fp32": fp32, "int8": int8},
        folder={**asdict(auto), "rate": auto.rate, "ratio_to_fp32_model_only": ratio},
        accuracy=accuracy,
        hostile={"files": len(files), "peak_rss_mb": bad.peak_rss_mb, "rows": bad.images},
        large_jpegs={"photos": len(photos), "agreement": agreement, "draft": asdict(draft), "exact": asdict(exact)},
        soak={**summary, "images": soak.images, "seconds": soak.seconds, "peak_rss_mb": soak.peak_rss_mb},
    )
    for key in ("samples", "stderr"):
        result["folder"].pop(key)  # type: ignore[union-attr]
    return result


def _agreement(a: Path, b: Path) -> float:
    left = {r["path"]: r.get("label") for r in map(json.loads, a.read_text(encoding="utf-8").splitlines())}
    right = {r["path"]: r.get("label") for r in map(json.loads, b.read_text(encoding="utf-8").splitlines())}
    return 100 * sum(left[p] == right.get(p) for p in left) / len(left)


def _rates(rates: dict[int, float]) -> str:
    return ", ".join(f"{r:.0f} img/s at batch {b}" for b, r in rates.items())


def _mb(v: object) -> str:
    return f"{v:.0f} MB" if isinstance(v, float) else "n/a"


def _pct(v: object) -> str:
    return f"{v:+.1f}%" if isinstance(v, float) else "n/a"


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.command()
def main(
    folder: Annotated[Path, typer.Argument(help="A labelled folder: FOLDER/<class>/*.jpg (e.g. the 10k test split).")],
    photos: Annotated[int, typer.Option(min=1, help="Enlarged JPEGs for the reduced-scale agreement.")] = 1000,
    soak: Annotated[int, typer.Option(min=1, help="Times the folder is listed for the soak run.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every figure here.")] = None,
) -> None:
    """Peak RSS (hostile folder, FOLDER), folder vs model-only throughput, int8 vs fp32 accuracy, soak drift."""
    result = run_bench(BenchConfig(folder, photos, soak))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.runtime")
