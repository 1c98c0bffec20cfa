"""ChatGLM2: a pre-norm GLM decoder with multi-query attention, written from its architecture description.

Module and parameter names follow the original checkpoint (`transformer.embedding.word_embeddings`,
`transformer.encoder.layers.N.self_attention.query_key_value`, …), so its weights load as they are.
Activations are batch-first here (the original is sequence-first); the arithmetic is the same.

What differs from a Llama-style decoder, and is easy to get wrong:
- keys/values have `multi_query_group_num` heads; query head h uses group h // (heads / groups);
- rotary embedding covers only the first half of each head, rotating adjacent pairs (GPT-J style);
- the P-Tuning v2 prefix enters every layer's cache as keys/values but takes no position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from birdsdao.language_model.chatglm2.config import ChatGLM2Config

ROPE_BASE = 10000.0
PREFIX_DROPOUT = 0.1  # the original's dropout on the prefix keys/values (active in training only)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)  # in float32, whatever the model's dtype
        return (self.weight * (x * torch.rsqrt(variance + self.eps))).to(x.dtype)


def _norm(config: ChatGLM2Config, size: int) -> nn.Module:
    return RMSNorm(size, config.layernorm_epsilon) if config.rmsnorm else nn.LayerNorm(size, config.layernorm_epsilon)


def rotary_tables(positions: torch.Tensor, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, [batch, seq, 1, head_dim/4]: angles for the head_dim/2 rotated features, one per pair."""
    rotated = head_dim // 2
    theta = 1.0 / ROPE_BASE ** (torch.arange(0, rotated, 2, dtype=torch.float32, device=positions.device) / rotated)
    angles = positions.float()[..., None] * theta
    return angles.cos()[:, :, None, :].to(dtype), angles.sin()[:, :, None, :].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[2i], x[2i+1]) of the first half of each head; the second half passes through."""
    rotated = cos.shape[-1] * 2
    pairs = x[..., :rotated].unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    turned = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
    return torch.cat((turned, x[..., rotated:]), dim=-1)


@dataclass
class AttentionMask:
    allowed: torch.Tensor | None  # [batch, 1, query, key], True = may attend; None with `causal` or all visible
    causal: bool


def attention_mask_for(mask: torch.Tensor | None, query: int, past: int, prefix: int,
                       device: torch.device) -> AttentionMask:
    """The mask for `query` new tokens after `past` cached positions, of which the first `prefix` are the prefix.

    `mask` is the caller's [batch, tokens] padding mask over the real tokens (prefix slots are always
    visible, so they may be left out of it).
    """
    total = past + query
    if mask is not None:
        if mask.shape[1] == total - prefix:
            mask = F.pad(mask, (prefix, 0), value=1)
        elif mask.shape[1] != total:
            raise ValueError(f"attention_mask covers {mask.shape[1]} positions, the cache and input {total}")
        if bool(mask.all()):
            mask = None
    if mask is None:
        if past == 0:
            return AttentionMask(None, causal=query > 1)
        if query == 1:
            return AttentionMask(None, causal=False)
    keys = torch.arange(total, device=device)
    allowed = (keys[None, :] <= keys[past:, None])[None, None]  # [1, 1, query, total]: past and earlier tokens
    if mask is not None:
        allowed = allowed & mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    # a query row that sees nothing (a pad before any real token) would turn into NaN: let it see everything
    allowed = allowed | ~allowed.any(-1, keepdim=True)
    return AttentionMask(allowed, causal=False)


class SelfAttention(nn.Module):
    def __init__(self, config: ChatGLM2Config, layer_index: int):
        super().__init__()
        self.layer_index = layer_index
        self.heads, self.groups, self.head_dim = config.num_attention_heads, config.kv_heads, config.kv_channels
        self.split = (self.heads * self.head_dim, self.groups * self.head_dim, self.groups * self.head_dim)
        self.query_key_value = nn.Linear(config.hidden_size, sum(self.split),
                                         bias=config.add_bias_linear or config.add_qkv_bias)
        self.dense = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=config.add_bias_linear)
        self.dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], mask: AttentionMask,
                cache: Cache | None) -> torch.Tensor:
        batch, length, _ = x.shape
        query, key, value = self.query_key_value(x).split(self.split, dim=-1)
        query = apply_rotary(query.view(batch, length, self.heads, self.head_dim), *rotary).transpose(1, 2)
        key = apply_rotary(key.view(batch, length, self.groups, self.head_dim), *rotary).transpose(1, 2)
        value = value.view(batch, length, self.groups, self.head_dim).transpose(1, 2)
        if cache is not None:  # the cache keeps one key/value head per group, keys already rotated
            key, value = cache.update(key, value, self.layer_index)
        per_group = self.heads // self.groups  # consecutive query heads share a group (not tiled)
        key, value = key.repeat_interleave(per_group, dim=1), value.repeat_interleave(per_group, dim=1)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.allowed, is_causal=mask.causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.dense(out.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    """SwiGLU: one projection makes the gate and the up halves."""

    def __init__(self, config: ChatGLM2Config):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, 2 * config.ffn_hidden_size, bias=config.add_bias_linear)
        self.dense_4h_to_h = nn.Linear(config.ffn_hidden_size, config.hidden_size, bias=config.add_bias_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(gate) * up)


class GLMBlock(nn.Module):
    def __init__(self, config: ChatGLM2Config, layer_index: int):
        super().__init__()
        self.input_layernorm = _norm(config, config.hidden_size)
        self.self_attention = SelfAttention(config, layer_index)
        self.post_attention_layernorm = _norm(config, config.hidden_size)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.residual_from_norm = config.apply_residual_connection_post_layernorm

    def forward(self, x, rotary, mask, cache):
        normed = self.input_layernorm(x)
        x = (normed if self.residual_from_norm else x) + self.dropout(self.self_attention(normed, rotary, mask, cache))
        normed = self.post_attention_layernorm(x)
        return (normed if self.residual_from_norm else x) + self.dropout(self.mlp(normed))


class Embedding(nn.Module):
    def __init__(self, config: ChatGLM2Config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class Encoder(nn.Module):
    def __init__(self, config: ChatGLM2Config):
        super().__init__()
        self.layers = nn.ModuleList(GLMBlock(config, index) for index in range(config.num_layers))
        self.final_layernorm = _norm(config, config.hidden_size) if config.post_layer_norm else None


class PrefixEncoder(nn.Module):
    """P-Tuning v2: `pre_seq_len` rows, each a key and a value for every group of every layer.

    With `prefix_projection` the rows pass through Linear → Tanh → Linear first. The embedding keeps
    torch's default N(0, 1) initialisation, as in the original training scripts.
    """

    def __init__(self, config: ChatGLM2Config):
        super().__init__()
        width = config.prefix_width
        self.embedding = nn.Embedding(config.pre_seq_len, width)
        self.trans = (nn.Sequential(nn.Linear(width, config.hidden_size), nn.Tanh(),
                                    nn.Linear(config.hidden_size, width)) if config.prefix_projection else None)
        self.layers, self.groups, self.head_dim = config.num_layers, config.kv_heads, config.kv_channels

    @property
    def length(self) -> int:
        return self.embedding.num_embeddings

    def forward(self, batch: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (key, value), each [batch, groups, pre_seq_len, head_dim]."""
        rows = self.embedding.weight
        if self.trans is not None:
            rows = self.trans(rows)
        # a row reads [layer0 key, layer0 value, layer1 key, …], each groups × head_dim
        kv = rows.to(dtype).view(self.length, self.layers * 2, self.groups, self.head_dim).permute(1, 2, 0, 3)
        kv = kv.unsqueeze(1).expand(-1, batch, -1, -1, -1)
        return [(kv[2 * layer], kv[2 * layer + 1]) for layer in range(self.layers)]


