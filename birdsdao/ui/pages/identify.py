"""Recognition: photos in; annotated images, a species table, and a description of each species found."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from birdsdao.data_prep.images import safe_stem
from birdsdao.ui.common import (
    answering_model,
    assistant,
    config,
    guarded,
    lang,
    language_switch,
    prepare_kb,
    recognition,
    show_sources,
    t,
)

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]


def species_rows(result, language: str) -> list[dict]:
    """One row per species in a photo: name, count and best confidence (certain birds only)."""
    rows: dict[str, dict] = {}
    for bird in result.birds:
        if not bird.certain:
            continue
        name = bird.chinese_name if language == "zh" and bird.chinese_name else bird.english_name
        row = rows.setdefault(bird.species, {t("species"): bird.species, t("name"): name, t("count"): 0,
                                             t("best_confidence"): 0.0})
        row[t("count")] += 1
        row[t("best_confidence")] = round(max(row[t("best_confidence")], bird.confidence), 3)
    return list(rows.values())


def save_uploads(files) -> tuple[Path, list[Path]]:
    """The uploads as files (the library reads photos from paths); their own names, made safe, kept for errors."""
    folder = Path(tempfile.mkdtemp(prefix="birds-ui-"))
    paths = []
    for number, upload in enumerate(files):
        name = Path(upload.name)
        path = folder / f"{number:03d}-{safe_stem(name.stem)}{name.suffix.lower()}"
        path.write_bytes(upload.getvalue())
        paths.append(path)
    return folder, paths


def run_identify(files, conf: float, language: str) -> tuple[list, list[bytes | None]]:
    """Results, and each photo's annotated image as bytes (kept in the session; the files are removed)."""
    from birdsdao.recognition.identify import IdentifyOptions

    folder, paths = save_uploads(files)
    try:
        recognition()
        options = IdentifyOptions(conf=conf, save=folder / "annotated", lang=language)
        results = list(assistant().identify(paths, options))
        images = [Path(result.annotated).read_bytes() if result.annotated else None for result in results]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for result, upload in zip(results, files, strict=True):
        result.path, result.annotated = upload.name, None  # the reader knows the photo by the name it had
    return results, images


def show_results(results, images: list[bytes | None], language: str) -> None:
    for result, image in zip(results, images, strict=True):
        st.subheader(result.path)
        if result.error:
            st.error(f"{t('unreadable')} {result.path}: {result.error}")
            continue
        if image:
            st.image(image, width="content" if result.width < 900 else "stretch")
        if not result.birds:
            st.info(t("no_bird"))
            continue
        rows = species_rows(result, language)
        if rows:
            st.dataframe(rows, hide_index=True)
        for bird in result.birds:
            if not bird.certain:
                candidates = ", ".join(f"{c.species} {c.confidence:.2f}" for c in bird.candidates)
                st.warning(t("uncertain", confidence=bird.confidence, candidates=candidates))


def write_descriptions(results, language: str, card_only: bool) -> list[dict]:
    """Stream a description for each species found; return them so a rerun shows them without regenerating."""
    from birdsdao.knowledge.builtin import BUILTIN_NAME
    from birdsdao.recognition.identify import species_to_describe

    birds = species_to_describe(results)
    if not birds:
        return []
    prepare_kb(BUILTIN_NAME)
    if not card_only and assistant().needs_model(language):
        model, problem = answering_model()
        if model is None:
            st.warning(t("model_unavailable", problem=problem))
    st.header(t("descriptions"))
    written = []
    # as `birds identify`: the card's passages whole when asked for, else what the assistant's style says
    for bird, reply in assistant().describe(birds, language, passages=card_only):
        heading = f"{bird.chinese_name}（{bird.english_name}）" if language == "zh" else bird.english_name
        st.subheader(heading)
        st.write_stream(reply)
        show_sources(reply.answer.hits)
        written.append({"heading": heading, "text": reply.answer.text, "hits": reply.answer.hits})
    return written


def show_descriptions(descriptions: list[dict]) -> None:
    if descriptions:
        st.header(t("descriptions"))
    for item in descriptions:
        st.subheader(item["heading"])
        st.markdown(item["text"])
        show_sources(item["hits"])


language_switch()
st.title(t("page_identify"))
files = st.file_uploader(t("upload_photos"), type=PHOTO_TYPES, accept_multiple_files=True)
conf = st.slider(t("confidence"), min_value=0.05, max_value=0.95, value=0.25, step=0.05)
left, right = st.columns(2)
describe_birds = left.checkbox(t("describe"), value=True)
no_llm = config().no_llm  # `birds ui --no-llm`: the card text is all there is
card_only = right.checkbox(t("card_only"), value=no_llm, disabled=no_llm)
with guarded():
    if st.button(t("identify"), type="primary"):
        if not files:
            st.warning(t("need_photo"))
        else:
            language = lang()
            with st.spinner(t("detecting")):
                results, images = run_identify(files, conf, language)
            st.session_state["identified"] = {"results": results, "images": images, "lang": language,
                                              "descriptions": []}
            show_results(results, images, language)
            if describe_birds:
                descriptions = write_descriptions(results, language, card_only)
                st.session_state["identified"]["descriptions"] = descriptions
    elif "identified" in st.session_state:  # a rerun (a widget touched): the last results, not regenerated
        last = st.session_state["identified"]
        show_results(last["results"], last["images"], last["lang"])
        show_descriptions(last["descriptions"])
