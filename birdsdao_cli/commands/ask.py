"""`birds ask`: answers about birds, grounded on a knowledge base (with sources) or from the model alone."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from birdsdao_cli import output
from birdsdao_cli.answers import load_model, print_sources, print_stream
from birdsdao_cli.options import (
    BaseModelOpt,
    ChromaHostOpt,
    ChromaPortOpt,
    EmbeddingModelOpt,
    JsonOpt,
    NoPrefixOpt,
    PrefixOpt,
    QuantizationOpt,
)

CHAT_HELP = "Commands: /sources (where the last answer came from), /clear (forget the conversation), /exit."


def ask(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="The question; leave it out for a chat.")] = None,
    kb: Annotated[str, typer.Option("--kb", help="Answer from this knowledge base, with sources.",
                                    show_default="birds, the built-in 鸟类百科")] = "birds",
    no_kb: Annotated[bool, typer.Option("--no-kb", help="The model alone, no retrieval (the original's "
                                        "\"pure LLM\" mode).")] = False,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Passages to retrieve.")] = 3,
    method: Annotated[str, typer.Option("--method", help="Retrieval: hybrid, dense or bm25.")] = "hybrid",
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Show the retrieved passages instead of a generated "
                                         "answer.")] = False,
    generate: Annotated[bool, typer.Option("--generate", help="Let the language model write the answer where the "
                                           "default model quotes the passages instead (see docs/answers.md); "
                                           "the faithfulness guard still checks it.")] = False,
    base_model: BaseModelOpt = None,
    prefix: PrefixOpt = None,
    no_prefix: NoPrefixOpt = False,
    quantization_bit: QuantizationOpt = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 160,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy, reproducible.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.9,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", min=1.0)] = 1.2,
    no_repeat_ngram: Annotated[int, typer.Option("--no-repeat-ngram", min=0, help="Never repeat a run of this "
                                                 "many tokens, prompt included (0: allow).")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 …")] = "cpu",
    embedding_model: EmbeddingModelOpt = None,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Ask about birds: answers grounded on a knowledge base (the built-in 鸟类百科 unless --kb), with sources.

    With the default model the answer quotes the passages that answer the question (the model is not
    faithful enough to write it; --generate lets it). A generated answer is shown only once every number,
    name, place and month in it has been found in its passages; else the passages are shown instead.
    When the KB holds nothing relevant, birds says so rather than guess; --no-kb asks the model alone.
    Without a QUESTION you get a chat that remembers the conversation (/sources, /clear, /exit).
    Source scores: higher is better (0..1).

    Examples:

      birds ask "家朱雀吃什么？"

      birds ask "What do barn swallows eat?" --kb notes --no-llm --json

      birds ask --no-kb
    """
    from birdsdao.errors import InvalidInputError
    from birdsdao.knowledge.answer import Asker
    from birdsdao.knowledge.retrieval import METHODS
    from birdsdao.knowledge.service import StoreAddress, embedder_for, get_info, prepare
    from birdsdao.language_model.generate import GenerationSettings

    if method not in METHODS:
        raise InvalidInputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if no_llm and no_kb:
        raise InvalidInputError("--no-llm answers with retrieved passages, so it cannot go with --no-kb")
    if no_llm and generate:
        raise InvalidInputError("--no-llm and --generate contradict each other")
    settings = ctx.obj["settings"]
    # a model of the user's own is trusted to write (and checked); the default model writes where measured fit
    style = "passages" if no_llm else "generate" if generate or base_model is not None else "auto"
    asker = Asker(settings=GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                              repetition_penalty=repetition_penalty,
                                              no_repeat_ngram_size=no_repeat_ngram), style=style)
    if not no_kb:
        address = StoreAddress(settings.kb_dir, chroma_host, chroma_port if chroma_host else None)
        with output.progress_bar("Embedding the species cards") as bar:
            prepare(address, kb, progress=bar, say=lambda message: output.console.print(message))
        get_info(address, kb)  # a missing KB fails now, before any model loads
        model = embedder_for(address, kb, embedding_model) if method != "bm25" else None
        asker.retrieve = _retriever(address, kb, model, k, method)
    if no_kb or needs_model(style, question):
        asker.model = load_model(settings.models_dir, fallback=not no_kb, base_model=base_model, prefix=prefix,
                                 no_prefix=no_prefix, device=device, quantization_bit=quantization_bit)
    if question is not None:
        _answer_once(asker, question, json_out)
    elif json_out:
        raise InvalidInputError("--json needs a QUESTION (the chat is for people)")
    else:
        _chat(asker)


def needs_model(style: str, question: str | None) -> bool:
    """Whether any answer will be generated: for one question, in its language; for a chat, in either."""
    from birdsdao.knowledge.answer import generates, question_language

    if style == "passages":
        return False
    languages = ("zh", "en") if question is None else (question_language(question),)
    return any(generates(style, lang) for lang in languages)


def _retriever(address, kb: str, model, k: int, method: str):
    from birdsdao.knowledge.retrieval import search

    def retrieve(question: str):
        with address.open() as store:
            return search(store.get(kb), model, question, k=k, method=method)

    return retrieve


def _answer_once(asker, question: str, json_out: bool) -> None:
    started = time.perf_counter()
    answer, stream = asker.ask(question)
    if json_out:
        for _ in stream:
            pass
        data = answer.to_dict()
        data["timings"]["total"] = round(time.perf_counter() - started, 3)
        output.print_json(data)
        return
    _show(answer, stream)


def _show(answer, stream) -> None:
    print_stream(answer, stream)
    print_sources(answer)


def _chat(asker) -> None:
    output.console.print(CHAT_HELP)
    last = None
    while True:
        try:
            question = output.console.input("[bold green]? [/]").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if not question:
            continue
        if question in ("/exit", "/quit"):
            return
        if question == "/clear":
            asker.clear()
            last = None
            output.console.print("Conversation cleared.")
            continue
        if question == "/sources":
            if last is None or not last.hits:
                output.console.print("The last answer used no sources.")
            else:
                print_sources(last)
            continue
        if question.startswith("/"):
            output.console.print(f"Unknown command {question}. {CHAT_HELP}", highlight=False)
            continue
        last, stream = asker.ask(question)
        print_stream(last, stream)
