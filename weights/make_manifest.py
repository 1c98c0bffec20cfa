"""Bundle what `weights/make_detector.sh` made: copy the weights into weights/ and write MANIFEST.json.

    python weights/make_manifest.py            # the detector (after make_detector.sh)
    python weights/make_manifest.py --prefix   # the language-model prefix (make_prefix.sh runs this)
    python weights/make_manifest.py --prefix-fingerprint  # re-record the prefix's base fingerprint (see below)
    python weights/make_manifest.py --classifier  # the species classifier (make_classifier.sh runs this)

Reads weights/work/{prepare,train,prune,finetune}.json, copies the fine-tuned pruned detector (full
precision) to weights/detector.pt with its ONNX export weights/detector.onnx, and the sparse-trained
unpruned one to weights/detector-unpruned.pt (for comparisons), measures top-1 species accuracy on the
validation photos, and records sha256, classes, image size, the commands, dataset sizes and metrics.
With --prefix it adds the files make_prefix.sh copied into weights/prefix/ and their training record
(base model, commands, data sizes, train_results, validation BLEU/ROUGE), leaving the detector's as they are.
With --prefix-fingerprint it loads the default model, computes its fingerprint as the installed birdsdao does
(needed only when the fingerprint's definition changes, never when a library is upgraded) and records it in
weights/prefix/birds_prefix.json and MANIFEST.json; the training record stays as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "weights" / "work"
OUT = ROOT / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read(name: str) -> dict:
    return json.loads((WORK / f"{name}.json").read_text(encoding="utf-8"))


def recipe(script: str = "make_detector.sh") -> list[str]:
    """The commands a recipe script runs, with its variables filled in (its defaults, or the environment's)."""
    import re

    text = (ROOT / "weights" / script).read_text(encoding="utf-8").replace("\\\n", " ")
    values = {"WORK": "weights/work", "BIRDS_HOME": "weights/work/home", "RUNS": "weights/work/home/runs"}
    for name, default in re.findall(r"^(\w+)=\$\{\w+:-(.*)\}$", text, re.M):
        values[name] = os.environ.get("BIRDS525" if name == "SRC" else name, default)
    values.update(re.findall(r"^(\w+)=([^\s$]+)$", text, re.M))  # plain assignments (OUT=weights/work/prefix)
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("birds "):
            line = re.sub(r"\s*>.*$", "", line)  # output redirections
            line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda match: os.environ.get(*match.groups()), line)
            line = re.sub(r"\$\{(\w+):\+([^}]*)\}", lambda match: match.group(2) if os.environ.get(match.group(1))
                          else "", line)  # ${RESUME:+--resume}: the option only when the variable is set
            line = re.sub(r"\$(\w+)", lambda match: values.get(match.group(1), match.group(0)), line)
            commands.append(" ".join(line.replace('"', "").split()))
    return commands


def species_accuracy(weights: Path, valid: Path, species: list[str]) -> dict[str, float]:
    """Share of validation photos (valid/<SPECIES>/*.jpg of the kept species) whose most confident bird is
    the photo's species; a photo with no bird counts as wrong."""
    from birdsdao.recognition.detector import open_detector
    from birdsdao.recognition.photos import open_photo

    detector = open_detector(weights, backend="torch")
    right = total = 0
    for folder in sorted(valid / name for name in species if (valid / name).is_dir()):
        for photo in sorted(folder.glob("*.jpg")):
            birds = detector.detect(open_photo(photo), conf=0.001, certain=0.0)
            right += bool(birds) and birds[0].species == folder.name
            total += 1
    return {"top1_species_accuracy": round(right / total, 4) if total else 0.0, "photos": total}


def main() -> None:
    from ultralytics import YOLO

    prepare, train, prune, finetune = (read(name) for name in ("prepare", "train", "prune", "finetune"))
    prune = prune.get("prune", prune)  # `birds prune --json` nests its report
    finetune = finetune.get("finetune", finetune)
    detector = OUT / "detector.pt"
    unpruned = OUT / "detector-unpruned.pt"
    shutil.copy(finetune["weights"], detector)
    shutil.copy(prune["source"], unpruned)  # the checkpoint that was pruned
    yolo = YOLO(str(detector))
    imgsz = int(yolo.overrides.get("imgsz") or 224)
    exported = Path(yolo.export(format="onnx", imgsz=imgsz, verbose=False))
    onnx = OUT / "detector.onnx"
    os.replace(exported, onnx)
    accuracy = species_accuracy(detector, Path(prepare["source"]) / "valid", prepare["kept"])
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": ("A demonstration: trained from scratch on a few photos per species." if prepare["images"]["train"]
                 < 10 * len(prepare["kept"]) else "Trained with weights/make_detector.sh."),
        "imgsz": imgsz,
        "classes": [yolo.names[i] for i in range(len(yolo.names))],
        "files": {
            "torch": {"path": detector.name, "sha256": sha256(detector), "bytes": detector.stat().st_size},
            "onnx": {"path": onnx.name, "sha256": sha256(onnx), "bytes": onnx.stat().st_size},
            "unpruned": {"path": unpruned.name, "sha256": sha256(unpruned), "bytes": unpruned.stat().st_size},
        },
        "commands": recipe(),
        "dataset": {"source": Path(prepare["source"]).name, "images": prepare["images"],
                    "species": len(prepare["kept"]), "missing_splits": prepare["missing_splits"],
                    "boxes": prepare.get("boxes")},
        "metrics": {
            "sparse_training": train.get("metrics", {}),
            "after_pruning_and_finetuning": finetune.get("metrics", {}),
            "validation_species": accuracy,
        },
        "pruning": {key: prune.get(key) for key in ("keep", "params_before", "params_after", "gflops_before",
                                                    "gflops_after", "removed_share_of_prunable")},
    }
    partial = OUT / ".MANIFEST.json.partial"
    partial.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, OUT / "MANIFEST.json")
    print(json.dumps({key: manifest[key] for key in ("imgsz", "metrics", "pruning")}, indent=2))


