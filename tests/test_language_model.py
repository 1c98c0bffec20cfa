"""The language-model runtime on a tiny random Llama whose tokenizer the test trains itself."""

import json
import threading
from pathlib import Path

import pytest

from language_model.generate import Chat, GenerationSettings, _until_stop, stream_text
from language_model.models import ModelNotSupportedError, TokenizerRoundTripError, check_round_trip, load_model
from language_model.prompts import build_prompt

CORPUS = [
    "问：丹顶鹤吃什么？\n答：丹顶鹤吃鱼、虾和水草。",
    "Question: What does the bald eagle eat?\nAnswer: Mostly fish.",
    "白头海雕生活在北美洲。 The house finch sings.",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_a_local_folder_loads_with_a_fingerprint(tiny_model_dir, tmp_path):
    loaded = load_model(tiny_model_dir, tmp_path / "models")
    assert loaded.family == "llama" and loaded.name == str(tiny_model_dir)
    again = load_model(tiny_model_dir, tmp_path / "models")
    assert again.fingerprint == loaded.fingerprint and len(loaded.fingerprint) == 16


def test_streamed_pieces_make_the_greedy_answer(tiny_model_dir, tmp_path):
    import torch

    loaded = load_model(tiny_model_dir, tmp_path / "models")
    prompt = "问：丹顶鹤吃什么？\n答："
    settings = GenerationSettings(max_new_tokens=12, repetition_penalty=1.0)
    pieces = list(stream_text(loaded, prompt, settings))
    inputs = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        whole = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False, repetition_penalty=1.0,
                                      pad_token_id=loaded.tokenizer.eos_token_id)
    expected = loaded.tokenizer.decode(whole[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "".join(pieces) == expected
    assert len(pieces) >= 1


def test_stop_strings_cut_the_answer_even_across_pieces():
    halt = threading.Event()
    pieces = ["丹顶鹤吃鱼", "。\n", "问：下一个", "问题"]
    streamed = list(_until_stop(iter(pieces), ("\n问：",), halt))
    assert "".join(streamed) == "丹顶鹤吃鱼。"
    assert streamed[0] == "丹顶"  # text flows before the answer ends; only a stop's length is held back
    assert halt.is_set()
    assert "".join(_until_stop(iter(["a", "b"]), ("\n问：",), threading.Event())) == "ab"


def test_chat_keeps_its_history_in_the_prompt(tiny_model_dir, tmp_path):
    loaded = load_model(tiny_model_dir, tmp_path / "models")
    chat = Chat(loaded, GenerationSettings(max_new_tokens=5))
    first = "".join(chat.ask("丹顶鹤吃什么？"))
    list(chat.ask("它住在哪里？"))
    assert chat.history[0] == ("丹顶鹤吃什么？", first.strip())
    prompt, stops = build_prompt(loaded.tokenizer, loaded.family, "第三个问题", chat.history)
    assert prompt.startswith("问：丹顶鹤吃什么？\n答：") and "问：它住在哪里？\n答：" in prompt
    assert prompt.endswith("问：第三个问题\n答：") and "\n问：" in stops
    english, _ = build_prompt(loaded.tokenizer, loaded.family, "What does it eat?")
    assert english == "Question: What does it eat?\nAnswer:"


def test_chatglm2_folders_are_refused_with_the_reason(tmp_path):
    folder = tmp_path / "chatglm2-6b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "chatglm", "auto_map": {"AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"}}))
    with pytest.raises(ModelNotSupportedError, match="transformers < 4.42"):
        load_model(folder, tmp_path / "models")
    with pytest.raises(Exception, match="no config.json"):
        load_model(tmp_path / "nothing", tmp_path / "models")


def test_a_tokenizer_that_garbles_text_is_refused(tiny_model_dir):
    class Garbling:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [1, 2]}

        def decode(self, ids):
            return "?"

    with pytest.raises(TokenizerRoundTripError, match="would garble text"):
        check_round_trip(Garbling(), "the test tokenizer")


@pytest.mark.slow
def test_default_gemma_converts_once_and_writes_chinese_and_english(tmp_path):
    import time

    from language_model.prompts import has_cjk

    messages = []
    started = time.perf_counter()
    load_model(None, tmp_path / "models", progress=messages.append)
    cold = time.perf_counter() - started
    assert any("once" in message for message in messages)
    started = time.perf_counter()
    loaded = load_model(None, tmp_path / "models")
    warm = time.perf_counter() - started
    assert warm * 3 < cold, (warm, cold)
    assert loaded.family == "gemma3_text" and not list((tmp_path / "models").glob(".*partial*"))
    settings = GenerationSettings(max_new_tokens=16)
    chinese = list(Chat(loaded, settings).ask("请告诉我些关于丹顶鹤的知识吧？"))
    english = list(Chat(loaded, settings).ask("What does the bald eagle eat?"))
    assert len(chinese) > 1 and has_cjk("".join(chinese))
    assert len(english) > 1 and any(char.isascii() and char.isalpha() for char in "".join(english))
