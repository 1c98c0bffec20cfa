"""What every page shares: the reader's language, the app's config, models loaded once, errors as messages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import streamlit as st

from birdsdao.errors import BirdsError
from birdsdao.ui.config import UiConfig
from birdsdao.ui.texts import TEXTS

log = logging.getLogger("birdsdao.ui")


LANGUAGES = {"中文": "zh", "English": "en"}  # the sidebar's switch


def lang() -> str:
    return LANGUAGES[st.session_state.get("language", "中文")]


def language_switch() -> None:
    """The sidebar's 中文 / English switch. Each page draws it (drawn by the app script before the page,
    Streamlit's AppTest loses it on reruns); its value lives under its key, so the navigation's titles,
    built before the page runs, already follow it."""
    st.sidebar.radio(TEXTS["zh"]["language"], list(LANGUAGES), key="language", horizontal=True)


def t(key: str, **values) -> str:
    text = TEXTS[lang()][key]
    return text.format(**values) if values else text


def config() -> UiConfig:
    return UiConfig.from_env()


def address():
    from birdsdao.knowledge.service import StoreAddress

    cfg = config()
    return StoreAddress(cfg.settings.kb_dir, cfg.chroma_host, cfg.chroma_port)


@contextmanager
def guarded() -> Iterator[None]:
    """A failure becomes a message on the page: the hint for our own errors, the type and text otherwise."""
    try:
        yield
    except BirdsError as exc:
        st.error(t("error", message=str(exc)) + (f"\n\n{exc.hint}" if exc.hint else ""))
    except Exception as exc:  # the page stays usable; the traceback goes to the server's log only
        log.exception("birds ui")
        st.error(t("error", message=f"{type(exc).__name__}: {exc}"))


@st.cache_resource(show_spinner=False)
def _loaded() -> tuple[dict, threading.Lock]:
    """Process-wide: heavy objects by key, shared by every browser session (Streamlit runs them in threads)."""
    return {}, threading.Lock()


class StreamlitReporter:
    """The assistant's Reporter on a page: messages land in the status box open at the time."""

    def say(self, message: str) -> None:
        st.write(message)

    def busy(self, label: str):
        return nullcontext()  # the pages open their own status boxes, with labels in the reader's language

    @contextmanager
    def progress(self, label: str):
        bar = st.progress(0.0)
        try:
            yield lambda done, total: bar.progress(done / max(total, 1))
        finally:
            bar.empty()


def assistant():
    """The app's one Assistant, shared by every page and browser session: what `birds identify` and `birds ask`
    use, built from `birds ui`'s options; the detector, classifier, embedders and model load once."""
    from pathlib import Path

    from birdsdao.assistant import Assistant, AssistantConfig, ModelChoice
    cfg = config()
    cache, lock = _loaded()
    with lock:
        key = ("assistant", repr(cfg))
        if key not in cache:
            model = ModelChoice(cfg.base_model, Path(cfg.prefix) if cfg.prefix else None, cfg.no_prefix,
                                off=cfg.no_llm)
            cache[key] = Assistant(AssistantConfig(
                settings=cfg.settings, chroma_host=cfg.chroma_host, chroma_port=cfg.chroma_port, model=model,
                weights=Path(cfg.weights) if cfg.weights else None), StreamlitReporter())
        return cache[key]


def recognition() -> None:
    """The detector and classifier opened, the first time inside a status box."""
    helper = assistant()
    _, lock = _loaded()
    with lock:
        if not helper.recognition_loaded:
            with st.status(t("loading_detector"), expanded=False) as status:
                helper.recognition()
                status.update(state="complete")


def answering_model():
    """(model, None), or (None, why there is none); the first load happens inside a status box."""
    if config().no_llm:
        return None, t("no_llm_mode")
    helper = assistant()
    _, lock = _loaded()
    try:
        with lock:
            if not helper.model_loaded:
                with st.status(t("loading_model"), expanded=False) as status:
                    helper.model(required=False)
                    status.update(state="complete")
        return helper.model(required=False), helper.model_problem
    except BirdsError as exc:  # a model folder or prefix that is not there: the page says so and stays usable
        return None, str(exc)


def prepare_kb(name: str) -> None:
    """The built-in KB is built from the cards the first time it is needed (about a minute), with a bar."""
    from birdsdao.knowledge.builtin import is_builtin

    if not is_builtin(name):
        return
    helper = assistant()
    _, lock = _loaded()
    with lock:
        if not helper.kb_ready(name):
            with st.status(t("preparing_cards"), expanded=False) as status:
                helper.prepare_kb(name)
                status.update(state="complete")


def show_sources(hits) -> None:
    if not hits:
        return
    lines = [f"[{number}] {hit.citation} ({hit.score:.2f})"
             for number, hit in enumerate(hits, start=1)]
    st.caption(f"{t('sources')}:  \n" + "  \n".join(lines))
