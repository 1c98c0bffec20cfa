"""`Assistant`: identify(photos), describe(birds), ask(question, history), with every model loaded once.

What used to be wired in three places (the identify and ask commands, the UI pages, recognition's describe)
lives here once: the KB preparation, the one retriever, the rule for when a language model is needed and what a
model that cannot load means, and the description of each species found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from birdsdao.settings import Settings

BUILTIN_KB = "birds"  # the built-in 鸟类百科 (birdsdao.knowledge.builtin.BUILTIN_NAME; chromadb stays unimported)
CONFIGURED: Any = object()  # ask(kb=...) left out: the config's KB (None itself means no KB)


class Reporter:
    """How the assistant tells a person what it is doing. This one says nothing; the CLI's prints to stderr
    and the UI's writes into status boxes."""

    def say(self, message: str) -> None:
        pass

    def busy(self, label: str) -> AbstractContextManager:
        return nullcontext()

    def progress(self, label: str) -> AbstractContextManager[Callable[[int, int], None] | None]:
        return nullcontext(None)


@dataclass(frozen=True)
class ModelChoice:
    """The language model that writes answers (the commands' --base-model, --prefix, --no-prefix, --device,
    --quantization-bit); `off` (--no-llm) means none: answers are the retrieved text."""

    base_model: str | None = None
    prefix: Path | None = None
    no_prefix: bool = False
    device: str = "cpu"
    quantization_bit: int | None = None
    off: bool = False


@dataclass
class AssistantConfig:
    settings: Settings
    kb: str | None = BUILTIN_KB  # None: the model alone, no retrieval (--no-kb)
    chroma_host: str | None = None
    chroma_port: int | None = None
    method: str = "hybrid"  # retrieval: hybrid, dense or bm25
    k: int = 3  # passages per answer
    embedding_model: str | None = None  # None: the model recorded with the KB
    model: ModelChoice = field(default_factory=ModelChoice)
    generate: bool = False  # let the model write where the default model quotes the passages (docs/answers.md)
    generation: object | None = None  # birdsdao.language_model.generate.GenerationSettings; None: its defaults
    # recognition (birds identify): see birdsdao.recognition.identify.open_recognition
    weights: Path | None = None
    backend: str = "auto"
    imgsz: int | None = None
    detector_device: str = "cpu"
    classifier: str | None = None
    gate: bool | None = None

    @property
    def style(self) -> str:
        """How a KB answer comes about (birdsdao.assistant.answer.Asker): the passages whole without a model;
        written by a model of the user's own or when asked; else where the default model was measured fit."""
        if self.model.off:
            return "passages"
        return "generate" if self.generate or self.model.base_model is not None else "auto"

    def validate(self) -> None:
        from birdsdao.errors import InvalidInputError
        from birdsdao.knowledge.retrieval import METHODS

        if self.method not in METHODS:
            raise InvalidInputError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.model.off and self.kb is None:
            raise InvalidInputError("--no-llm answers with retrieved passages, so it cannot go with --no-kb")
        if self.model.off and self.generate:
            raise InvalidInputError("--no-llm and --generate contradict each other")


class Reply:
    """An answer that completes itself as it streams: iterate for the pieces of its text (once); when the
    iteration ends, `answer` is final (its text, mode, guard verdict). `result()` drains what is left."""

    def __init__(self, answer, pieces: Iterator[str]) -> None:
        self.answer = answer
        self._pieces = iter(pieces)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def result(self):
        for _ in self._pieces:
            pass
        return self.answer


