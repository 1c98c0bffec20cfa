"""The llama.cpp engine ([fast] extra): which engine runs, its KV-state codec, its decoding rules, streaming, its
agreement with transformers + peft with and without the prefix; and the transformers path's on-disk CPU cache."""

import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from birdsdao.errors import InvalidInputError, MissingDependencyError
from birdsdao.language_model.generate import GenerationSettings, stream_text
from birdsdao.language_model.kv_state import StateFormatError, prefix_rows, read_state, write_state
from birdsdao.language_model.llama_engine import (
    _Chooser,
    _whole_characters,
    banned_by_ngrams,
    busy_elsewhere,
    idle_cores,
    llama_cpp_available,
)
from birdsdao.language_model.models import load_model
from birdsdao.language_model.prompts import build_prompt
from birdsdao.language_model.runtime import BUNDLED_PREFIX, choose_engine

needs_llama = pytest.mark.skipif(not llama_cpp_available(),
                                 reason="llama-cpp-python is not installed (pip install 'birdsdao[fast]')")


# -- how many threads ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="counts runnable threads in Linux's /proc/stat")
def test_llama_cpp_leaves_a_core_to_a_process_that_is_busy_now():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_elsewhere() >= 1
        assert 1 <= idle_cores() <= max(1, len(os.sched_getaffinity(0)) - 1)
    finally:
        spinner.kill()
        spinner.wait()


# -- which engine --------------------------------------------------------------------------------------------------
def test_the_default_model_on_a_cpu_runs_on_llama_cpp_when_it_is_installed_and_everything_else_on_transformers(
        monkeypatch, tmp_path):
    from birdsdao.language_model import llama_engine

    monkeypatch.delenv("BIRDS_LLM_ENGINE", raising=False)
    monkeypatch.setattr(llama_engine, "engine_ready", lambda: True)
    assert choose_engine(None) == "llama.cpp"
    assert choose_engine("gemma-3-270m") == "llama.cpp"
    assert choose_engine(tmp_path) == "transformers"  # a --base-model folder
    assert choose_engine(None, device="cuda") == "transformers"
    assert choose_engine(None, quantization_bit=4) == "transformers"
    assert choose_engine(None, fast=False) == "transformers"  # float32 reproduction
    assert choose_engine(None, engine="transformers") == "transformers"
    monkeypatch.setenv("BIRDS_LLM_ENGINE", "transformers")
    assert choose_engine(None) == "transformers"
    monkeypatch.setenv("BIRDS_LLM_ENGINE", "llama")
    with pytest.raises(InvalidInputError, match="not an engine"):
        choose_engine(None)
    monkeypatch.setenv("BIRDS_LLM_ENGINE", "llama.cpp")
    with pytest.raises(InvalidInputError, match="default model on a CPU"):
        choose_engine(tmp_path)
    monkeypatch.setattr(llama_engine, "engine_ready", lambda: False)
    monkeypatch.delenv("BIRDS_LLM_ENGINE")
    assert choose_engine(None) == "transformers"  # installs without the extra


def test_asking_for_llama_cpp_without_the_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    assert not llama_cpp_available()
    with pytest.raises(MissingDependencyError, match="llama-cpp-python") as caught:
        choose_engine(None, engine="llama.cpp")
    assert "birdsdao[fast]" in caught.value.hint


# -- the KV state codec ------------------------------------------------------------------------------------------
def _state(cells: int, layers: int, width: int, transposed: bool, rng) -> tuple[bytes, list, list]:
    """A state as llama.cpp 0.3.36's llama_kv_cache::state_write lays it out, for one cache."""
    keys = [rng.standard_normal((cells, width)).astype(np.float16) for _ in range(layers)]
    values = [rng.standard_normal((cells, width)).astype(np.float16) for _ in range(layers)]
    out = [struct.pack("<II", 1, cells)]
    out += [struct.pack("<iIi", position, 1, 0) for position in range(cells)]
    out.append(struct.pack("<II", int(transposed), layers))
    for k in keys:
        out += [struct.pack("<iQ", 1, width * 2), k.tobytes()]
    for v in values:
        if transposed:
            out += [struct.pack("<iII", 1, 2, width), v.T.copy().tobytes()]
        else:
            out += [struct.pack("<iQ", 1, width * 2), v.tobytes()]
    return b"".join(out), keys, values


