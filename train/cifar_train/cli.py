"""`cifar-train RECIPE`: one command per registered recipe; every recipe value is a flag, defaulting to the
recipe's. `cifar-train recipes` lists them with their sources.
"""

from __future__ import annotations

import inspect
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cifar_runtime.cliflags import exit_codes_epilog, version_flag
from cifar_runtime.exitcodes import EXIT_USAGE, say_error, user_errors
from cifar_train import __version__
from cifar_train.config import RECIPES, Recipe, TrainConfig
from cifar_train.errors import UserError

PROG = "cifar-train"
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, epilog=exit_codes_epilog(PROG), rich_markup_mode=None
)
console = Console(stderr=True, soft_wrap=True)


@app.callback()
def main(
    version: Annotated[bool, version_flag(f"cifar-train {__version__}")] = False,
) -> None:
    """Train, calibrate and compare image classifiers."""


def run(cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    from cifar_train.config import validate_config

    with user_errors(PROG):
        validate_config(cfg)  # before torch loads: a bad flag is one line at once
    from cifar_train.run import train  # torch loads here, so --help stays fast

    last = Path(cfg.out) / "last.pt"
    stopped = (
        f"interrupted: rerun with --resume to continue from {last}"
        if last.is_file() or resume
        else "interrupted before the first epoch ended: nothing to resume; rerun the same command"
    )
    with user_errors(PROG, stopped):
        train(cfg, resume=resume, console=console, overwrite=overwrite)


def recipe_command(recipe: Recipe) -> None:
    """Register `cifar-train <recipe>` with one flag per config field (plus --resume and --overwrite)."""
    params = []
    for f in fields(TrainConfig):
        default = getattr(recipe.config, f.name)
        kind = {"int": int, "float": float, "bool": bool, "str": str}[f.type]
        # A switch takes no value: no "<bool>" metavar that would invite `--lookahead true`.
        annotation = Annotated[
            kind, typer.Option(help=f.metadata["help"], show_default=True, metavar="" if kind is bool else None)
        ]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    for name, help_ in (
        ("resume", "Continue from --out/last.pt (same flags)."),
        ("overwrite", "Start over in an --out that already holds a run (its files are replaced)."),
    ):
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=False,
                annotation=Annotated[bool, typer.Option(help=help_, metavar="")],
            )
        )

    def command(**kwargs: object) -> None:
        resume, overwrite = bool(kwargs.pop("resume")), bool(kwargs.pop("overwrite"))
        run(replace(recipe.config, **kwargs), resume, overwrite)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = recipe.summary[0].upper() + recipe.summary[1:] + "."
    app.command(name=recipe.name)(command)


for _recipe in RECIPES.values():
    recipe_command(_recipe)


@app.command()
def recipes() -> None:
    """List the registered recipes, what each changes from the seed CNN's, and where each choice comes from."""
    from cifar_train.models import MODELS

    print("architectures:")
    for spec in MODELS.values():
        ref = f"; reference {spec.reference.test_acc}% ({spec.reference.source})" if spec.reference else ""
        params = sum(p.numel() for p in spec.build(10).parameters()) / 1e6
        print(f"  {spec.name}: {spec.summary} ({params:.2f}M parameters){ref}")
    print("recipes:")
    base = RECIPES["cnn"].config
    for r in RECIPES.values():
        print(f"{r.name}: {r.summary}")
        changed = {
            f.name: getattr(r.config, f.name)
            for f in fields(TrainConfig)
            if getattr(r.config, f.name) != getattr(base, f.name) and f.name != "out"
        }
        if changed:
            print("  " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        for what, source in r.sources.items():
            print(f"  {what}: {source}")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders (metrics.json, history.csv).")],
    out: Annotated[Path | None, typer.Option(help="Write summary.json and time_to_accuracy.png here.")] = None,
    table: Annotated[
        bool,
        typer.Option(
            "--table",
            help="Also print a markdown row per run, with differences against the first run (an ablation table).",
        ),
    ] = False,
    pool: Annotated[
        list[str] | None,
        typer.Option(
            help="A flag, e.g. cpu-amp: count runs that differ only in it as one recipe (once it is shown not to "
            "change accuracy). Repeatable."
        ),
    ] = None,
) -> None:
    """Mean ± std of test accuracy over seeds per recipe, minutes per run, and a time-to-accuracy plot."""
    from cifar_train.summary import load_run, summarize
    from cifar_train.summary import table as run_table

    with user_errors(PROG):
        loaded = [load_run(run) for run in runs]
        for group in summarize(loaded, out, pool or []):
            print(group.line())
        if table:
            print(run_table(loaded))


@app.command("fit-temperature")
def fit_temperature(
    checkpoint: Annotated[Path, typer.Argument(help="A finished run's best.pt (with a validation split).")],
    data: Annotated[str, typer.Option(help="The run's data: ImageFolder root with train/ and test/.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for the run with its temperatures: best.pt, metrics.json, "
            "history.csv, calibration.png (never the checkpoint's own folder)."
        ),
    ],
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace --out/best.pt if it exists.", metavar="")] = False,
) -> None:
    """Fit a confidence temperature on the run's validation split (per TTA level) for a run trained before runs
    did it themselves; ECE, NLL and Brier before and after, on validation and test."""
    from cifar_train.distributed import select_device
    from cifar_train.temperature import fit_checkpoint

    with user_errors(PROG):
        fit_checkpoint(checkpoint, data, out, str(select_device(device, 0)), overwrite, print)


@app.command()
def bench(
    recipe: Annotated[str, typer.Argument(help="A recipe name (see `cifar-train recipes`).")] = "cnn",
    data: Annotated[Path, typer.Option(help="ImageFolder root with train/ and test/.")] = Path("data"),
    steps: Annotated[int, typer.Option(min=1, help="Batches to time.")] = 50,
    batch_size: Annotated[int, typer.Option(min=0, help="Images per step (0: the recipe's).")] = 64,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    cpu_amp: Annotated[bool, typer.Option(help="bfloat16 mixed precision on CPU, as in training.")] = False,
) -> None:
    """Training throughput: data pipeline alone, model-only train steps, and both together."""
    from cifar_train.bench import bench_training

    if recipe not in RECIPES:
        say_error(PROG, UserError(f"unknown recipe {recipe!r}: one of {', '.join(RECIPES)}"))
        raise typer.Exit(EXIT_USAGE)
    cfg = RECIPES[recipe].config
    cfg = replace(
        cfg,
        data=str(data),
        batch_size=batch_size or cfg.batch_size,
        workers=workers,
        device=device,
        val_size=0,
        cpu_amp=cpu_amp,
    )
    with user_errors(PROG):
        rows, info = bench_training(cfg, steps)
    print(
        f"{recipe} ({cfg.arch}), batch {cfg.batch_size}, {info['device']}, {info['precision']}, "
        f"{info['threads']} threads; {info['train_images']} train images decoded in {info['decode_seconds']:.1f}s"
    )
    print(f"{'':<44}{'images/s':>10}{'s/epoch':>10}")
    for r in rows:
        print(f"{r.name:<44}{r.images_per_s:>10.0f}{r.seconds_per_epoch:>10.1f}")
