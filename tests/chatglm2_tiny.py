"""Tiny ChatGLM2 folders laid out like the original ChatGLM2-6B: config.json, tokenizer.model, weight shards."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "[Round 1]", "问：丹顶鹤吃什么？", "答：丹顶鹤吃鱼、虾和水草。", "问：白头海雕生活在哪里？",
    "答：白头海雕生活在北美洲。", "Question: What does the bald eagle eat?", "Answer: Mostly fish.",
    "The house finch sings in the morning.", "鸟类是恒温动物，全身有羽毛。",
]

# the reference's architecture (2 layers, 4 heads in 2 key/value groups, 16-wide heads), as config.json says it
TINY_CONFIG = {
    "model_type": "chatglm", "architectures": ["ChatGLMModel"],
    "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig",
                 "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration"},
    "num_layers": 2, "hidden_size": 64, "ffn_hidden_size": 128, "kv_channels": 16, "num_attention_heads": 4,
    "multi_query_attention": True, "multi_query_group_num": 2, "padded_vocab_size": 128, "seq_length": 64,
    "layernorm_epsilon": 1e-5, "rmsnorm": True, "post_layer_norm": True, "add_bias_linear": False,
    "add_qkv_bias": True, "apply_residual_connection_post_layernorm": False, "hidden_dropout": 0.0,
    "attention_dropout": 0.0, "pre_seq_len": None, "prefix_projection": False, "eos_token_id": 2,
    "pad_token_id": 0, "torch_dtype": "float32", "use_cache": True,
}


def train_tokenizer(folder: Path, vocab_size: int = 100) -> Path:
    """A sentencepiece model like ChatGLM2's (<unk> 0, <s> 1, </s> 2), small enough for a 128-row vocabulary."""
    import sentencepiece

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 4) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, num_threads=1)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    return folder / "tokenizer.model"


def save_shards(state: dict, folder: Path, shards: int, kind: str) -> None:
    """Weights split over `shards` files with an index, named as transformers (and ChatGLM2-6B) name them."""
    import torch
    from safetensors.torch import save_file

    names = list(state)
    stem, suffix = ("pytorch_model", "bin") if kind == "bin" else ("model", "safetensors")
    weight_map = {}
    for number in range(shards):
        part = names[number::shards]
        file = f"{stem}-{number + 1:05d}-of-{shards:05d}.{suffix}"
        tensors = {name: state[name].contiguous() for name in part}
        if kind == "bin":
            torch.save(tensors, folder / file)
        else:
            save_file(tensors, str(folder / file))
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": weight_map}
    (folder / f"{stem}.{suffix}.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def make_folder(folder: Path, *, config: dict | None = None, state: dict | None = None, seed: int = 0,
                std: float = 0.3, shards: int = 2, kind: str = "bin") -> Path:
    """A ChatGLM2 folder: the tiny config (or `config`), a trained tokenizer and random weights (or `state`).

    Random weights are wide (std 0.3) so that a prefix can move the predictions in a few steps.
    """
    import torch

    from birdsdao.language_model.chatglm2.config import ChatGLM2Config
    from birdsdao.language_model.chatglm2.modeling import ChatGLM2ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    config = dict(config or TINY_CONFIG)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    train_tokenizer(folder)
    if state is None:
        torch.manual_seed(seed)
        model = ChatGLM2ForCausalLM(ChatGLM2Config(**{k: v for k, v in config.items() if k != "auto_map"}))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "layernorm" in name:
                    parameter.fill_(1.0)
                else:
                    parameter.normal_(0.0, std)
        state = model.state_dict()
    save_shards(state, folder, shards, kind)
    return folder