@pytest.mark.parametrize("transposed", [False, True])
def test_a_state_reads_into_rows_and_writes_back_byte_for_byte(transposed):
    rng = np.random.default_rng(0)
    first, keys_a, values_a = _state(5, 3, 8, transposed, rng)
    second, keys_b, values_b = _state(5, 2, 8, transposed, rng)
    header = struct.pack("<Ii", 0xAF143CD8, 0)  # llama_context's magic and the sequence id
    first = header + first
    caches = read_state(first + second, caches=2)
    assert [len(c.keys) for c in caches] == [3, 2] and caches[0].value_transposed is transposed
    assert list(caches[1].positions) == [0, 1, 2, 3, 4] and caches[1].seq_ids == [[0]] * 5
    assert all(np.array_equal(got, want) for got, want in zip(caches[0].keys, keys_a, strict=True))
    assert all(np.array_equal(got, want) for got, want in zip(caches[1].values, values_b, strict=True))
    assert write_state(caches) == first + second
    caches[0].values[1][2, 3] = 7.0
    assert read_state(write_state(caches), caches=2)[0].values[1][2, 3] == 7.0
    with pytest.raises(StateFormatError, match="ends at byte"):
        read_state((first + second)[:-1], caches=2)
    with pytest.raises(StateFormatError, match="left after"):
        read_state(first + second, caches=1)
    with pytest.raises(StateFormatError, match="not 0xaf143cd8"):
        read_state(first[8:] + second, caches=2)


def test_peft_prefix_rows_are_split_per_layer_into_keys_and_values():
    layers, heads, head_dim, length = 3, 2, 4, 5
    # peft views the embedding as (P, layers·2, heads, head_dim): give every number its coordinates
    p, lk, h, d = np.meshgrid(np.arange(length), np.arange(layers * 2), np.arange(heads), np.arange(head_dim),
                              indexing="ij")
    embedding = (p * 1000 + lk * 100 + h * 10 + d).reshape(length, -1).astype(np.float32)
    keys, values = prefix_rows(embedding, layers, heads)
    assert keys.shape == values.shape == (layers, length, heads * head_dim)
    assert keys[2, 4, 1 * head_dim + 3] == 4 * 1000 + (2 * 2) * 100 + 1 * 10 + 3
    assert values[2, 4, 1 * head_dim + 3] == 4 * 1000 + (2 * 2 + 1) * 100 + 1 * 10 + 3


# -- the decoding rules, against transformers' own processors --------------------------------------------------------
def test_greedy_choice_with_the_repetition_penalty_and_ngram_ban_matches_transformers():
    import torch
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    rng = np.random.default_rng(1)
    for trial in range(30):
        history = list(rng.integers(0, 12, size=int(rng.integers(3, 30))))
        logits = rng.standard_normal(12).astype(np.float32) * 3
        settings = GenerationSettings(repetition_penalty=1.2, no_repeat_ngram_size=2 if trial % 2 else 0)
        ids = torch.tensor([history])
        scores = RepetitionPenaltyLogitsProcessor(1.2)(ids, torch.from_numpy(logits)[None])
        if settings.no_repeat_ngram_size:
            scores = NoRepeatNGramLogitsProcessor(2)(ids, scores)
        assert _Chooser(12, history, settings).choose(logits.copy(), history) == int(scores.argmax()), trial
    assert sorted(banned_by_ngrams([1, 2, 3, 1, 2, 4, 1], 2)) == [2, 2]
    assert banned_by_ngrams([1, 2, 3, 1, 2], 3) == [3]


def test_sampling_keeps_the_top_p_nucleus_only():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float64))
    chooser = _Chooser(4, [], GenerationSettings(temperature=1.0, top_p=0.7, repetition_penalty=1.0))
    drawn = {chooser.choose(logits.copy(), []) for _ in range(200)}
    assert drawn == {0, 1}  # 0.5 < 0.7: the token that crosses it stays, the tail never comes


def test_pieces_never_split_a_character():
    text = "丹顶鹤".encode()
    assert _whole_characters(text[:4]) == ("丹", text[3:4])
    assert _whole_characters(text) == ("丹顶鹤", b"")


