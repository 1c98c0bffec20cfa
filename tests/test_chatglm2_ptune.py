"""A ChatGLM2 folder through birdsdao: --base-model loads it natively, `birds ptune` trains its own prefix encoder."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.chatglm2_tiny import TINY_CONFIG, make_folder

BIRDS = [
    {"instruction": "丹顶鹤吃什么？", "input": "", "output": "丹顶鹤吃鱼、虾和水草。"},
    {"instruction": "What does the bald eagle eat?", "input": "", "output": "Mostly fish."},
    {"instruction": "白头海雕生活在哪里？", "input": "", "output": "白头海雕生活在北美洲。"},
    {"instruction": "Describe the house finch.", "input": "", "output": "The house finch sings in the morning."},
]
IDS = torch.tensor([[5, 6, 7, 8, 9]])


@pytest.fixture(scope="module")
def glm(tmp_path_factory) -> Path:
    """A tiny ChatGLM2-6B look-alike: remote-code config.json, tokenizer.model, two pytorch_model-*.bin shards."""
    return make_folder(tmp_path_factory.mktemp("chatglm2-6b"))


def load(folder, work):
    from birdsdao.language_model.models import load_model

    return load_model(folder, work / "models")


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_a_chatglm2_folder_loads_natively_and_streams(glm, tmp_path):
    from birdsdao.language_model.chatglm2.modeling import ChatGLM2ForCausalLM
    from birdsdao.language_model.chatglm2.tokenizer import ChatGLM2Tokenizer
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.prompts import build_prompt

    loaded = load(glm, tmp_path)
    assert loaded.family == "chatglm" and isinstance(loaded.model, ChatGLM2ForCausalLM)
    assert isinstance(loaded.tokenizer, ChatGLM2Tokenizer) and load(glm, tmp_path).fingerprint == loaded.fingerprint
    prompt, stops = build_prompt(loaded.tokenizer, loaded.family, "丹顶鹤吃什么？")
    assert prompt == "[Round 1]\n\n问：丹顶鹤吃什么？\n\n答：" and stops == ("[Round",)
    pieces = list(stream_text(loaded, prompt, GenerationSettings(max_new_tokens=8, repetition_penalty=1.0)))
    inputs = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        whole = loaded.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    answer = loaded.tokenizer.decode(whole[0][inputs["input_ids"].shape[1]:])
    assert "".join(pieces) == answer.split("[Round")[0]


@pytest.fixture(scope="module")
def tuned(glm, tmp_path_factory):
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    work = tmp_path_factory.mktemp("glm-ptune")
    data = work / "birds.json"
    data.write_text(json.dumps(BIRDS * 3, ensure_ascii=False), encoding="utf-8")
    config = PtuneConfig(data=data, output=work / "prefix", base_model=str(glm), pre_seq_len=4,
                         prefix_projection=True, lr=5e-2, batch_size=2, gradient_accumulation_steps=2, max_steps=16,
                         save_steps=8, logging_steps=4, val_split=0.25, max_target_length=6)
    steps = []
    result = run_ptune(config, work / "models", progress=lambda step, total, loss: steps.append((step, loss)))
    return {"result": result, "steps": steps, "work": work}


def test_ptune_trains_only_chatglm2s_prefix_encoder(tuned):
    from safetensors.torch import load_file

    losses = [loss for _, loss in tuned["steps"] if loss is not None]
    assert tuned["steps"][-1][0] == 16 and losses[-1] < 0.8 * losses[0]
    prefix = Path(tuned["result"].prefix)
    assert {"model.safetensors", "birds_prefix.json", "train_results.json", "eval_results.json"} <= {
        p.name for p in prefix.iterdir()}
    names = {f"transformer.prefix_encoder.{name}" for name in
             ("embedding.weight", "trans.0.weight", "trans.0.bias", "trans.2.weight", "trans.2.bias")}
    assert set(load_file(str(prefix / "model.safetensors"))) == names  # the original scripts' keys
    trained = torch.load(prefix / "checkpoint-8" / "trainer_state.pt", weights_only=False)["trainable"]
    assert set(trained) == names  # the base stayed frozen
    marker = json.loads((prefix / "birds_prefix.json").read_text())
    assert (marker["family"], marker["pre_seq_len"], marker["prefix_projection"]) == ("chatglm", 4, True)


def test_the_prefix_loads_back_in_both_formats_and_changes_the_output(glm, tuned, tmp_path):
    from safetensors.torch import load_file

    from birdsdao.language_model.ptune import load_prefix

    prefix = Path(tuned["result"].prefix)
    plain = logits(load(glm, tmp_path).model)
    ours = logits(load_prefix(load(glm, tmp_path), prefix))
    assert not torch.allclose(ours, plain, atol=1e-3)
    original = tmp_path / "checkpoint-3000"  # as the original ptuning saved it: no birds marker
    original.mkdir()
    torch.save(load_file(str(prefix / "model.safetensors")), original / "pytorch_model.bin")
    assert torch.equal(logits(load_prefix(load(glm, tmp_path), original)), ours)
    shutil.copy(prefix / "model.safetensors", original)
    (original / "pytorch_model.bin").unlink()
    assert torch.equal(logits(load_prefix(load(glm, tmp_path), original)), ours)


def test_a_birds_prefix_of_another_chatglm2_base_is_refused(tuned, tmp_path):
    from birdsdao.language_model.ptune import PrefixMismatchError, load_prefix

    other = make_folder(tmp_path / "three-layers", config={**TINY_CONFIG, "num_layers": 3})
    with pytest.raises(PrefixMismatchError, match="was trained on"):
        load_prefix(load(other, tmp_path), Path(tuned["result"].prefix))
    marker = Path(tuned["result"].prefix) / "birds_prefix.json"
    original = tmp_path / "original"  # without the marker only the shapes can tell
    shutil.copytree(marker.parent, original, ignore=shutil.ignore_patterns("birds_prefix.json", "checkpoint-*"))
    with pytest.raises(PrefixMismatchError, match=r"is \[4, 128\], this base needs \[4, 192\]"):
        load_prefix(load(other, tmp_path), original)


def test_answers_with_the_prefix_on_the_fast_cpu_path(glm, tuned, tmp_path):
    from birdsdao.language_model.generate import Chat, GenerationSettings
    from birdsdao.language_model.runtime import load_answering_model

    loaded = load_answering_model(str(glm), tmp_path / "models", prefix=Path(tuned["result"].prefix))
    head = loaded.model.get_output_embeddings()
    assert head.weight.dtype == torch.bfloat16  # the CPU speed-up: a bfloat16 output layer, the rest float32
    assert loaded.model.transformer.embedding.word_embeddings.weight.dtype == torch.float32
    assert loaded.model.transformer.prefix_encoder.embedding.weight.dtype == torch.float32
    chat = Chat(loaded, GenerationSettings(max_new_tokens=4))
    answer = "".join(chat.ask("丹顶鹤吃什么？"))
    assert chat.history == [("丹顶鹤吃什么？", answer.strip())]


def test_quantization_needs_a_gpu(glm, tmp_path):
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.chatglm2.loading import load_chatglm2
    from birdsdao.language_model.models import load_model

    with pytest.raises(InvalidInputError, match="needs a CUDA GPU"):
        load_model(glm, tmp_path / "models", quantization_bit=4)
    with pytest.raises(InvalidInputError, match="needs a CUDA GPU"):
        load_chatglm2(glm, quantization_bit=8)


def test_chatglm3_and_version_1_folders_are_refused(tmp_path):
    from birdsdao.language_model.models import ModelNotSupportedError, load_model

    for name, extra in (("chatglm3-6b", {"_name_or_path": "THUDM/chatglm3-6b"}),
                        ("chatglm-6b", {"position_encoding_2d": True})):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**TINY_CONFIG, **extra}))
        with pytest.raises(ModelNotSupportedError, match="implements ChatGLM2-6B only"):
            load_model(folder, tmp_path / "models")


def test_the_ptune_command_scores_an_original_checkpoint(glm, tuned, tmp_path):
    from typer.testing import CliRunner

    from birdsdao_cli.main import app

    data = tmp_path / "birds.json"
    data.write_text(json.dumps(BIRDS, ensure_ascii=False), encoding="utf-8")
    original = tmp_path / "checkpoint-3000"
    shutil.copytree(Path(tuned["result"].prefix), original, ignore=shutil.ignore_patterns("birds_prefix.json"))
    result = CliRunner().invoke(app, ["ptune", str(data), "--base-model", str(glm), "--eval-only", "--prefix",
                                      str(original), "--val-split", "0.5", "--max-target-length", "4",
                                      "-o", str(tmp_path / "scores"), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["eval"]) >= {"eval_loss", "bleu-4", "rouge-l"}
