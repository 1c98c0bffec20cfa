"""The language-model runtime on a tiny random Llama whose tokenizer the test trains itself."""

import json
import re
import threading
from pathlib import Path

import pytest

from birdsdao.language_model.generate import Chat, GenerationSettings, _until_stop, stream_text
from birdsdao.language_model.models import ModelNotSupportedError, TokenizerRoundTripError, check_round_trip, load_model
from birdsdao.language_model.prompts import build_prompt


def test_a_local_folder_loads_with_a_fingerprint(tiny_model_dir, tmp_path):
    loaded = load_model(tiny_model_dir, tmp_path / "models")
    assert loaded.family == "llama" and loaded.name == str(tiny_model_dir)
    again = load_model(tiny_model_dir, tmp_path / "models")
    assert again.fingerprint == loaded.fingerprint and len(loaded.fingerprint) == 16


def test_the_fingerprint_follows_the_weights_not_the_library_that_saved_them(tiny_model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    before = load_model(tiny_model_dir, tmp_path / "models").fingerprint
    newer = tmp_path / "saved-by-a-newer-transformers"
    shutil.copytree(tiny_model_dir, newer)
    config = json.loads((newer / "config.json").read_text(encoding="utf-8"))
    config["transformers_version"] = "9.99.0"
    (newer / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert load_model(newer, tmp_path / "models").fingerprint == before

    for name in ("model.norm.weight", "model.embed_tokens.weight"):  # one value changed in a vector, a matrix
        other = tmp_path / f"another-checkpoint-{name}"
        shutil.copytree(tiny_model_dir, other)
        weights = load_file(other / "model.safetensors")
        weights[name].view(-1)[3] += 1.0
        save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
        assert load_model(other, tmp_path / "models").fingerprint != before


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


def test_chatglm_v1_and_chatglm3_folders_are_refused_with_the_reason(tmp_path):
    """ChatGLM2-6B runs on birdsdao's own implementation (test_chatglm2_*); its siblings do not."""
    remote = {"AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"}
    for name, config, said in (("chatglm-6b", {}, "ChatGLM-6B (version 1)"),
                               ("chatglm3-6b-32k", {"multi_query_group_num": 2, "rope_ratio": 50}, "ChatGLM3")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "chatglm", "auto_map": remote, **config}))
        with pytest.raises(ModelNotSupportedError, match=rf"is a {re.escape(said)} folder.*transformers < 4.42"):
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


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    """The real default model, converted once for this module (the first load is the cold one)."""
    import time

    models = tmp_path_factory.mktemp("gemma-models")
    messages = []
    started = time.perf_counter()
    load_model(None, models, progress=messages.append)
    return {"models": models, "cold": time.perf_counter() - started, "messages": messages}


@pytest.mark.slow
def test_default_gemma_converts_once_and_writes_chinese_and_english(gemma):
    import time

    from birdsdao.prompts import has_cjk

    assert any("once" in message for message in gemma["messages"])
    started = time.perf_counter()
    loaded = load_model(None, gemma["models"])
    warm = time.perf_counter() - started
    assert warm * 3 < gemma["cold"], (warm, gemma["cold"])
    assert loaded.family == "gemma3_text" and not list(gemma["models"].glob(".*partial*"))
    settings = GenerationSettings(max_new_tokens=16)
    chinese = list(Chat(loaded, settings).ask("请告诉我些关于丹顶鹤的知识吧？"))
    english = list(Chat(loaded, settings).ask("What does the bald eagle eat?"))
    assert len(chinese) > 1 and has_cjk("".join(chinese))
    assert len(english) > 1 and any(char.isascii() and char.isalpha() for char in "".join(english))


