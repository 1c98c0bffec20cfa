"""What every page shares: the reader's language, the app's config, models loaded once, errors as messages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def once(key: tuple, label: str, load: Callable[[Callable[[str], None]], object]) -> object:
    """`load(say)` the first time `key` is asked for in this process, inside a status box that shows its
    progress messages; the same object afterwards."""
    cache, lock = _loaded()
    with lock:
        if key not in cache:
            with st.status(label, expanded=False) as status:
                cache[key] = load(status.write)
                status.update(state="complete")
        return cache[key]


def recognition():
    """(detector, classifier or None, gate on): what `birds identify` opens with the same weights."""
    from birdsdao.recognition.identify import open_recognition

    weights = config().weights
    return once(("recognition", weights), t("loading_detector"), lambda say: open_recognition(weights))


def answering_model():
    """(model, None), or (None, why it did not load)."""
    from birdsdao.language_model.runtime import resolve_prefix, try_load_answering_model

    cfg = config()
    if cfg.no_llm:
        return None, t("no_llm_mode")
    prefix, bundled = resolve_prefix(cfg.base_model, cfg.prefix, cfg.no_prefix)
    key = ("model", cfg.base_model, str(prefix), str(cfg.settings.models_dir))
    return once(key, t("loading_model"), lambda say: try_load_answering_model(
        cfg.base_model, cfg.settings.models_dir, prefix=prefix, prefix_optional=bundled, progress=say))


def prepare_kb(name: str) -> None:
    """The built-in KB is built from the cards the first time it is needed (about a minute), with a bar."""
    from birdsdao.knowledge.builtin import is_builtin
    from birdsdao.knowledge.service import prepare

    if not is_builtin(name):
        return

    def build(say):
        bar = st.progress(0.0)
        prepare(address(), name, progress=lambda done, total: bar.progress(done / max(total, 1)), say=say)
        bar.empty()
        return True

    once(("kb ready", str(config().settings.kb_dir), name), t("preparing_cards"), build)


def show_sources(hits) -> None:
    if not hits:
        return
    lines = [f"[{number}] {hit.source}{f' p.{hit.page}' if hit.page else ''} #{hit.chunk} ({hit.score:.2f})"
             for number, hit in enumerate(hits, start=1)]
    st.caption(f"{t('sources')}:  \n" + "  \n".join(lines))
