"""Q&A: a chat with history, answered by the model alone or grounded on a knowledge base with sources."""

import streamlit as st

from birdsdao.ui.common import address, answering_model, config, guarded, language_switch, prepare_kb, show_sources, t

PLAIN = ""  # the "model alone" choice


def kb_choices() -> list[str]:
    """Knowledge-base names, the built-in 鸟类百科 first (it is built on first use)."""
    from birdsdao.knowledge.builtin import BUILTIN_NAME, is_builtin
    from birdsdao.knowledge.service import list_kbs

    names = [info.name for info in list_kbs(address()) if not is_builtin(info.name)]
    return [BUILTIN_NAME, *names, PLAIN]


def label(name: str) -> str:
    from birdsdao.knowledge.builtin import BUILTIN_DISPLAY_NAME, is_builtin

    if name == PLAIN:
        return t("plain_model")
    return BUILTIN_DISPLAY_NAME if is_builtin(name) else name


def asker_for(source: str):
    """The conversation with `source`, kept across reruns; its history feeds the next prompt."""
    from birdsdao.knowledge.answer import Asker
    from birdsdao.language_model.generate import GenerationSettings

    conversations = st.session_state.setdefault("conversations", {})
    if source not in conversations:
        conversations[source] = {"asker": Asker(settings=GenerationSettings(max_new_tokens=200)), "messages": []}
    return conversations[source]


def bind(asker, source: str) -> str | None:
    """Point the asker at the KB and the model; None, or why no answer can be given."""
    from birdsdao.knowledge.retrieval import search
    from birdsdao.knowledge.service import embedder_for

    model, problem = answering_model()
    asker.model = model
    # a model of the user's own writes (checked by the guard); the default one where it was measured fit
    asker.style = "generate" if config().base_model else "auto"
    if source == PLAIN:
        asker.retrieve = None
        return None if model is not None else t("need_model", problem=problem)
    prepare_kb(source)
    where = address()
    embedder = embedder_for(where, source, None)

    def retrieve(question: str):
        with where.open() as store:
            return search(store.get(source), embedder, question, k=3)

    asker.retrieve = retrieve
    if model is None and not config().no_llm:
        st.info(t("model_unavailable", problem=problem))
    return None


language_switch()
st.title(t("page_ask"))
with guarded():
    choices = kb_choices()
    source = st.selectbox(t("answer_source"), choices, format_func=label)
    conversation = asker_for(source)
    if st.button(t("clear_chat")):
        conversation["asker"].clear()
        conversation["messages"].clear()
    for message in conversation["messages"]:
        with st.chat_message(message["role"]):
            st.markdown(message["content"])
            show_sources(message.get("hits"))
    question = st.chat_input(t("ask_example"))
    if question:
        with st.chat_message("user"):
            st.markdown(question)
        conversation["messages"].append({"role": "user", "content": question})
        problem = bind(conversation["asker"], source)
        with st.chat_message("assistant"):
            if problem:
                st.error(problem)
                conversation["messages"].pop()
            else:
                answer, stream = conversation["asker"].ask(question)
                st.write_stream(stream)
                show_sources(answer.hits)
                conversation["messages"].append({"role": "assistant", "content": answer.text, "hits": answer.hits,
                                                 "mode": answer.mode})