@pytest.mark.slow
def test_the_default_models_tokenizer_reads_fast_and_encodes_as_gemmas_own(gemma):
    """The converted tokenizer.json is read by the tokenizers library itself (about 2 s; AutoTokenizer rebuilds
    Gemma's vocabulary in Python, 5–6 s): the same ids and text as Gemma's own tokenizer class."""
    from transformers import AutoTokenizer

    from birdsdao.language_model.ptune_data import read_examples

    loaded = load_model(None, gemma["models"])
    own = AutoTokenizer.from_pretrained(str(loaded.path))
    assert type(own).__name__ == "GemmaTokenizer" and type(loaded.tokenizer) is not type(own)
    root = Path(__file__).resolve().parents[1]
    examples = read_examples(root / "data" / "ptune" / "dev.json")[0][:150]
    gold = [json.loads(line)["question"] for line in (root / "data" / "retrieval_gold.jsonl").open(encoding="utf-8")]
    texts = [text for example in examples for text in (example.question, example.answer)] + gold[:150] + [
        "  two spaces\tand a tab\n\n", "<bos>special<eos> <pad>", "🦅 © ＡＢＣ全角", "x" * 40, ""]
    for text in texts:
        ids = loaded.tokenizer(text)["input_ids"]
        assert ids == own(text)["input_ids"], text
        assert loaded.tokenizer.decode(ids, skip_special_tokens=True) == own.decode(ids, skip_special_tokens=True)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side"):
        assert getattr(loaded.tokenizer, name) == getattr(own, name), name


def data_texts() -> list[str]:
    """Every line of every text file under data/, and each file's opening, plus runs of white space in contexts."""
    root = Path(__file__).resolve().parents[1] / "data"
    texts = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yaml", ".txt", ".md"):
            text = path.read_text(encoding="utf-8")
            texts += text.splitlines() + [text[:5000]]
    for blank in (" ", "\n", "\t", "\u3000"):
        for length in range(1, 100):
            texts += [context.format(blank * length) for context in ("{}", "a{}b", '{}"x"', "。{}鸟", "x{}<eos>")]
    return texts + ["<bos>special<eos> <pad><unk>", "<start_of_turn>user\nhi<end_of_turn>", "<unused0><mask>",
                    "[multimodal]", "🦅 © ＡＢＣ全角", ""]


@pytest.mark.slow
def test_answering_reads_the_tokenizer_with_sentencepiece_and_gets_transformers_ids_and_text(gemma):
    """`load_model(answering=True)` reads the default model's tokenizer with sentencepiece (written when the model
    was converted): the same ids as transformers' tokenizer on every text of data/ (with and without the BOS,
    special tokens written in text, long runs of spaces), and the same decoded text, special tokens skipped or
    not, also for random ids."""
    import random

    from birdsdao.language_model.models import _default_tokenizer
    from birdsdao.language_model.sentencepiece_tokenizer import SentencePieceTokenizer

    assert any("sentencepiece" in message for message in gemma["messages"])
    loaded = load_model(None, gemma["models"], answering=True)
    ours, reference = loaded.tokenizer, _default_tokenizer(loaded.path)
    assert isinstance(ours, SentencePieceTokenizer)
    texts = data_texts()
    assert len(texts) > 20_000
    for text in texts:
        for special in (True, False):
            assert ours(text, add_special_tokens=special)["input_ids"] == \
                reference(text, add_special_tokens=special)["input_ids"], text
        ids = reference(text)["input_ids"]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip), text
    draw = random.Random(0)
    for _ in range(1000):
        ids = [draw.randrange(262_144) for _ in range(draw.randrange(1, 12))]
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), ids
    tensors = ours("白头海雕吃什么？", return_tensors="pt")
    assert tensors["input_ids"].tolist() == [reference("白头海雕吃什么？")["input_ids"]]
    assert tensors["attention_mask"].shape == tensors["input_ids"].shape
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side"):
        assert getattr(ours, name) == getattr(reference, name), name