class Assistant:
    """identify, describe and ask over one configuration; the heavy parts load on first use and stay."""

    def __init__(self, config: AssistantConfig, reporter: Reporter | None = None) -> None:
        config.validate()
        self.config = config
        self.reporter = reporter or Reporter()
        self._ready_kbs: set[str] = set()
        self._embedders: dict[str, object] = {}
        self._model: object | None = None
        self._loading: Future | None = None  # the model's load, running in a thread
        self.model_problem: str | None = None  # why the model did not load, when answers fell back to passages
        self._recognition: tuple | None = None

    # -- checks that must come before any slow work ------------------------------------------------------------

    def check_model_options(self) -> None:
        """Typos and impossible choices fail now, not after the photos are read or a KB is built: a model
        folder or prefix that is not there, --prefix with --no-prefix, quantization without a CUDA GPU."""
        from birdsdao.language_model.models import check_quantization
        from birdsdao.language_model.runtime import check_model_paths, resolve_prefix

        choice = self.config.model
        if choice.off:
            return
        check_model_paths(choice.base_model, choice.prefix)
        resolve_prefix(choice.base_model, choice.prefix, choice.no_prefix)
        if choice.quantization_bit is not None:
            check_quantization(choice.quantization_bit, choice.device)

    # -- knowledge ---------------------------------------------------------------------------------------------

    @property
    def address(self):
        from birdsdao.knowledge.service import StoreAddress

        config = self.config
        return StoreAddress(config.settings.kb_dir, config.chroma_host, config.chroma_port if config.chroma_host
                            else None)

    def prepare_kb(self, name: str | None = None) -> str:
        """The KB ready to search: the built-in one is built from the cards on first use; another must exist."""
        from birdsdao.knowledge.service import get_info, prepare

        name = name or self.config.kb or BUILTIN_KB
        if name not in self._ready_kbs:
            with self.reporter.progress("Embedding the species cards") as bar:
                prepare(self.address, name, progress=bar, say=self.reporter.say)
            get_info(self.address, name)  # a KB that does not exist fails here, before any model loads
            self._ready_kbs.add(name)
        return name

    def kb_ready(self, name: str) -> bool:
        return name in self._ready_kbs

    def _embedder(self, name: str):
        from birdsdao.knowledge.service import embedder_for

        if name not in self._embedders:
            self._embedders[name] = embedder_for(self.address, name, self.config.embedding_model)
        return self._embedders[name]

    def retriever(self, name: str | None = None, *, species: str | None = None,
                  lang: str | None = None) -> Callable[[str], list]:
        """The one retriever: `question -> hits`. With `species` and the built-in KB, only that species' card in
        `lang`, ranked by BM25 (every chunk is about the bird already, and no embedding model need load);
        otherwise the configured method over the whole KB."""
        from birdsdao.knowledge.builtin import is_builtin
        from birdsdao.knowledge.service import search_kb

        name = self.prepare_kb(name)
        address, k = self.address, self.config.k
        if species is not None and is_builtin(name):
            where, method, embedder = {"species": species, "lang": lang}, "bm25", None
        else:
            where, method = None, self.config.method
            embedder = None if method == "bm25" else self._embedder(name)

        def retrieve(question: str):
            return search_kb(address, name, embedder, question, k=k, method=method, where=where)

        return retrieve

    # -- the language model ------------------------------------------------------------------------------------

    def needs_model(self, lang: str | None = None, kb: str | None = CONFIGURED) -> bool:
        """Whether an answer in `lang` (None: either language, as in a chat) from `kb` will be written by the model."""
        from birdsdao.assistant.answer import generates

        if self.config.model.off:
            return False
        if (self.config.kb if kb is CONFIGURED else kb) is None:
            return True
        return any(generates(self.config.style, one) for one in ((lang,) if lang else ("zh", "en")))

    def model(self, *, required: bool):
        """The answering model, loaded once. With a KB to fall back on (`required` False), a model that cannot
        load is None, `model_problem` says why, and answers show retrieved passages; without one it is an error."""
        return self.load_model_in_background(required=required)()

    def load_model_in_background(self, *, required: bool) -> Callable[[], object | None]:
        """Start loading the answering model in a thread; the function returned waits for it (`model`'s rules).
        llama.cpp loads in C code that leaves Python free, so a question's retrieval runs meanwhile."""
        from birdsdao.errors import BirdsError
        from birdsdao.language_model.runtime import choose_engine, load_answering_model, resolve_prefix

        if self._model is not None or (self.model_problem is not None and not required):
            return lambda: self._model
        if self._loading is None:
            self.check_model_options()
            choice = self.config.model
            prefix, bundled = resolve_prefix(choice.base_model, choice.prefix, choice.no_prefix)
            options = {"prefix": prefix, "prefix_optional": bundled, "device": choice.device,
                       "progress": self.reporter.say, "quantization_bit": choice.quantization_bit}
            # choosing imports the engine here: Python work, which a thread would only share the interpreter
            # lock for; the thread then spends its time in the engine's loading code, beside this one's retrieval
            choose_engine(choice.base_model, device=choice.device, quantization_bit=choice.quantization_bit)
            self._loading = _in_thread(load_answering_model, choice.base_model, self.config.settings.models_dir,
                                       **options)

        loading = self._loading

        def wait():  # any number of waiters (the UI's sessions) share the one load
            with self.reporter.busy("Loading the language model …"):
                try:
                    self._model, self.model_problem = loading.result(), None
                except (BirdsError, OSError) as exc:
                    if required:
                        raise
                    self.model_problem = str(exc)
                finally:
                    if self._loading is loading:
                        self._loading = None
            if self.model_problem:
                self.reporter.say(f"The language model did not load ({self.model_problem}); answering with "
                                  "retrieved passages.")
            return self._model

        return wait

    # -- the three jobs ----------------------------------------------------------------------------------------

    @property
    def model_loaded(self) -> bool:
        """Whether the model was loaded or tried (the UI shows the first load in a status box)."""
        return self._model is not None or self.model_problem is not None

    def ask(self, question: str, history: list[tuple[str, str]] | None = None, *,
            kb: str | None = CONFIGURED) -> Reply:
        """An answer to `question` from `kb` (the config's unless given; None: the model alone). `history`'s
        (question, answer) rounds go into the prompt, and the round is added once the reply has streamed to its end."""
        from birdsdao.assistant.answer import Asker, question_language

        kb = self.config.kb if kb is CONFIGURED else kb
        needed = self.needs_model(question_language(question), kb)
        # the model loads while the passages are retrieved
        load_model = self.load_model_in_background(required=kb is None) if needed else None
        retrieve = self.retriever(kb) if kb is not None else None
        asker = Asker(retrieve=retrieve, load_model=load_model, style=self.config.style,
                      settings=self._generation(), history=history if history is not None else [])
        answer, pieces = asker.ask(question)
        return Reply(answer, pieces)

    def recognition(self) -> tuple:
        """(detector, classifier or None, gate on), opened once (`recognition_loaded` says whether it was)."""
        from birdsdao.recognition.identify import open_recognition

        if self._recognition is None:
            config = self.config
            self._recognition = open_recognition(config.weights, config.backend, config.imgsz,
                                                 config.detector_device, config.classifier, config.gate)
        return self._recognition

    @property
    def recognition_loaded(self) -> bool:
        return self._recognition is not None

    def identify(self, photos: list, options=None) -> Iterator:
        """One `PhotoResult` per photo, in order (unreadable ones carry their error)."""
        from birdsdao.recognition.identify import IdentifyOptions, identify_photos

        detector, classifier, gate = self.recognition()
        options = replace(options or IdentifyOptions(), gate=gate)
        yield from identify_photos(photos, detector, options, classifier)

    def recognition_summary(self) -> dict:
        detector, classifier, gate = self.recognition()
        return {"weights": str(detector.path), "backend": detector.backend, "imgsz": detector.imgsz,
                "classifier": str(classifier.info.folder) if classifier else None,
                "gate": classifier.info.gate_threshold if gate else None}

    def describe(self, birds: list, lang: str, *, passages: bool = False) -> Iterator[tuple[object, Reply]]:
        """For each species (the `Bird`s of `species_to_describe`), its description as a Reply. From the built-in
        KB a description is drawn from the bird's own card; `passages` shows the card's passages whole (the UI's
        "card text only"). Take each reply to its end before the next."""
        from birdsdao.assistant.answer import Asker
        from birdsdao.knowledge.builtin import is_builtin
        from birdsdao.prompts import describe_question

        if not birds:
            return
        name = self.prepare_kb(self.config.kb or BUILTIN_KB)
        own_card = is_builtin(name)
        style = "passages" if passages else self.config.style
        model = None if passages or not self.needs_model(lang) else self.model(required=False)
        for bird in birds:
            retrieve = self.retriever(name, species=bird.species if own_card else None, lang=lang)
            asker = Asker(retrieve=retrieve, model=model, settings=self._generation(), style=style)
            answer, pieces = asker.ask(describe_question(bird.species, bird.english_name, bird.chinese_name, lang))
            yield bird, Reply(answer, passages_not_refusal(answer, pieces) if own_card else pieces)

    def _generation(self):
        from birdsdao.language_model.generate import GenerationSettings

        return self.config.generation or GenerationSettings(max_new_tokens=160)  # the commands' default