# -- streaming ---------------------------------------------------------------------------------------------------
class _ScriptedEngine:
    """An engine that streams given pieces and records how many it was asked for."""

    engine = "llama.cpp"

    def __init__(self, pieces):
        self.pieces, self.given = pieces, 0

    def stream(self, prompt, settings, halt):
        for piece in self.pieces:
            if halt.is_set():
                return
            self.given += 1
            yield piece


def test_llama_cpp_streams_stop_at_a_stop_string_split_across_pieces_and_generation_stops_there():
    engine = _ScriptedEngine(["Bald eagles eat fish.", "\nQues", "tion: what", " else", " more", " more"])
    text = "".join(stream_text(engine, "Question: x\nAnswer:", GenerationSettings(), ("\nQuestion:",)))
    assert text == "Bald eagles eat fish."
    assert engine.given <= 4  # it was not drained to the end once the stop string was seen
    looping = _ScriptedEngine(["1. 种子\n", "2. 骨骼\n", "3. 骨骼\n", "4. 骨骼\n", "5. 骨骼\n"])
    assert "".join(stream_text(looping, "p", GenerationSettings())) == "1. 种子\n2. 骨骼\n3. 骨骼\n"
    assert looping.given == 3


# -- the transformers path's CPU speed-up ----------------------------------------------------------------------
def test_the_cpu_speed_up_halves_only_the_output_layer(tiny_model_dir, tmp_path, monkeypatch):
    """The body and the input embeddings stay float32 (a bfloat16 body prefilled 3.7× slower on an AVX2 CPU),
    even where the output layer shares its weight with the input embeddings."""
    import torch

    from birdsdao.language_model.runtime import load_answering_model

    monkeypatch.setenv("BIRDS_LLM_ENGINE", "transformers")
    models = tmp_path / "models"
    reference = load_model(tiny_model_dir, models).model
    loaded = load_answering_model(tiny_model_dir, models)
    head = loaded.model.get_output_embeddings()
    assert head.weight.dtype == torch.bfloat16
    body = [p for name, p in loaded.model.named_parameters() if p is not head.weight]
    assert body and all(p.dtype == torch.float32 for p in body)
    assert torch.equal(loaded.model.get_input_embeddings().weight, reference.get_input_embeddings().weight)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.inference_mode():
        expected, got = reference(input_ids=ids).logits, loaded.model(input_ids=ids).logits
    assert got.dtype == torch.float32 and torch.equal(expected.argmax(-1), got.argmax(-1))
    assert torch.allclose(got, expected, atol=0.02 * float(expected.abs().max()))


# -- agreement with transformers + peft on the real default model ------------------------------------------------
PASSAGES_ZH = ["姬鹬（Jack Snipe，Lymnocryptes minimus） 繁殖：在沼泽中的草丛里营地面巢。",
               "姬鹬（Jack Snipe，Lymnocryptes minimus） 食性：在软泥中探食昆虫及其幼虫、蠕虫和小螺，也吃一些种子。"]
PASSAGES_EN = ["Bald Eagle (Haliaeetus leucocephalus) Diet: mainly fish, which it snatches from the water surface; "
               "also waterbirds and carrion."]
STEPS = 24


def _questions():
    from birdsdao.prompts import grounded_question

    return ["What does a bald eagle mostly eat?", "请告诉我些关于橙顶灶莺的知识吧？",
            grounded_question(PASSAGES_ZH, "姬鹬平时吃些什么？", "zh"),
            grounded_question(PASSAGES_EN, "What does the bald eagle eat?", "en")]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """Both engines on the default model, each with and without the bundled prefix; transformers in float32."""
    from birdsdao.language_model.runtime import load_answering_model

    models = tmp_path_factory.mktemp("engine-models")
    return {(engine, prefix is not None): load_answering_model(None, models, prefix=prefix, engine=engine,
                                                               fast=engine == "llama.cpp")
            for engine in ("transformers", "llama.cpp") for prefix in (None, BUNDLED_PREFIX)}


