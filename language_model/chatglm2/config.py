"""ChatGLM2's configuration, with the field names of the original `config.json` so it loads unchanged."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class ChatGLM2Config(PreTrainedConfig):
    """The defaults are ChatGLM2-6B's own config.json."""

    model_type = "chatglm"
    # transformers' DynamicCache counts layers by the standard name
    attribute_map = {"num_hidden_layers": "num_layers"}

    num_layers: int = 28
    padded_vocab_size: int = 65024  # rows of the embedding and of the output layer
    vocab_size: int | None = None  # the original stores it equal to padded_vocab_size
    hidden_size: int = 4096
    ffn_hidden_size: int = 13696
    kv_channels: int = 128  # head dimension
    num_attention_heads: int = 32
    seq_length: int = 32768
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    layernorm_epsilon: float = 1e-5
    rmsnorm: bool = True  # False: LayerNorm
    apply_residual_connection_post_layernorm: bool = False
    post_layer_norm: bool = True
    add_bias_linear: bool = False
    add_qkv_bias: bool = True
    multi_query_attention: bool = True
    multi_query_group_num: int = 2  # key/value heads when multi_query_attention
    pre_seq_len: int | None = None  # P-Tuning v2 prefix length; None: no prefix encoder
    prefix_projection: bool = False  # the prefix goes through a two-layer MLP
    tie_word_embeddings: bool = False
    use_cache: bool = True
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = 0
    bos_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.vocab_size is None:
            self.vocab_size = self.padded_vocab_size
        super().__post_init__(**kwargs)

    @property
    def kv_heads(self) -> int:
        """Key/value heads: the multi-query groups, or one per query head."""
        return self.multi_query_group_num if self.multi_query_attention else self.num_attention_heads

    @property
    def prefix_width(self) -> int:
        """Numbers per prefix position: a key and a value of every group in every layer."""
        return self.num_layers * 2 * self.kv_heads * self.kv_channels

    def validate_architecture(self):
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(f"{self.num_attention_heads} attention heads do not split into {self.kv_heads} groups")
