"""Tiny random language models with a tokenizer trained here: they load and generate in a second.

Used by the tests' fixtures and by bench/gpu_check.py, which runs on a GPU machine that reaches no package index.
"""

from __future__ import annotations

from pathlib import Path

TINY_LM_CORPUS = [
    "问：丹顶鹤吃什么？\n答：丹顶鹤吃鱼、虾和水草。",
    "Question: What does the bald eagle eat?\nAnswer: Mostly fish.",
    "白头海雕生活在北美洲。 The house finch sings.",
]


def save_tiny_tokenizer(folder: Path):
    """A byte-level BPE tokenizer of 400 pieces trained on TINY_LM_CORPUS, saved in `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(TINY_LM_CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_tiny_llama(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = save_tiny_tokenizer(folder)
    torch.manual_seed(0)
    # weights wide enough (initializer_range) that a prefix can move the predictions a long way
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, initializer_range=0.3)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def make_tiny_gemma3(folder: Path) -> Path:
    """The default model's architecture (Gemma 3: sliding-window layers, q/k norms) at toy size."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = save_tiny_tokenizer(folder)
    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=16,
                              max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                              initializer_range=0.1)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    return folder