def _transformers_run(loaded, ids: list[int]) -> tuple[list[int], np.ndarray]:
    """Greedy ids as `birds ask` generates them (generate_ids, repetition penalty 1.2), and the raw logits at
    the prompt's end and after each of those ids, with the prefix in the cache as generate_ids puts it."""
    import torch

    from birdsdao.language_model.generate import generate_ids

    model = loaded.model
    with torch.inference_mode():
        out = generate_ids(model, torch.tensor([ids]), max_new_tokens=STEPS, do_sample=False,
                           repetition_penalty=1.2, pad_token_id=0)
        new = out[0][len(ids):].tolist()
        sequence = torch.tensor([ids + new[:-1]])
        if hasattr(model, "peft_config"):
            logits = model.get_base_model()(input_ids=sequence, past_key_values=model.get_prompt(batch_size=1)).logits
        else:
            logits = model(input_ids=sequence).logits
    return new, logits[0, len(ids) - 1:].float().numpy()


def _llama_logits(engine, ids: list[int], forced: list[int]) -> np.ndarray:
    """llama.cpp's raw logits at the prompt's end and after each forced id (the same contexts as above)."""
    rows = [engine.start(ids)]
    rows += [engine.step(token) for token in forced[:-1]]
    return np.array(rows)


@pytest.mark.slow
@needs_llama
def test_llama_cpp_agrees_with_transformers_and_peft_with_and_without_the_prefix(engines):
    """Tolerance. Both engines run the same Q4_K_M values (transformers de-quantizes them exactly); llama.cpp
    multiplies with activations rounded to 8 bits and keeps keys, values and the prefix in float16, so logits
    differ by a few tenths. Measured on these prompts: first-step correlation 0.9988–0.9996, top-1 agreement
    0.78–1.0 per prompt, 0.92 overall, every disagreement where transformers' own two best tokens were
    within 0.23 of each other. Asserted with margin: correlation ≥ 0.995 at every step, ≥ 85% top-1 agreement,
    disagreements only on near-ties (< 0.5). And the prefix must do on llama.cpp what it does on transformers:
    the change it makes to the first-step logits correlates ≥ 0.95 between the engines."""
    agree = total = 0
    for question in _questions():
        shifts = {}
        for with_prefix in (False, True):
            reference, engine = engines["transformers", with_prefix], engines["llama.cpp", with_prefix]
            assert engine.engine == "llama.cpp" and (engine.prefix is not None) is with_prefix
            prompt, _ = build_prompt(engine.tokenizer, engine.family, question)
            ids = reference.tokenizer(prompt)["input_ids"]
            assert engine.tokenize(prompt) == ids  # the same tokens go in
            new, expected = _transformers_run(reference, ids)
            got = _llama_logits(engine, ids, new)
            for step, (want, have) in enumerate(zip(expected, got, strict=True)):
                assert np.corrcoef(want, have)[0, 1] >= 0.995, (question[:20], with_prefix, step)
                if want.argmax() != have.argmax():
                    top2 = np.sort(want)[-2:]
                    assert top2[1] - top2[0] < 0.5, (question[:20], with_prefix, step)
                else:
                    agree += 1
                total += 1
            shifts[with_prefix] = (expected[0], got[0])
        tf_shift = shifts[True][0] - shifts[False][0]
        llama_shift = shifts[True][1] - shifts[False][1]
        assert np.corrcoef(tf_shift, llama_shift)[0, 1] >= 0.95, question[:20]
    assert agree / total >= 0.85, (agree, total)


@pytest.mark.slow
@needs_llama
def test_the_bundled_prefix_on_llama_cpp_answers_a_held_out_bird_from_its_passages(engines):
    engine = engines["llama.cpp", True]
    prompt, stops = build_prompt(engine.tokenizer, engine.family, _questions()[2])
    pieces = list(stream_text(engine, prompt, GenerationSettings(max_new_tokens=40), stops))
    assert len(pieces) > 1 and "在软泥中探食昆虫" in "".join(pieces)  # what transformers + peft answers too
    plain = engines["llama.cpp", False]
    assert "".join(stream_text(plain, prompt, GenerationSettings(max_new_tokens=40), stops)) != "".join(pieces)


@pytest.mark.slow
@needs_llama
def test_llama_cpp_streams_pieces_that_stop_at_a_stop_string_across_two_of_them(engines):
    engine = engines["llama.cpp", False]
    prompt = "Question: What is a heron?\nAnswer:"
    settings = GenerationSettings(max_new_tokens=40)
    pieces = list(stream_text(engine, prompt, settings))
    whole = "".join(pieces)
    assert len(pieces) >= 6
    boundary = len("".join(pieces[:4]))
    stop = whole[boundary - 2:boundary + 2]  # ends inside the fifth piece
    cut = "".join(stream_text(engine, prompt, settings, (stop,)))
    assert cut == whole[:whole.find(stop)]
    ids = [212, 106, 1, 255999, 1030, 236787]  # `</s>`, end-of-turn, EOS, start-of-image, two words
    expected = engines["transformers", False].tokenizer.decode(ids, skip_special_tokens=True)
    assert b"".join(engine.piece(token) for token in ids).decode() == expected


