"""`birds ask`: answers about birds, grounded on a knowledge base (with sources) or from the model alone."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from birdsdao_cli import output
from birdsdao_cli.answers import ConsoleReporter, print_reply, print_sources
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
    from birdsdao.assistant import Assistant, AssistantConfig, ModelChoice
    from birdsdao.assistant.answer import question_language
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.generate import GenerationSettings

    if question is None and json_out:
        raise InvalidInputError("--json needs a QUESTION (the chat is for people)")
    generation = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram)
    config = AssistantConfig(settings=ctx.obj["settings"], kb=None if no_kb else kb, chroma_host=chroma_host,
                             chroma_port=chroma_port, method=method, k=k, embedding_model=embedding_model,
                             generate=generate, generation=generation,
                             model=ModelChoice(base_model, prefix, no_prefix, device, quantization_bit, off=no_llm))
    assistant = Assistant(config, ConsoleReporter())
    assistant.check_model_options()  # a typo fails before a KB is built
    if question is not None and assistant.needs_model(question_language(question)):
        assistant.load_model_in_background(required=no_kb)  # while the KB opens and the passages are found
    if not no_kb:
        assistant.prepare_kb()  # a missing KB fails before a chat's model loads
    if question is None:
        if assistant.needs_model():
            assistant.model(required=no_kb)  # loaded before the first question, not in the middle of the chat
        _chat(assistant)
        return
    started = time.perf_counter()
    reply = assistant.ask(question)
    if json_out:
        data = reply.result().to_dict()
        data["timings"]["total"] = round(time.perf_counter() - started, 3)
        output.print_json(data)
    else:
        print_reply(reply)


def _chat(assistant) -> None:
    output.console.print(CHAT_HELP)
    history: list[tuple[str, str]] = []
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
            history.clear()
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
        reply = assistant.ask(question, history)
        print_reply(reply, sources=False)
        last = reply.answer