@pytest.mark.slow
def test_a_model_folder_without_the_sentencepiece_files_gets_them_once_and_a_mismatch_keeps_transformers(
        gemma, tmp_path, monkeypatch):
    """A default model folder converted before the sentencepiece files existed gets them on its first answering
    load (from the packaged GGUF); where they cannot be written, or were found not to match transformers'
    tokenizer, answering keeps transformers' tokenizer."""
    import os

    from birdsdao.language_model import sentencepiece_tokenizer
    from birdsdao.language_model.models import default_model_dir
    from birdsdao.language_model.sentencepiece_tokenizer import INFO_FILE, MODEL_FILE, SentencePieceTokenizer

    source = default_model_dir(gemma["models"])
    older = default_model_dir(tmp_path)
    older.mkdir(parents=True)
    for path in source.iterdir():
        if path.name not in (MODEL_FILE, INFO_FILE):
            os.link(path, older / path.name)  # the 1 GB of weights, shared
    messages = []

    def unwritable(*args):
        raise PermissionError(13, "Permission denied", str(older / MODEL_FILE))

    monkeypatch.setattr(sentencepiece_tokenizer, "write_sentencepiece_files", unwritable)
    tokenizer = load_model(None, tmp_path, answering=True, progress=messages.append).tokenizer
    assert not isinstance(tokenizer, SentencePieceTokenizer) and "Permission denied" in messages[-1]
    monkeypatch.undo()
    messages.clear()
    loaded = load_model(None, tmp_path, answering=True, progress=messages.append)
    assert isinstance(loaded.tokenizer, SentencePieceTokenizer)
    assert (older / MODEL_FILE).is_file() and [m for m in messages if "sentencepiece" in m]
    assert not list(tmp_path.glob(".gguf-*"))  # the GGUF it was read from is gone
    info = json.loads((older / INFO_FILE).read_text(encoding="utf-8"))
    assert info["mismatch"] is None and 1 in info["special_ids"] and 105 in info["special_ids"]
    messages.clear()
    assert isinstance(load_model(None, tmp_path, answering=True, progress=messages.append).tokenizer,
                      SentencePieceTokenizer)
    assert not [m for m in messages if "sentencepiece" in m]
    (older / INFO_FILE).write_text(json.dumps({**info, "mismatch": "some text"}), encoding="utf-8")
    tokenizer = load_model(None, tmp_path, answering=True).tokenizer
    assert not isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.decode([2, 818]) == "<bos>The"


def alpaca(tmp_path, records, *, lines=False) -> Path:
    path = tmp_path / ("data.jsonl" if lines else "data.json")
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) if lines else json.dumps(records)
    path.write_text(text, encoding="utf-8")
    return path


BIRDS = [
    {"instruction": "丹顶鹤吃什么？", "input": "", "output": "丹顶鹤吃鱼、虾和水草。"},
    {"instruction": "What does the bald eagle eat?", "input": "", "output": "Mostly fish."},
    {"instruction": "白头海雕生活在哪里？", "input": "", "output": "白头海雕生活在北美洲。"},
    {"instruction": "Describe the house finch.", "input": "in one sentence", "output": "The house finch sings."},
]


def test_malformed_records_are_named_and_empty_outputs_counted(tmp_path):
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.ptune_data import read_examples

    examples, empty = read_examples(alpaca(tmp_path, BIRDS + [{"instruction": "x", "input": "", "output": " "}]))
    assert (len(examples), empty) == (4, 1)
    assert examples[3].question == "Describe the house finch.\nin one sentence"
    with pytest.raises(InvalidInputError, match=r"data.json: record 2: 'output' must be a string"):
        read_examples(alpaca(tmp_path, [BIRDS[0], {"instruction": "x", "input": ""}]))
    with pytest.raises(InvalidInputError, match=r"data.jsonl:2: not valid JSON"):
        path = alpaca(tmp_path, BIRDS[:1], lines=True)
        path.write_text(path.read_text() + "\n{broken\n", encoding="utf-8")
        read_examples(path)


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, tmp_path_factory):
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    work = tmp_path_factory.mktemp("ptune")
    data = alpaca(work, BIRDS * 3)
    config = PtuneConfig(data=data, output=work / "prefix", base_model=str(tiny_model_dir), pre_seq_len=8,
                         prefix_projection=True, lr=5e-2, batch_size=2, gradient_accumulation_steps=2, max_steps=30,
                         save_steps=10, logging_steps=5, val_split=0.25, max_target_length=12)
    steps = []
    result = run_ptune(config, work / "models", progress=lambda step, total, loss: steps.append((step, loss)))
    return {"result": result, "steps": steps, "config": config, "work": work}


