"""`cifar-export web MODEL`: a static folder that classifies images in the browser, offline, with nothing sent.

The folder holds index.html and app.js (this package's page/), the model (a --raw ONNX file: uint8 pixels in, so
the page only decodes and resizes) with its parity report, model.json (its classes and input size), and
onnxruntime-web's WebAssembly build copied from the npm package at build time (web/package.json pins it,
web/package-lock.json locks it): no CDN at run time. Serve it with any static server, e.g.
`python -m http.server -d FOLDER`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import onnx

from cifar_export.config import WebConfig
from cifar_export.errors import ExportError
from cifar_export.formats.onnx_export import PROBABILITIES
from cifar_runtime import Classifier, ModelInfo
from cifar_train import ensure_writable, sha256_file

PAGE = Path(__file__).resolve().parent / "page"  # index.html, app.js
# onnxruntime-web's files the page loads: the WebAssembly-only bundle, its loader and the SIMD binary.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_VERSION = "1.30.0"  # the version web/package.json pins, which the browser test runs
NPM_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
# Where it is looked for, in order: `npm ci --prefix web` in a clone (beside an editable install of this package,
# then under the working directory), and `npm install onnxruntime-web` in the working directory (any install).
DIST_CANDIDATES = (Path(__file__).resolve().parents[2] / "web" / NPM_DIST, Path("web") / NPM_DIST, NPM_DIST)


def find_ort_dist(given: Path | None) -> Path:
    """The onnxruntime-web dist/ folder holding ORT_FILES, or an ExportError saying how to get it."""
    candidates = [given] if given else list(dict.fromkeys(p.resolve() for p in DIST_CANDIDATES))
    for folder in candidates:
        if all((folder / name).is_file() for name in ORT_FILES):
            return folder
    if given:
        raise ExportError(f"--ort-dist {given} does not hold onnxruntime-web's {', '.join(ORT_FILES)}")
    raise ExportError(
        f"onnxruntime-web not found (looked in {', '.join(map(str, candidates))}): run "
        f"`npm install onnxruntime-web@{ORT_WEB_VERSION}` in this folder, or `npm ci --prefix web` in the "
        "repository, or pass --ort-dist DIST_FOLDER"
    )


PAGE_FILES = ("index.html", "app.js", "model.json", "model.onnx")  # what marks a folder as one of our pages


def build_page(model: Path, cfg: WebConfig) -> Path:
    """Write the page folder for `model` (an ONNX file exported with --raw); return the folder."""
    info = check_model(model)
    dist = find_ort_dist(cfg.ort_dist)
    out = cfg.out
    if out.exists() or out.is_symlink():
        if not cfg.overwrite:
            raise ExportError(f"{out} already exists: pass --overwrite to replace it, or --out another folder")
        # --overwrite replaces an earlier page, never a folder of the user's that happens to have that name
        if out.is_symlink() or not out.is_dir() or not all((out / name).is_file() for name in PAGE_FILES):
            raise ExportError(
                f"{out} is not a page folder written by `cifar-export web`: not replacing it; pass --out a new folder"
            )
        if model.resolve().is_relative_to(out.resolve()):
            raise ExportError(f"{model} is inside {out}: pass --out a folder that does not hold the model")
    ensure_writable(out.parent)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp_name:
            tmp = Path(tmp_name) / "site"
            _write_site(tmp, model, info, dist)
            if out.exists():  # --overwrite: the old page goes only once the new one is complete
                shutil.rmtree(out)
            tmp.rename(out)
    except OSError as e:
        raise ExportError(f"cannot write the page to {out}: {e.strerror or e}") from e
    return out


def check_model(model: Path) -> ModelInfo:
    """The model's metadata, if the page can run it: a published --raw file with probabilities and bilinear resize."""
    if not model.is_file():
        raise ExportError(f"model file {model} does not exist")
    if ".FAILED." in model.name:
        raise ExportError(f"{model.name} failed its parity check: the page ships only published files")
    info = Classifier(model, device="cpu", precision=None).info
    if info.layout != "NHWC":
        raise ExportError(
            f"{model.name} takes normalised floats (layout {info.layout}); the page feeds pixels: "
            "export it with `cifar-export onnx CHECKPOINT --raw` and pass the .raw.onnx file"
        )
    parity = info.json_extra("parity")
    if isinstance(parity, dict) and not parity.get("passed", True):
        raise ExportError(f"{model.name} failed its parity check: the page ships only published files")
    if info.interpolation != "bilinear":
        raise ExportError(f"{model.name} asks for {info.interpolation} resizing; the page resizes bilinearly only")
    if PROBABILITIES not in [o.name for o in onnx.load(str(model)).graph.output]:
        raise ExportError(f"{model.name} has no {PROBABILITIES!r} output: re-export it with --raw")
    return info


def _write_site(site: Path, model: Path, info: ModelInfo, dist: Path) -> None:
    (site / "ort").mkdir(parents=True)
    for name in ("index.html", "app.js"):
        shutil.copyfile(PAGE / name, site / name)
    shutil.copyfile(model, site / "model.onnx")
    report = model.with_name(model.name + ".parity.json")  # the model's proof travels with it
    if report.is_file():
        shutil.copyfile(report, site / "model.onnx.parity.json")
    for name in ORT_FILES:
        shutil.copyfile(dist / name, site / "ort" / name)
    for name in ("LICENSE", "ThirdPartyNotices.txt"):  # onnxruntime-web's own, shipped with its files
        if (dist.parent / name).is_file():
            shutil.copyfile(dist.parent / name, site / "ort" / name)
    meta = {
        "arch": info.arch,
        "classes": list(info.classes),
        "input_size": list(info.input_size),
        "layout": info.layout,
        "precision": info.precision,
        "test_acc": info.test_acc,
        "temperature": info.temperature,
        "recommended_min_confidence": info.recommended_min_confidence,
        "dataset": (info.json_extra("dataset") or {}).get("name"),  # for the page's title; None in older files
        "model_sha256": sha256_file(model),
        "source_sha256": info.source_sha256,
        "onnxruntime_web": _npm_version(dist),
    }
    (site / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _npm_version(dist: Path) -> str:
    try:
        return str(json.loads((dist.parent / "package.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"
