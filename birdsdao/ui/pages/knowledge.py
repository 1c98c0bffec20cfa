"""Knowledge bases: list them with their sizes, create one, upload documents, remove documents, delete a base."""

from pathlib import Path

import streamlit as st

from birdsdao.ui.common import address, config, guarded, language_switch, t


def tell(*notices: tuple[str, str]) -> None:
    """Messages for the next run: an action ends with st.rerun() so that the lists show its effect."""
    st.session_state["kb_notices"] = list(notices)


def show_list() -> list:
    from birdsdao.knowledge.builtin import BUILTIN_DISPLAY_NAME, is_builtin
    from birdsdao.knowledge.service import list_kbs, store_size

    infos = list_kbs(address())
    st.subheader(t("kb_list"))
    if not infos:
        st.info(t("kb_none"))
    else:
        st.dataframe([{t("kb_name"): BUILTIN_DISPLAY_NAME if is_builtin(info.name) else info.name,
                       t("kb_description"): info.description, t("kb_documents"): info.documents,
                       t("kb_chunks"): info.chunks, t("kb_model"): info.embedding_model,
                       t("kb_created"): info.created} for info in infos], hide_index=True)
        size = store_size(address())  # None for a Chroma server
        if size is not None:
            st.caption(t("store_size", size=f"{size / 1e6:.1f} MB"))
    return infos


def create_form() -> None:
    from birdsdao.knowledge.service import create

    with st.form("create_kb", clear_on_submit=True):
        st.subheader(t("create_kb"))
        name = st.text_input(t("kb_name"))
        description = st.text_input(t("kb_description"))
        if st.form_submit_button(t("create")):
            if not name.strip():
                st.warning(t("name_required"))
            else:
                info = create(address(), name.strip(), description=description.strip())
                tell(("success", t("created", name=info.name)))
                st.rerun()


def upload_into(name: str, slug: str) -> None:
    """Uploaded files are kept under BIRDS_HOME/uploads/<kb>/ (a KB refers to its documents by path)."""
    from birdsdao.knowledge.service import add

    files = st.file_uploader(t("upload_docs"), accept_multiple_files=True, key=f"docs-{slug}",
                             type=["txt", "md", "markdown", "pdf", "docx", "html", "htm", "csv", "json"])
    if not st.button(t("add_docs"), disabled=not files):
        return
    folder = config().uploads_dir / slug
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for upload in files:
        path = folder / upload.name.replace("/", "_").replace("\\", "_")
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(upload.getvalue())
        partial.replace(path)
        paths.append(path)
    bar = st.progress(0.0, text=t("adding"))
    result = add(address(), name, paths, progress=lambda done, total: bar.progress(done / max(total, 1),
                                                                                 text=t("adding")))
    bar.empty()
    notices = [("warning", t("skipped_doc", path=Path(skipped["path"]).name, reason=skipped["reason"]))
               for skipped in result.skipped]
    tell(*notices, ("success", t("added", added=len(result.added), replaced=len(result.replaced),
                                      unchanged=len(result.unchanged), chunks=result.chunks_added)))
    st.rerun()


def documents_of(name: str) -> None:
    from birdsdao.knowledge.service import remove, show

    _, documents = show(address(), name)
    st.markdown(f"**{t('documents')}**")
    if not documents:
        st.info(t("no_documents"))
        return
    st.dataframe([{t("kb_name"): doc.source, t("kb_chunks"): doc.chunks, t("kb_created"): doc.added}
                  for doc in documents], hide_index=True)
    source = st.selectbox(t("remove_doc"), [doc.source for doc in documents])
    if st.button(t("remove")):
        gone = remove(address(), name, source)
        tell(("success", t("removed", source=gone.source, chunks=gone.chunks)))
        st.rerun()


def delete_section(name: str) -> None:
    from birdsdao.knowledge.service import delete

    st.markdown(f"**{t('delete_kb')}**")
    confirmed = st.checkbox(t("confirm_delete", name=name), key=f"confirm-{name}")
    if st.button(t("delete"), type="primary", disabled=not confirmed):
        info = delete(address(), name)
        tell(("success", t("deleted", name=info.name)))
        st.rerun()


language_switch()
st.title(t("page_kb"))
for kind, notice in st.session_state.pop("kb_notices", []):
    getattr(st, kind)(notice)
with guarded():
    from birdsdao.knowledge.builtin import is_builtin

    infos = show_list()
    create_form()
    own = [info for info in infos if not is_builtin(info.name)]
    if own:
        st.subheader(t("manage_kb"))
        chosen = st.selectbox(t("choose_kb"), [info.name for info in own])
        info = next(info for info in own if info.name == chosen)
        upload_into(info.name, info.slug)
        documents_of(info.name)
        delete_section(info.name)
    elif any(is_builtin(info.name) for info in infos):
        st.caption(t("builtin_readonly"))