def add_prefix() -> None:
    """Record weights/prefix/ (copied there by make_prefix.sh) in MANIFEST.json."""
    prefix = OUT / "prefix"
    result = read("ptune")
    marker = json.loads((prefix / "birds_prefix.json").read_text(encoding="utf-8"))
    manifest = json.loads((OUT / "MANIFEST.json").read_text(encoding="utf-8"))
    for name in ("adapter_model.safetensors", "adapter_config.json", "birds_prefix.json"):
        path = prefix / name
        manifest["files"][f"prefix/{name}"] = {"path": f"prefix/{name}", "sha256": sha256(path),
                                               "bytes": path.stat().st_size}
    commands = recipe("make_prefix.sh")
    validation = commands[0].split("--val-data ", 1)[1].split()[0] if "--val-data " in commands[0] else "DATA"
    manifest["prefix"] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": marker["base_model"], "base_fingerprint": marker["base_fingerprint"],
        "pre_seq_len": marker["pre_seq_len"], "prefix_projection": marker["prefix_projection"],
        "commands": commands,
        "data": {"train_records": result["train_examples"], "validation_records": result["val_examples"],
                 "validation": f"the first records of {validation}: species held out of the training records"},
        "train_results": result["train"],
        "validation_metrics": result["eval"],
    }
    partial = OUT / ".MANIFEST.json.partial"
    partial.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, OUT / "MANIFEST.json")
    print(json.dumps(manifest["prefix"], ensure_ascii=False, indent=2))


def record_prefix_fingerprint() -> None:
    from birdsdao.language_model.models import load_model
    from birdsdao.settings import load_settings

    fingerprint = load_model(None, load_settings().models_dir, progress=print).fingerprint
    marker_path = OUT / "prefix" / "birds_prefix.json"
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    marker["base_fingerprint"] = fingerprint
    marker_path.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    manifest = json.loads((OUT / "MANIFEST.json").read_text(encoding="utf-8"))
    manifest["files"]["prefix/birds_prefix.json"].update(sha256=sha256(marker_path), bytes=marker_path.stat().st_size)
    manifest["prefix"]["base_fingerprint"] = fingerprint
    partial = OUT / ".MANIFEST.json.partial"
    partial.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, OUT / "MANIFEST.json")
    print(f"{marker_path}: base_fingerprint {fingerprint}")


def add_classifier() -> None:
    """Record weights/classifier/ (written by make_classifier.sh) in MANIFEST.json, with the validation numbers
    of the same recipe's head fitted on photos 1-3 and scored on photo 4."""
    report = read("train-classifier")
    prepare = read("classifier-prepare")
    manifest = json.loads((OUT / "MANIFEST.json").read_text(encoding="utf-8"))
    for name in ("classifier.json", "classes.txt", "head.safetensors", "classifier.onnx"):
        path = OUT / "classifier" / name
        manifest["files"][f"classifier/{name}"] = {"path": f"classifier/{name}", "sha256": sha256(path),
                                                   "bytes": path.stat().st_size}
    metadata = json.loads((OUT / "classifier" / "classifier.json").read_text(encoding="utf-8"))
    manifest["classifier"] = {
        "created": metadata["created"],
        "backbone": report["backbone"], "backbone_package": report["backbone_package"], "head": report["head"],
        "fit_on": report["fit_on"], "classes": report["classes"],
        "commands": recipe("make_classifier.sh"),
        "dataset": {"source": Path(prepare["source"]).name, "images": prepare["images"],
                    "species": len(prepare["kept"])},
        "validation": {"fitted_on": "photos 1-3 of each species (the train split)",
                       "scored_on": "photo 4 of each species (the val split)", **report["metrics"]["val"]},
        "heads_on_val": report["heads_on_val"],
        "gate_threshold": metadata["gate"]["threshold"], "similarity_threshold": metadata["gate"]["similarity"],
        "onnx_max_abs_difference_from_torch": report["onnx"]["max_abs_difference_from_torch"],
    }
    partial = OUT / ".MANIFEST.json.partial"
    partial.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, OUT / "MANIFEST.json")
    print(json.dumps(manifest["classifier"], ensure_ascii=False, indent=2))


if __name__ == "__main__":
    if sys.argv[1:] == ["--prefix"]:
        add_prefix()
    elif sys.argv[1:] == ["--prefix-fingerprint"]:
        record_prefix_fingerprint()
    elif sys.argv[1:] == ["--classifier"]:
        add_classifier()
    else:
        main()
