"""Q&A: a chat with history, answered by the model alone or grounded on a knowledge base with sources."""

import streamlit as st

from birdsdao.ui.common import (
    address,
    answering_model,
    assistant,
    config,
    guarded,
    language_switch,
    prepare_kb,
    show_sources,
    t,
)

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


def conversation_for(source: str) -> dict:
    """The conversation with `source`, kept across reruns: its history feeds the next prompt."""
    conversations = st.session_state.setdefault("conversations", {})
    return conversations.setdefault(source, {"history": [], "messages": []})


def problem_before_answering(question: str, kb: str | None) -> str | None:
    """None, or why no answer can be given: the model alone needs a model. Without one, a KB answers with its
    passages, and the page says why."""
    from birdsdao.assistant.answer import question_language

    if kb is not None:
        prepare_kb(kb)
    if not assistant().needs_model(question_language(question), kb):
        return None
    model, problem = answering_model()
    if model is None and kb is None:
        return t("need_model", problem=problem)
    if model is None and not config().no_llm:
        st.info(t("model_unavailable", problem=problem))
    return None


language_switch()
st.title(t("page_ask"))
with guarded():
    choices = kb_choices()
    source = st.selectbox(t("answer_source"), choices, format_func=label)
    conversation = conversation_for(source)
    if st.button(t("clear_chat")):
        conversation["history"].clear()
        conversation["messages"].clear()
    for message in conversation["messages"]:
        with st.chat_message(message["role"]):
            st.markdown(message["content"])
            show_sources(message.get("hits"))
    question = st.chat_input(t("ask_example"))
    if question:
        with st.chat_message("user"):
            st.markdown(question)
        kb = None if source == PLAIN else source
        problem = problem_before_answering(question, kb)
        with st.chat_message("assistant"):
            if problem:
                st.error(problem)
            else:
                reply = assistant().ask(question, conversation["history"], kb=kb)
                st.write_stream(reply)
                answer = reply.answer
                show_sources(answer.hits)
                # only a finished round is kept: a failure leaves the chat as it was
                conversation["messages"] += [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer.text, "hits": answer.hits,
                                              "mode": answer.mode}]
