"""`birds identify` as a library: photos in, birds named and counted, annotated copies.

The assistant (birdsdao.assistant) calls it for the CLI and the web UI, and describes the species found.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from birdsdao.recognition.detector import Bird
from birdsdao.recognition.photos import collect_photos, open_photo


@dataclass
class PhotoResult:
    path: str
    width: int = 0
    height: int = 0
    birds: list[Bird] = field(default_factory=list)
    annotated: str | None = None
    error: str | None = None  # the photo could not be read
    bird_probability: float | None = None  # the gate's ImageNet bird probability, when a classifier ran
    similarity: float | None = None  # the gate's similarity to the nearest species prototype, likewise

    @property
    def counts(self) -> dict[str, int]:
        """Birds per species, certain ones only (an uncertain bird is not counted as any species)."""
        return dict(Counter(bird.species for bird in self.birds if bird.certain))

    @property
    def uncertain(self) -> int:
        return sum(not bird.certain for bird in self.birds)

    def to_dict(self) -> dict:
        return {"path": self.path, "width": self.width, "height": self.height, "error": self.error,
                "counts": self.counts, "uncertain": self.uncertain, "annotated": self.annotated,
                "bird_probability": None if self.bird_probability is None else round(self.bird_probability, 4),
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "birds": [bird.to_dict() for bird in self.birds]}


# --certain when none is given. A classifier's probability is held to more: taught 161 species, it names
# 26% of the sample's photos of the 364 others as one of them at 0.5, 11% at 0.7 (and 78% → 63% of its own
# species' held-out photos; docs/recognition.md). A user's detector naming its own classes keeps 0.5.
CLASSIFIER_CERTAIN = 0.7
DETECTOR_CERTAIN = 0.5


@dataclass
class IdentifyOptions:
    conf: float = 0.25  # least confidence of a bird worth reporting
    iou: float = 0.7
    certain: float | None = None  # below it a bird is uncertain: candidates shown, not described (None: the
    # default of whatever names the birds, CLASSIFIER_CERTAIN or DETECTOR_CERTAIN)
    save: Path | None = None  # folder for annotated copies
    lang: str = "zh"
    # With a classifier: a photo whose bird probability or similarity to the nearest species is below the
    # classifier's thresholds has no bird whatever the detector says, and one that looks like a bird where
    # the detector found none is one bird.
    gate: bool = False


def certain_threshold(options: IdentifyOptions, classifier: bool) -> float:
    """The --certain in force: the one given, else the default of what names the birds."""
    if options.certain is not None:
        return options.certain
    return CLASSIFIER_CERTAIN if classifier else DETECTOR_CERTAIN


def check_inputs(specs: list[str | Path], save: Path | None = None) -> None:
    """What can be checked before any model loads: some photo is there to read, and --save can be written."""
    from birdsdao.errors import InvalidInputError
    from birdsdao.inputs import writable_folder

    photos, missing = collect_photos(specs)
    if not photos:
        reasons = "; ".join(f"{item.path}: {item.reason}" for item in missing)
        raise InvalidInputError(reasons or "no photo given", hint="give photos, folders of photos or 'glob*.jpg'")
    if save is not None:
        writable_folder(save, "the folder for annotated copies (--save)")


def identify_photos(specs: list[str | Path], detector, options: IdentifyOptions,
                    classifier=None) -> Iterator[PhotoResult]:
    """One result per photo, in order; unreadable files and names that match nothing come back with `error`.

    `detector` is what `birdsdao.recognition.detector.open_detector` gives (ultralytics or onnxruntime);
    `classifier`, from `open_recognition`, names the birds it finds (None: the detector's own classes)."""
    options = replace(options, certain=certain_threshold(options, classifier is not None))
    photos, missing = collect_photos(specs)
    for item in missing:
        yield PhotoResult(path=item.path, error=item.reason)
    taken: set[str] = set()
    for path in photos:
        try:
            image = open_photo(path)
        except Exception as exc:  # Pillow raises several types for bad files; the reason is what matters
            yield PhotoResult(path=str(path), error=f"not a readable image ({type(exc).__name__}: {exc})")
            continue
        result = PhotoResult(path=str(path), width=image.width, height=image.height)
        result.birds = detector.detect(image, conf=options.conf, iou=options.iou, certain=options.certain)
        if classifier is not None:
            result.birds, result.bird_probability, result.similarity = name_birds(image, result.birds, classifier,
                                                                                  options)
        if options.save is not None:
            from birdsdao.recognition.annotate import save_annotated

            result.annotated = str(save_annotated(image, result.birds, options.save, path, options.lang, taken))
        yield result


def name_birds(image, found: list[Bird], classifier, options: IdentifyOptions) -> tuple[list[Bird], float, float]:
    """The detector's birds named by the classifier (its best species, probability and top five), and the
    photo's bird probability and nearest-prototype similarity. The whole photo and every padded box go
    through the network in one batch; a box whose padded crop is the whole photo reuses the photo's answer."""
    from birdsdao.recognition.classifier import ranked
    from birdsdao.recognition.crops import padded_crop
    from birdsdao.recognition.detector import CANDIDATE_FLOOR, Candidate

    crops = [padded_crop(image, bird.box) for bird in found]
    fresh = [crop for crop in crops if crop is not image]
    probs, bird_probability, similarity = classifier.classify([image, *fresh])
    gate, like = float(bird_probability[0]), float(similarity[0])
    if options.gate and (gate < classifier.info.gate_threshold or like < classifier.info.similarity_threshold):
        return [], gate, like
    rows, row = [], 1
    for crop in crops:
        rows.append(probs[0] if crop is image else probs[row])
        row += crop is not image
    boxes = [(bird.box, bird.confidence) for bird in found]
    if not found and options.gate:  # the gate saw a bird the detector missed: the whole photo is its box
        boxes, rows = [((0.0, 0.0, float(image.width), float(image.height)), None)], [probs[0]]
    cards = species_names()
    named = []
    for (box, detection), probabilities in zip(boxes, rows, strict=True):
        top = ranked(probabilities, classifier.info.classes)
        species, confidence = top[0]
        english, chinese = cards.get(species, (species.title(), ""))
        candidates = [Candidate(name, value) for name, value in top if value >= CANDIDATE_FLOOR]
        named.append(Bird(species, english, chinese, confidence, box, confidence >= options.certain,
                          candidates, detection))
    return sorted(named, key=lambda bird: -bird.confidence), gate, like


@functools.cache
def species_names() -> dict[str, tuple[str, str]]:
    """The cards' (English, Chinese) names, read once: parsing 161 YAML cards cost 0.13 s a photo."""
    from birdsdao.species_cards import card_names

    return card_names()


def open_recognition(weights=None, backend: str = "auto", imgsz: int | None = None, device: str = "cpu",
                     classifier: str | Path | None = None, gate: bool | None = None):
    """The detector, the classifier that names its birds (or None) and whether the gate is on.

    `classifier`: a classifier folder, "none" (the detector's own classes), or None: the bundled classifier
    with the bundled detector, the detector's own classes with a user's detector (it was trained on the
    user's species). `gate`: None means on with the bundled detector and off with a user's (trusted as it is)."""
    from birdsdao.errors import InvalidInputError
    from birdsdao.recognition.classifier import open_classifier
    from birdsdao.recognition.detector import open_detector

    bundled = weights is None
    use_classifier = bundled if classifier is None else str(classifier).lower() != "none"
    gate = bundled and use_classifier if gate is None else gate
    if gate and not use_classifier:
        raise InvalidInputError("--gate needs a classifier: the bird probability comes from its backbone",
                                hint="leave out --classifier none, or pass --classifier PATH")
    detector = open_detector(weights, backend=backend, imgsz=imgsz, device=device)
    named_by = open_classifier(classifier, device=device, backend=backend) if use_classifier else None
    return detector, named_by, gate and use_classifier


def require_some_read(results: list[PhotoResult]) -> None:
    """When no photo could be read: one line naming the photo and why (or the first few of them)."""
    from birdsdao.errors import InvalidInputError

    unread = [result for result in results if result.error is not None]
    if not unread or len(unread) < len(results):
        return
    hint = "give photos Pillow reads (jpg, png, webp …), folders of them, or 'glob*.jpg'"
    if len(unread) == 1:
        raise InvalidInputError(f"{unread[0].path}: {unread[0].error}", hint=hint)
    listed = "; ".join(f"{result.path}: {result.error}" for result in unread[:3])
    raise InvalidInputError(f"none of the photos could be read ({listed}"
                            + ("; …)" if len(unread) > 3 else ")"), hint=hint)


def species_to_describe(results: list[PhotoResult]) -> list[Bird]:
    """Each species found with certainty, once, in the order it was first seen (the most confident sighting)."""
    best: dict[str, Bird] = {}
    for result in results:
        for bird in result.birds:
            if bird.certain and (bird.species not in best or bird.confidence > best[bird.species].confidence):
                best[bird.species] = bird
    return list(best.values())
