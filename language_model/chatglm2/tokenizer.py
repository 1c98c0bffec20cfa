"""ChatGLM2's tokenizer: the folder's sentencepiece `tokenizer.model` plus five GLM special tokens.

The special tokens take the ids right after the sentencepiece vocabulary, in the order `[MASK]`,
`[gMASK]`, `[sMASK]`, `sop`, `eop`; text encoded with special tokens starts with `[gMASK]`, `sop`.
The end of text is sentencepiece's `</s>` and padding uses `<unk>`, on the left. Decoding never
writes the special tokens, nor `<s>`, `</s>` and `<unk>` (the original renders them as "").

The interface is the part of transformers' tokenizers that birdsdao uses: `__call__` (with
`return_tensors`, `padding`, `truncation`), `encode`, `decode`, `batch_decode` and the token ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from birdsdao.errors import InvalidInputError, MissingDependencyError

SPECIAL_TOKENS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
VOCAB_FILE = "tokenizer.model"


class ChatGLM2Tokenizer:
    padding_side = "left"
    chat_template = None  # prompts.py writes ChatGLM's own format for family "chatglm"
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str | Path):
        try:
            from sentencepiece import SentencePieceProcessor
        except ImportError:
            raise MissingDependencyError("ChatGLM2's tokenizer needs sentencepiece",
                                         hint="pip install sentencepiece") from None
        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise InvalidInputError(f"{self.vocab_file.parent}: no {VOCAB_FILE} (ChatGLM2's sentencepiece model)")
        try:
            self.sp = SentencePieceProcessor(model_file=str(self.vocab_file))
        except (OSError, RuntimeError) as exc:
            raise InvalidInputError(f"{self.vocab_file}: not a sentencepiece model ({exc})") from None
        self.sp_size = self.sp.vocab_size()
        self.special_tokens = {token: self.sp_size + index for index, token in enumerate(SPECIAL_TOKENS)}
        self.bos_token_id = self.sp.bos_id()
        self.eos_token_id = self.sp.eos_id()
        self.unk_token_id = self.pad_token_id = self.sp.unk_id()
        self.eos_token, self.unk_token, self.pad_token = "</s>", "<unk>", "<unk>"
        # ids that decode to nothing
        self._silent = set(self.special_tokens.values()) | {self.bos_token_id, self.eos_token_id, self.pad_token_id}

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> ChatGLM2Tokenizer:
        return cls(Path(folder) / VOCAB_FILE)

    def save_pretrained(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.vocab_file, Path(folder) / VOCAB_FILE)

    @property
    def vocab_size(self) -> int:
        return self.sp_size + len(SPECIAL_TOKENS)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(self._silent)

    def get_command(self, token: str) -> int:
        """The id of a special token (`[gMASK]`, `sop`, …) or of `<bos>`, `<eos>`, `<pad>`."""
        named = {"<bos>": self.bos_token_id, "<eos>": self.eos_token_id, "<pad>": self.pad_token_id}
        if token in named:
            return named[token]
        if token not in self.special_tokens:
            raise KeyError(f"{token} is not a ChatGLM2 special token")
        return self.special_tokens[token]

    def prefix_ids(self) -> list[int]:
        return [self.special_tokens["[gMASK]"], self.special_tokens["sop"]]

    def build_prompt(self, query: str, history: list[tuple[str, str]] = ()) -> str:
        """The chat format, `[Round N]\\n\\n问：…\\n\\n答：`, with earlier rounds numbered from 1."""
        from birdsdao.language_model.prompts import CHATGLM

        return CHATGLM.render(query, list(history or []))

    def tokenize(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.special_tokens.get(tokens, self.sp.piece_to_id(tokens))
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str]:
        if isinstance(ids, int):
            return {v: k for k, v in self.special_tokens.items()}.get(ids) or self.sp.id_to_piece(ids)
        return [self.convert_ids_to_tokens(i) for i in ids]

    def encode(self, text: str, add_special_tokens: bool = True, truncation: bool = False,
               max_length: int | None = None, **kwargs) -> list[int]:
        """Token ids; with `truncation` the text is cut so that the whole, special tokens included, fits."""
        ids = self.sp.encode(text)
        prefix = self.prefix_ids() if add_special_tokens else []
        if truncation and max_length is not None:
            ids = ids[: max(max_length - len(prefix), 0)]
        return prefix + ids

    def __call__(self, text: str | list[str], add_special_tokens: bool = True, return_tensors: str | None = None,
                 padding: bool | str = False, truncation: bool = False, max_length: int | None = None,
                 return_attention_mask: bool = True, **kwargs):
        """`input_ids` and `attention_mask` of one text or a batch (padded on the left when asked or needed)."""
        from transformers import BatchEncoding

        batch = [text] if isinstance(text, str) else list(text)
        rows = [self.encode(item, add_special_tokens, truncation, max_length) for item in batch]
        width = max((len(row) for row in rows), default=0)
        if padding == "max_length" and max_length is not None:
            width = max(width, max_length)
        if padding or (return_tensors and len({len(row) for row in rows}) > 1):
            masks = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
            rows = [[self.pad_token_id] * (width - len(row)) + row for row in rows]
        else:
            masks = [[1] * len(row) for row in rows]
        data = {"input_ids": rows, "attention_mask": masks}
        if isinstance(text, str):
            data = {key: value[0] for key, value in data.items()}
            if return_tensors:
                data = {key: [value] for key, value in data.items()}  # tensors keep a batch dimension
        if not return_attention_mask:
            del data["attention_mask"]
        return BatchEncoding(data, tensor_type=return_tensors)

    def decode(self, ids, skip_special_tokens: bool = False, **kwargs) -> str:
        """Text of `ids` (an int, a list or a tensor); special tokens decode to nothing either way."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.sp.decode([i for i in ids if i not in self._silent and 0 <= i < self.sp_size])

    def batch_decode(self, sequences, skip_special_tokens: bool = False, **kwargs) -> list[str]:
        return [self.decode(ids, skip_special_tokens) for ids in sequences]