def _in_thread(function, *args, **kwargs) -> Future:
    """`function` run in a daemon thread: a process that fails meanwhile (no such KB) exits without waiting."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as exc:  # handed to whoever waits, in their thread
            future.set_exception(exc)

    threading.Thread(target=run, name="birds-model-load", daemon=True).start()
    return future


def passages_not_refusal(answer, pieces: Iterator[str]) -> Iterator[str]:
    """A description drawn from the bird's own card cannot lack an answer, so the model saying "the known
    information cannot answer this" is the small model failing: the card's passages are shown instead,
    labelled as retrieved text (as with --no-llm). Text that could still become the refusal is held back,
    so the refusal itself is never shown; any other answer streams as it comes."""
    from birdsdao.assistant.answer import retrieved_text
    from birdsdao.prompts import CANNOT_ANSWER

    refusal = CANNOT_ANSWER[answer.lang]
    held: str | None = ""
    for piece in pieces:
        if held is None:
            yield piece
            continue
        held += piece
        if not refusal.startswith(held.lstrip()):
            yield held
            held = None
    if held is None:
        return
    if answer.mode == "grounded" and held.strip().rstrip("。.") == refusal.rstrip("。."):
        answer.mode = "retrieved"
        answer.text = retrieved_text(answer.hits, answer.lang)
        yield answer.text
    elif held:
        yield held