def test_ptune_lowers_the_loss_and_writes_the_original_outputs(tuned):
    result, steps = tuned["result"], tuned["steps"]
    losses = [loss for _, loss in steps if loss is not None]
    assert steps[-1][0] == 30 and losses[-1] < 0.7 * losses[0]
    prefix = Path(result.prefix)
    assert {"adapter_model.safetensors", "adapter_config.json", "birds_prefix.json", "train_results.json",
            "eval_results.json", "generated_predictions.jsonl"} <= {p.name for p in prefix.iterdir()}
    assert sorted(p.name for p in prefix.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-20"]
    train = json.loads((prefix / "train_results.json").read_text())
    assert set(train) == {"epoch", "train_loss", "train_runtime", "train_samples", "train_samples_per_second",
                          "train_steps_per_second"}
    assert train["train_samples"] == result.train_examples == 9
    scores = json.loads((prefix / "eval_results.json").read_text())
    assert {"eval_loss", "bleu-4", "rouge-1", "rouge-2", "rouge-l"} <= set(scores)
    predictions = [json.loads(line) for line in (prefix / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == result.val_examples == 3
    assert set(predictions[0]) == {"prompt", "reference", "prediction"}


def test_saved_prefix_reloads_with_identical_logits(tuned, tiny_model_dir):
    import torch

    from birdsdao.language_model.ptune import load_prefix

    work = tuned["work"]
    first = load_prefix(load_model(tiny_model_dir, work / "models"), Path(tuned["result"].prefix))
    second = load_prefix(load_model(tiny_model_dir, work / "models"), Path(tuned["result"].prefix))
    plain = load_model(tiny_model_dir, work / "models").model
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        assert torch.equal(first(input_ids=ids).logits, second(input_ids=ids).logits)
        assert not torch.allclose(first(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_the_target_only_loss_equals_the_full_loss(tuned, tiny_model_dir):
    """Rows of different lengths, targets starting at different places, one target at position 0."""
    import torch

    from birdsdao.language_model.ptune import _batches, load_prefix, target_loss

    work = tuned["work"]
    model = load_prefix(load_model(tiny_model_dir, work / "models"), Path(tuned["result"].prefix))
    rows = [([5, 6, 7, 8, 9, 10], [-100, -100, -100, -100, 9, 10]), ([11, 12, 13], [-100, 12, 13]),
            ([14, 15, 16, 17], [14, 15, 16, 17])]
    for size in (1, 2, 3):
        for batch in _batches(rows, size, pad_id=0):
            with torch.inference_mode():
                full = model(**batch).loss
                kept = target_loss(model, batch)
            assert torch.allclose(kept, full, atol=1e-6), (size, float(kept), float(full))


def test_a_long_prompt_loses_its_front_not_its_question(tiny_model_dir, tmp_path):
    from birdsdao.language_model.ptune import prompt_ids

    tokenizer = load_model(tiny_model_dir, tmp_path / "models").tokenizer
    prompt = "passage " * 50 + "question: what does the robin eat?"
    whole = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    lead = len(tokenizer("", add_special_tokens=True)["input_ids"])
    cut = prompt_ids(tokenizer, prompt, 20)
    assert len(cut) == 20 and len(whole) > 20
    assert cut[:lead] == whole[:lead] and cut[lead:] == whole[len(whole) - (20 - lead):]
    assert prompt_ids(tokenizer, prompt, len(whole)) == whole


def test_prefix_of_another_base_is_refused(tuned, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from birdsdao.language_model.ptune import PrefixMismatchError, load_prefix

    other = tmp_path / "other"
    base = load_model(tuned["config"].base_model, tmp_path / "models")
    config = LlamaConfig(**{**base.model.config.to_dict(), "num_hidden_layers": 3})
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(other)
    base.tokenizer.save_pretrained(other)
    with pytest.raises(PrefixMismatchError, match="was trained on"):
        load_prefix(load_model(other, tmp_path / "models"), Path(tuned["result"].prefix))


def test_resume_continues_from_the_last_checkpoint(tuned):
    from dataclasses import replace

    from birdsdao.language_model.ptune import run_ptune

    steps = []
    config = replace(tuned["config"], resume=True, max_steps=24)
    run_ptune(config, tuned["work"] / "models", progress=lambda step, total, loss: steps.append(step))
    assert steps[0] == 21 and steps[-1] == 24  # picked up after checkpoint-20


def test_quantization_needs_a_gpu(tuned):
    from dataclasses import replace

    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.ptune import run_ptune

    with pytest.raises(InvalidInputError, match="needs a CUDA GPU"):
        run_ptune(replace(tuned["config"], quantization_bit=4), tuned["work"] / "models")


@pytest.mark.slow
def test_a_few_ptune_steps_on_the_real_model_write_every_output(gemma, tmp_path):
    from birdsdao.language_model.ptune import PtuneConfig, load_prefix, run_ptune

    data = alpaca(tmp_path, BIRDS * 2)
    config = PtuneConfig(data=data, output=tmp_path / "prefix", pre_seq_len=8, batch_size=1,
                         gradient_accumulation_steps=2, max_steps=3, save_steps=2, logging_steps=1, val_split=0.25,
                         max_target_length=12)
    result = run_ptune(config, gemma["models"])
    written = {p.name for p in Path(result.prefix).iterdir()}
    assert {"adapter_model.safetensors", "birds_prefix.json", "train_results.json", "eval_results.json",
            "generated_predictions.jsonl", "checkpoint-2", "runs"} <= written
    assert result.train["train_samples"] == 6 and result.eval["eval_samples"] == 2
    tuned = load_prefix(load_model(None, gemma["models"]), Path(result.prefix))
    assert tuned.peft_config["default"].num_virtual_tokens == 8


def test_ptune_shows_no_library_notices(tiny_model_dir, tmp_path, capsys):
    import warnings

    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    config = PtuneConfig(data=alpaca(tmp_path, BIRDS * 2), output=tmp_path / "prefix", base_model=str(tiny_model_dir),
                         pre_seq_len=4, max_steps=2, gradient_accumulation_steps=1, max_target_length=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_ptune(config, tmp_path / "models")
    # transformers' deprecation notices about what peft passes it, and its bar per tensor on loading
    assert not [w for w in caught if "past_key_values" in str(w.message) or "checkpointing" in str(w.message)]
    assert "Loading weights" not in capsys.readouterr().err


def test_ptune_command_prints_json(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from birdsdao_cli.main import app

    data = alpaca(tmp_path, BIRDS * 2)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "ptune", str(data), "--base-model",
                                      str(tiny_model_dir), "--pre-seq-len", "4", "--max-steps", "2",
                                      "--gradient-accumulation-steps", "1", "--max-target-length", "6",
                                      "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["train"]["train_samples"] == 7 and report["val_examples"] == 1  # --val-split 0.1 of 8
    bad = CliRunner().invoke(app, ["ptune", str(data), "--base-model", str(tiny_model_dir), "--quantization-bit",
                                   "4", "-o", str(tmp_path / "q")])
    assert bad.exit_code == 2 and "needs a CUDA GPU" in bad.stderr


def test_cpu_speed_up_keeps_the_predictions(tiny_model_dir, tuned, tmp_path):
    import torch

    from birdsdao.language_model.ptune import load_prefix
    from birdsdao.language_model.speed import speed_up_for_cpu

    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    for make in (lambda: load_model(tiny_model_dir, tmp_path / "m").model,
                 lambda: load_prefix(load_model(tiny_model_dir, tmp_path / "m"), Path(tuned["result"].prefix))):
        reference, fast = make(), speed_up_for_cpu(make())
        with torch.inference_mode():
            expected, got = reference(input_ids=ids).logits, fast(input_ids=ids).logits
        assert got.dtype == torch.float32
        assert (expected.argmax(-1) == got.argmax(-1)).float().mean() >= 0.75
        assert torch.allclose(got, expected, atol=0.1 * float(expected.abs().max()))


def test_eval_only_rescores_an_existing_prefix(tuned, tmp_path):
    from dataclasses import replace

    from birdsdao.language_model.ptune import run_ptune

    first = json.loads((Path(tuned["result"].prefix) / "eval_results.json").read_text())
    config = replace(tuned["config"], eval_only=True, prefix=Path(tuned["result"].prefix), output=tmp_path / "again")
    result = run_ptune(config, tuned["work"] / "models")
    assert result.train == {} and not (tmp_path / "again" / "train_results.json").exists()
    assert result.eval == first  # the same prefix, split and greedy decoding score the same


def test_a_looping_answer_stops_at_the_first_repeated_line():
    from birdsdao.language_model.generate import _until_loop

    halt = threading.Event()
    pieces = ["家朱雀吃：\n1. 种", "子\n", "2. 骨骼\n", "3. 骨", "骼\n", "4. 骨骼\n", "5. 骨骼"]
    assert "".join(_until_loop(iter(pieces), halt)) == "家朱雀吃：\n1. 种子\n2. 骨骼\n3. 骨骼\n"
    assert halt.is_set()
    calm = threading.Event()
    assert "".join(_until_loop(iter(["a\n", "b\n", "a\n", "tail"]), calm)) == "a\nb\na\ntail" and not calm.is_set()


@pytest.mark.slow
def test_the_bundled_prefix_loads_on_the_default_model_and_changes_its_answer(gemma):
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.prompts import build_prompt
    from birdsdao.language_model.runtime import BUNDLED_PREFIX, load_answering_model

    def answer(loaded, question="请告诉我些关于橙顶灶莺的知识吧？"):
        prompt, stops = build_prompt(loaded.tokenizer, loaded.family, question)
        return "".join(stream_text(loaded, prompt, GenerationSettings(max_new_tokens=16), stops))

    plain = load_answering_model(None, gemma["models"], fast=False)
    tuned = load_answering_model(None, gemma["models"], prefix=BUNDLED_PREFIX, fast=False)
    assert not hasattr(plain.model, "peft_config")
    assert tuned.model.peft_config["default"].num_virtual_tokens == 32
    assert answer(plain) != answer(tuned)
    # tuned on grounded prompts: given a held-out bird's passages, it answers from them
    from birdsdao.prompts import grounded_question

    passages = ["姬鹬（Jack Snipe，Lymnocryptes minimus） 繁殖：在沼泽中的草丛里营地面巢。",
                "姬鹬（Jack Snipe，Lymnocryptes minimus） 食性：在软泥中探食昆虫及其幼虫、蠕虫和小螺，也吃一些种子。"]
    assert "在软泥中探食昆虫" in answer(tuned, grounded_question(passages, "姬鹬平时吃些什么？", "zh"))


def test_the_bundled_prefix_is_the_default_of_the_default_model_only(tmp_path):
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.runtime import BUNDLED_PREFIX, resolve_prefix

    assert resolve_prefix(None, None) == (BUNDLED_PREFIX, True)
    assert resolve_prefix("/models/qwen", None) == (None, False)  # tuned on Gemma: never put on another base
    assert resolve_prefix(None, None, no_prefix=True) == (None, False)
    assert resolve_prefix(None, tmp_path) == (tmp_path, False)
    with pytest.raises(InvalidInputError, match="contradict"):
        resolve_prefix(None, tmp_path, no_prefix=True)


def test_a_default_prefix_that_does_not_fit_gives_way_but_an_asked_for_one_fails(tiny_model_dir, tmp_path):
    from birdsdao.language_model.ptune import PrefixMismatchError
    from birdsdao.language_model.runtime import BUNDLED_PREFIX, load_answering_model

    said = []
    loaded = load_answering_model(tiny_model_dir, tmp_path / "models", prefix=BUNDLED_PREFIX, prefix_optional=True,
                                  fast=False, progress=said.append)
    assert type(loaded.model).__name__ == "LlamaForCausalLM"  # the base alone, no peft wrapper
    assert any("without the bundled prefix" in line for line in said)
    with pytest.raises(PrefixMismatchError):
        load_answering_model(tiny_model_dir, tmp_path / "models", prefix=BUNDLED_PREFIX, fast=False)
