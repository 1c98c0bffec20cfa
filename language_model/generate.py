"""Streaming generation: a token iterator that the CLI and the web UI consume alike."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from birdsdao.language_model.prompts import Turn, build_prompt


def generate_ids(model, input_ids, attention_mask=None, **kwargs):
    """`model.generate`, with a P-Tuning prefix really applied; returns input ids + new ids.

    peft 0.21 hands its prefix to the model as `past_key_values`, which transformers 5 ignores during
    `generate` (it builds its own `cache`): the prefix would silently do nothing. Here the prefix's
    keys and values become the pre-filled cache, with stand-in ids in front of the prompt that the
    cache stands for, exactly as the prefix sits in front of the prompt in training.
    """
    import torch

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    config = getattr(model, "peft_config", {}).get("default")
    if config is None or getattr(config, "peft_type", None) is None or config.peft_type.value != "PREFIX_TUNING":
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    length = config.num_virtual_tokens
    cache = model.get_prompt(batch_size=input_ids.shape[0])
    stand_ins = torch.zeros((input_ids.shape[0], length), dtype=input_ids.dtype, device=input_ids.device)
    output = model.get_base_model().generate(
        input_ids=torch.cat([stand_ins, input_ids], dim=1),
        attention_mask=torch.cat([torch.ones_like(stand_ins), attention_mask], dim=1),
        cache=cache, **kwargs,
    )
    return output[:, length:]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy, reproducible
    top_p: float = 0.9
    repetition_penalty: float = 1.2  # small models loop without it
    no_repeat_ngram_size: int = 0  # >0: never repeat a run of this many tokens (stops list-shaped loops)
    stops: tuple[str, ...] = ()  # extra stop strings, besides the template's and the end-of-text token


def stream_text(loaded, prompt: str, settings: GenerationSettings, stops: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield the continuation of `prompt` piece by piece; stop at the first stop string (not yielded)."""
    stop_strings = tuple(stops) + tuple(settings.stops)
    if getattr(loaded, "engine", None) == "llama.cpp":  # llama_engine.LlamaCppModel: generates in this thread
        halt = threading.Event()
        yield from _until_loop(_until_stop(loaded.stream(prompt, settings, halt), stop_strings, halt), halt)
        return
    import torch
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    tokenizer, model = loaded.tokenizer, loaded.model
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = settings.temperature > 0
    arguments = dict(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], streamer=streamer,
        max_new_tokens=settings.max_new_tokens, do_sample=sampling,
        repetition_penalty=settings.repetition_penalty, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    if sampling:
        arguments.update(temperature=settings.temperature, top_p=settings.top_p)
    if settings.no_repeat_ngram_size > 0:
        arguments["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
    halt = threading.Event()
    arguments["stopping_criteria"] = StoppingCriteriaList([_halt_criterion(halt)])

    def run() -> None:
        with torch.inference_mode():
            generate_ids(model, **arguments)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield from _until_loop(_until_stop(streamer, stop_strings, halt), halt)
    worker.join()


def _until_stop(pieces: Iterator[str], stops: tuple[str, ...], halt: threading.Event) -> Iterator[str]:
    """Pass text through, holding back just enough to cut it before a stop string."""
    pending = ""
    keep = max((len(stop) for stop in stops), default=0)
    for piece in pieces:
        if halt.is_set():
            continue  # drain what the generator still sends after we asked it to stop
        pending += piece
        cut = min((pending.find(stop) for stop in stops if stop in pending), default=-1)
        if cut >= 0:
            if pending[:cut]:
                yield pending[:cut]
            halt.set()
            continue
        safe = len(pending) - keep
        if safe > 0:
            yield pending[:safe]
            pending = pending[safe:]
    if not halt.is_set() and pending:
        yield pending


_LIST_MARK = re.compile(r"^\s*(?:\d+[.)、:：]|[-*•])?\s*")


def _until_loop(pieces: Iterator[str], halt: threading.Event) -> Iterator[str]:
    """Pass text through as it comes, and stop once a line repeats the line before it (list numbers aside).

    Small models fall into loops ("12. 骨骼 / 13. 骨骼 / …") that a repetition penalty does not break; the
    reader sees the repeated line once, then the answer ends.
    """
    line, previous = "", None
    for piece in pieces:
        if halt.is_set():
            continue
        yield piece
        line += piece
        while "\n" in line:
            done, line = line.split("\n", 1)
            key = _LIST_MARK.sub("", done).strip()
            if key and key == previous:
                halt.set()
                break
            previous = key or previous


def _halt_criterion(event: threading.Event):
    """A stopping criterion that ends generation once a stop string was seen in the stream."""
    import torch
    from transformers import StoppingCriteria

    class Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return Halt()


@dataclass
class Chat:
    """A conversation: each answer sees the rounds before it."""

    loaded: object
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    history: list[Turn] = field(default_factory=list)

    def ask(self, question: str) -> Iterator[str]:
        prompt, stops = build_prompt(self.loaded.tokenizer, self.loaded.family, question, self.history)
        answer = []
        for piece in stream_text(self.loaded, prompt, self.settings, stops):
            answer.append(piece)
            yield piece
        self.history.append((question, "".join(answer).strip()))