class ChatGLM2Transformer(nn.Module):
    """The `transformer.` part of the original checkpoint: embedding, encoder, output layer, prefix."""

    def __init__(self, config: ChatGLM2Config):
        super().__init__()
        self.config = config
        self.embedding = Embedding(config)
        self.encoder = Encoder(config)
        self.output_layer = nn.Linear(config.hidden_size, config.padded_vocab_size, bias=False)
        self.prefix_encoder = PrefixEncoder(config) if config.pre_seq_len else None
        self.prefix_dropout = nn.Dropout(PREFIX_DROPOUT)

    def forward(self, input_ids, inputs_embeds, attention_mask, position_ids, cache, want_hidden: bool):
        hidden = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        batch, length = hidden.shape[:2]
        past = cache.get_seq_length() if cache is not None else 0
        prefix = 0
        if self.prefix_encoder is not None:
            prefix = self.prefix_encoder.length
            if past == 0:  # a fresh cache: the prefix goes in first, in every layer
                for layer, (key, value) in enumerate(self.prefix_encoder(batch, hidden.dtype)):
                    cache.update(self.prefix_dropout(key), self.prefix_dropout(value), layer)
                past = prefix
        if position_ids is None:  # positions count real tokens only, never prefix slots
            position_ids = torch.arange(past - prefix, past - prefix + length, device=hidden.device)
            position_ids = position_ids.unsqueeze(0).expand(batch, -1)
        rotary = rotary_tables(position_ids, self.config.kv_channels, hidden.dtype)
        mask = attention_mask_for(attention_mask, length, past, prefix, hidden.device)
        states = []
        for block in self.encoder.layers:
            states.append(hidden)
            hidden = block(hidden, rotary, mask, cache)
        states.append(hidden)  # before the final norm, as the original reports it
        if self.encoder.final_layernorm is not None:
            hidden = self.encoder.final_layernorm(hidden)
        return hidden, tuple(states) if want_hidden else None