@pytest.mark.slow
@needs_llama
def test_the_engine_knows_the_default_models_fingerprint(engines):
    assert engines["llama.cpp", False].fingerprint == engines["transformers", False].fingerprint


@pytest.mark.slow
@needs_llama
def test_loading_the_engine_prints_nothing_a_user_cannot_act_on(engines, capfd):
    from birdsdao.language_model.llama_engine import LlamaCppModel

    capfd.readouterr()
    loaded = engines["llama.cpp", False]
    LlamaCppModel(loaded.path, fingerprint=loaded.fingerprint)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.slow
@needs_llama
def test_a_load_in_a_thread_leaves_the_process_s_own_output_alone(engines, capfd):
    """The model loads beside retrieval, which may print (a progress bar): nothing may swallow its lines."""
    import threading

    from birdsdao.language_model.llama_engine import LlamaCppModel

    loaded = engines["llama.cpp", False]
    capfd.readouterr()
    thread = threading.Thread(target=LlamaCppModel, args=(loaded.path,), kwargs={"fingerprint": loaded.fingerprint})
    thread.start()
    printed = 0
    while thread.is_alive():
        print(f"still here {printed}", file=sys.stderr, flush=True)
        printed += 1
        time.sleep(0.005)
    thread.join()
    captured = capfd.readouterr()
    assert printed > 10 and captured.err.count("still here") == printed
    assert "llama" not in captured.err and captured.out == ""


@pytest.mark.slow
@needs_llama
def test_the_prefix_state_is_kept_on_disk_and_read_back_the_same(engines, tmp_path, monkeypatch):
    from birdsdao.language_model.llama_engine import LlamaCppModel

    loaded = engines["llama.cpp", True]
    cache = tmp_path / "states"
    built = []
    real_build = LlamaCppModel._build_prefix_state

    def counted(self, prefix):
        built.append(prefix)
        real_build(self, prefix)

    monkeypatch.setattr(LlamaCppModel, "_build_prefix_state", counted)
    first = LlamaCppModel(loaded.path, fingerprint=loaded.fingerprint)
    first.set_prefix(loaded.prefix, cache_dir=cache)
    saved = list(cache.glob("prefix-*.state"))
    assert len(built) == 1 and len(saved) == 1 and saved[0].read_bytes() == first._prefix_state

    second = LlamaCppModel(loaded.path, fingerprint=loaded.fingerprint)  # as in a new process
    second.set_prefix(loaded.prefix, cache_dir=cache)
    assert len(built) == 1  # read, not built
    ids = first.tokenize("What does a bald eagle eat?")
    np.testing.assert_array_equal(first.start(ids), second.start(ids))

    saved[0].write_bytes(b"\x01" * 64)  # damaged: llama.cpp refuses it, so it is built again and replaced
    third = LlamaCppModel(loaded.path, fingerprint=loaded.fingerprint)
    third.set_prefix(loaded.prefix, cache_dir=cache)
    assert len(built) == 2 and saved[0].read_bytes() == first._prefix_state
    np.testing.assert_array_equal(third.start(ids), second.start(ids))

    other = type(loaded.prefix)(loaded.prefix.folder, loaded.prefix.keys * 0.5, loaded.prefix.values)
    second.set_prefix(other, cache_dir=cache)  # other values: another file, never the first one's state
    assert len(built) == 3 and len(list(cache.glob("prefix-*.state"))) == 2


@pytest.mark.slow
@needs_llama
def test_the_threads_are_chosen_for_each_answer_not_at_load(engines, monkeypatch):
    import llama_cpp

    from birdsdao.language_model import llama_engine

    model = engines["llama.cpp", False]
    ids = model.tokenize("What does a bald eagle eat?")
    for threads in (1, 2):
        monkeypatch.setattr(llama_engine, "idle_cores", lambda threads=threads: threads)
        model.start(ids)
        assert llama_cpp.llama_n_threads(model._ctx) == threads
