"""ChatGLM2 against the original code's own outputs on two tiny random configurations.

../shared/data/chatglm2-reference holds what the original modeling_chatglm.py (transformers 4.41)
computed: A without a prefix, B with a 4-token prefix (NOTES.md there). Its weights, under their
original names, load here as they are.
"""

import json
import shutil

import pytest
import torch

from tests.chatglm2_tiny import save_shards, train_tokenizer
from tests.conftest import shared_data

ATOL = 1e-5  # float32; a wrong rotary or group mapping moves the logits by 1e-3 or more (NOTES.md)


def reference(case: str):
    folder = shared_data("chatglm2-reference") / case
    return folder, json.loads((folder / "vectors.json").read_text(encoding="utf-8"))


def reference_model(folder):
    from birdsdao.language_model.chatglm2.loading import build_model

    return build_model(folder).eval()


def max_diff(a, b) -> float:
    return float((a - torch.as_tensor(b, dtype=a.dtype)).abs().max())


@pytest.mark.parametrize("case", ["A", "B"])
def test_forward_logits_and_cache_match_the_original(case):
    folder, vectors = reference(case)
    model = reference_model(folder)
    ids, mask = torch.tensor(vectors["input_ids"]), torch.tensor(vectors["attention_mask"])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, output_hidden_states=True)
        positioned = model(input_ids=ids, attention_mask=mask,
                           position_ids=torch.tensor(vectors["position_ids_forward"]).expand(2, -1))
    assert max_diff(out.logits, vectors["logits"]) < ATOL
    assert max_diff(positioned.logits, vectors["logits"]) < ATOL
    for ours, theirs in zip(out.hidden_states, vectors["debug"]["hidden_states"], strict=True):
        assert max_diff(ours, theirs) < ATOL
    # the cache holds each group's key (rotated) and value, the prefix first in B: [batch, seq, groups, dim] there
    prefix = 4 if case == "B" else 0
    for layer, (key, value) in zip(out.cache.layers, vectors["debug"]["presents"], strict=True):
        assert layer.keys.shape[2] == prefix + ids.shape[1]
        assert max_diff(layer.keys.transpose(1, 2), key) < ATOL
        assert max_diff(layer.values.transpose(1, 2), value) < ATOL


@pytest.mark.parametrize("case", ["A", "B"])
def test_greedy_tokens_and_cached_steps_match_the_original(case):
    folder, vectors = reference(case)
    model = reference_model(folder)
    expected = vectors["generation"]
    prompt = torch.tensor([expected["prompt"]])
    tokens, steps, cache = prompt, [], None
    with torch.no_grad():
        for positions in expected["position_ids_per_step"]:  # the prompt, then one token at a time with the cache
            out = model(input_ids=tokens, position_ids=torch.tensor([positions]), cache=cache, use_cache=True)
            cache = out.cache
            steps.append(out.logits[0, -1])
            tokens = out.logits[:, -1:].argmax(-1)
        generated = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                   max_new_tokens=len(expected["new_tokens"]))
    assert [int(step.argmax()) for step in steps] == expected["new_tokens"]
    assert max_diff(torch.stack(steps), expected["step_logits"]) < ATOL
    assert generated[0].tolist() == expected["full_sequence"]


@pytest.mark.parametrize("kind", ["bin", "safetensors"])
def test_sharded_checkpoints_load_as_the_single_file(kind, tmp_path):
    from birdsdao.language_model.chatglm2.weights import read_tensors, weight_files

    folder, vectors = reference("A")
    shutil.copy(folder / "config.json", tmp_path)
    save_shards(read_tensors(folder / "model.safetensors"), tmp_path, 2, kind)
    assert len(weight_files(tmp_path)) == 2
    ids = torch.tensor(vectors["input_ids"])
    with torch.no_grad():
        sharded = reference_model(tmp_path)(input_ids=ids).logits
        single = reference_model(folder)(input_ids=ids).logits
    assert torch.equal(sharded, single)


def original_prefix_checkpoint(folder, tensor, kind: str):
    """A checkpoint-N folder as the original ptuning scripts saved it: only the prefix encoder's weights."""
    from safetensors.torch import save_file

    folder.mkdir()
    state = {"transformer.prefix_encoder.embedding.weight": tensor.contiguous()}
    if kind == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "chatglm", "pre_seq_len": tensor.shape[0]}))
    return folder


@pytest.fixture
def base_a(tmp_path):
    """Reference A as a ChatGLM2-6B-style folder (a tokenizer added), loaded the way `--base-model` loads it."""
    from birdsdao.language_model.models import load_model

    folder, _ = reference("A")
    base = tmp_path / "chatglm2-a"
    base.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, base)
    train_tokenizer(base)
    return load_model(base, tmp_path / "models")


@pytest.mark.parametrize("kind", ["bin", "safetensors"])
def test_an_original_prefix_checkpoint_changes_the_output_exactly_as_bs_prefix(kind, base_a, tmp_path):
    from birdsdao.language_model.chatglm2.weights import read_tensors
    from birdsdao.language_model.ptune import load_prefix

    folder, vectors = reference("B")
    prefix = read_tensors(folder / "model.safetensors")["transformer.prefix_encoder.embedding.weight"]
    assert base_a.family == "chatglm"
    ids = torch.tensor(vectors["input_ids"])
    with torch.no_grad():
        plain = base_a.model(input_ids=ids).logits
        model = load_prefix(base_a, original_prefix_checkpoint(tmp_path / "checkpoint-3000", prefix, kind))
        tuned = model(input_ids=ids).logits
    assert max_diff(tuned, vectors["logits"]) < ATOL  # A's weights + B's prefix = B
    assert max_diff(plain, vectors["logits"]) > 100 * ATOL


def test_a_prefix_of_another_shape_is_refused(base_a, tmp_path):
    from birdsdao.language_model.ptune import PrefixMismatchError, load_prefix

    narrow = original_prefix_checkpoint(tmp_path / "checkpoint-1", torch.zeros(4, 64), "bin")
    with pytest.raises(PrefixMismatchError, match=r"embedding.weight is \[4, 64\], this base needs \[4, 128\]"):
        load_prefix(base_a, narrow)


def test_left_padding_changes_no_answer():
    """Batched generation pads on the left: the prefix stays visible, positions start at each row's first token."""
    _, vectors = reference("B")
    model = reference_model(reference("B")[0])
    short, long = vectors["input_ids"][0][:6], vectors["input_ids"][1]
    ids = torch.tensor([[0] * 4 + short, long])
    mask = torch.tensor([[0] * 4 + [1] * 6, [1] * 10])
    with torch.no_grad():
        batched = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=4)
        alone = [model.generate(input_ids=torch.tensor([row]), do_sample=False, max_new_tokens=4)[0, -4:].tolist()
                 for row in (short, long)]
    assert batched[:, -4:].tolist() == alone