class ChatGLM2ForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = ChatGLM2Config
    config: ChatGLM2Config
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    _no_split_modules = ["GLMBlock"]

    def __init__(self, config: ChatGLM2Config):
        super().__init__(config)
        self.transformer = ChatGLM2Transformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.transformer.embedding.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.transformer.embedding.word_embeddings = value

    def get_output_embeddings(self) -> nn.Module:
        return self.transformer.output_layer

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.transformer.output_layer = value

    def set_prefix(self, pre_seq_len: int | None, projection: bool = False) -> PrefixEncoder | None:
        """Give the model a new prefix encoder (or none); returns it. Its weights start at torch's defaults."""
        self.config.pre_seq_len, self.config.prefix_projection = pre_seq_len, projection
        encoder = None
        if pre_seq_len:
            reference = self.transformer.embedding.word_embeddings.weight
            dtype = reference.dtype if reference.is_floating_point() else torch.float32
            encoder = PrefixEncoder(self.config).to(device=reference.device, dtype=dtype)
        self.transformer.prefix_encoder = encoder
        return encoder

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                output_hidden_states: bool | None = None, past_key_values: Cache | None = None,
                return_dict: bool | None = None, **kwargs) -> CausalLMOutputWithPast:
        cache = cache if cache is not None else past_key_values  # the name before transformers 5.x
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if cache is None and (use_cache or self.transformer.prefix_encoder is not None):
            cache = DynamicCache(config=self.config)  # without use_cache it only carries the prefix
        hidden, states = self.transformer(input_ids, inputs_embeds, attention_mask, position_ids, cache,
                                          bool(output_hidden_states))
        if isinstance(logits_to_keep, int):  # generate asks for the last position only
            kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            kept = hidden[:, logits_to_keep]
        logits = self.transformer.output_layer(kept)
        loss = None
        if labels is not None:  # token t predicts token t+1; -100 labels (prompt, padding) do not count
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None,
                                      hidden_states=states)
