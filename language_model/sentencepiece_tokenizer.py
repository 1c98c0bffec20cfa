"""The default model's tokenizer for answering, read by sentencepiece: 0.1 s where tokenizer.json takes 2 s.

Gemma's tokenizer is a SentencePiece BPE model. The packaged GGUF carries its pieces, scores and kinds;
transformers rebuilt them as a tokenizers BPE with half a million merges (tokenizer.json, 33 MB), which the
tokenizers library reads in about 2 s of every new process, holding the interpreter lock: a fifth of the first
answer's wait on the transformers path. SentencePiece reads the same vocabulary, written once as a 5 MB model,
in 0.1 s. Answering needs only encoding and decoding, so `load_answering_model` uses this; training and
evaluation keep transformers' tokenizer.

The ids are the ones transformers' tokenizer gives (compared on every text of data/ in the tests, and on a few
edge cases whenever the files are written: where they differ, answering keeps transformers' tokenizer):
  * transformers finds its special tokens written in text. SentencePiece finds user-defined pieces, so Gemma's
    control tokens become user-defined pieces (<start_of_turn>, <mask>, <unusedN> …), except those it must keep
    as control and unknown pieces (<pad>, <eos>, <bos>, <unk>), which are found in the text here; decoding with
    `skip_special_tokens` leaves all of them out;
  * user-defined whitespace pieces are written with "▁" for the space, as SentencePiece escapes text;
  * transformers cuts a run of 32 or more spaces into 16-space pieces and one of 16–31 at its end, apart
    from the text beside it; SentencePiece would take the longest piece first, so such runs are cut here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

MODEL_FILE = "tokenizer.model"
INFO_FILE = "sentencepiece.json"
_SPACE = "\u2581"  # SentencePiece's visible space

# llama.cpp's token kinds in a GGUF, which are SentencePiece's own numbers
_UNKNOWN, _CONTROL, _USER_DEFINED = 2, 3, 4

# what the files are checked on against transformers' tokenizer when they are written (tests check far more)
CHECKED_TEXTS = ("丹顶鹤生活在湿地，以鱼虾为食。", "The bald eagle eats fish.", "请告诉我些关于BANANAQUIT的知识吧？",
                 "  two  spaces\tand a tab\n\n\nthree lines", "<start_of_turn>user\nhi<end_of_turn>", " " * 40 + "x",
                 "🦅 © ＡＢＣ全角　空格", "Haemorhous mexicanus, 13–14 cm (5.1–5.5 in)", "a <eos> b<pad><unk>")


def write_sentencepiece_files(gguf: Path, folder: Path, reference) -> None:
    """Write `tokenizer.model` and `sentencepiece.json` into `folder` from the GGUF's vocabulary, checked against
    `reference` (transformers' tokenizer of the same model). gguf's reader takes about 20 s over 262,144 pieces:
    done once, when the model folder is made or first answers."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    from birdsdao.files import written_atomically

    fields = GGUFReader(str(gguf)).fields

    def array(key: str) -> list:
        field = fields[key]
        return [field.parts[index] for index in field.data]

    def scalar(key: str) -> int:
        field = fields[key]
        return int(field.parts[field.data[0]][0])

    pieces = [bytes(part).decode("utf-8") for part in array("tokenizer.ggml.tokens")]
    scores = [float(part[0]) for part in array("tokenizer.ggml.scores")]
    kinds = [int(part[0]) for part in array("tokenizer.ggml.token_type")]
    ids = {name: scalar(f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos", "unknown", "padding")}
    kept_control = {ids["bos"], ids["eos"], ids["padding"]}

    model = model_pb2.ModelProto()
    trainer = model.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(pieces)
    trainer.byte_fallback = True
    trainer.allow_whitespace_only_pieces = True
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = (
        ids["unknown"], ids["bos"], ids["eos"], ids["padding"])
    trainer.unk_piece, trainer.bos_piece, trainer.eos_piece, trainer.pad_piece = (
        pieces[ids["unknown"]], pieces[ids["bos"]], pieces[ids["eos"]], pieces[ids["padding"]])
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    special = []
    for number, (piece, score, kind) in enumerate(zip(pieces, scores, kinds, strict=True)):
        if kind == _CONTROL:
            special.append(number)
            if number not in kept_control:
                kind = _USER_DEFINED
        if number == ids["unknown"]:
            kind = _UNKNOWN
        if kind == _USER_DEFINED:
            piece = piece.replace(" ", _SPACE)
        entry = model.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, kind
    info = {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["padding"],
            "unk_token_id": ids["unknown"], "special_ids": special}
    with written_atomically(Path(folder) / MODEL_FILE) as temporary:
        temporary.write_bytes(model.SerializeToString())
    info["mismatch"] = _first_difference(SentencePieceTokenizer(folder, info), reference)
    with written_atomically(Path(folder) / INFO_FILE) as temporary:
        temporary.write_text(json.dumps(info) + "\n", encoding="utf-8")


class SentencePieceTokenizer:
    """What answering asks of a transformers tokenizer: call and encode, decode (with `skip_special_tokens`),
    the special ids; no chat template (the default model answers in completion transcripts)."""

    chat_template = None
    padding_side = "left"

    def __init__(self, folder: Path, info: dict | None = None):
        import sentencepiece

        folder = Path(folder)
        self.name_or_path = str(folder)
        self._pieces = sentencepiece.SentencePieceProcessor(model_file=str(folder / MODEL_FILE))
        info = info or json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        self.bos_token_id, self.eos_token_id = info["bos_token_id"], info["eos_token_id"]
        self.pad_token_id, self.unk_token_id = info["pad_token_id"], info["unk_token_id"]
        self._special = frozenset(info["special_ids"])
        self._long_runs = {}  # a run of spaces' length -> its ids
        # what SentencePiece does not find in text itself: its control and unknown pieces, long runs of spaces
        self._kept = {self._pieces.id_to_piece(number): number for number in
                      (self.bos_token_id, self.eos_token_id, self.pad_token_id, self.unk_token_id)}
        self._cuts = re.compile("|".join(map(re.escape, self._kept)) + "| {32,}")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self.bos_token_id] if add_special_tokens else []
        start = 0
        for cut in self._cuts.finditer(text):
            ids += self._pieces.encode(text[start:cut.start()])
            ids += [self._kept[cut.group()]] if cut.group() in self._kept else self._spaces(len(cut.group()))
            start = cut.end()
        return ids + self._pieces.encode(text[start:])

    def _spaces(self, length: int) -> list[int]:
        """transformers' cut of a run of ≥ 32 spaces: 16 at a time while 32 or more are left, then the rest."""
        if length not in self._long_runs:
            widths = []
            while length - sum(widths) >= 32:
                widths.append(16)
            widths.append(length - sum(widths))
            self._long_runs[length] = [self._pieces.piece_to_id(_SPACE * width) for width in widths]
        return self._long_runs[length]

    def __call__(self, text: str, add_special_tokens: bool = True, return_tensors: str | None = None):
        from transformers import BatchEncoding

        ids = self.encode(text, add_special_tokens)
        if return_tensors is None:
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)})
        if return_tensors != "pt":
            raise ValueError(f"return_tensors={return_tensors!r}: only 'pt' is supported")
        import torch

        ids_tensor = torch.tensor([ids], dtype=torch.long)
        return BatchEncoding({"input_ids": ids_tensor, "attention_mask": torch.ones_like(ids_tensor)})

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False, **_ignored) -> str:
        """As transformers decodes: special tokens left out, or written as their text."""
        ids = [int(number) for number in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        if skip_special_tokens:
            return self._pieces.decode([number for number in ids if number not in self._special])
        text, run = [], []
        for number in ids:
            if number in self._special:
                text += [self._pieces.decode(run), self._pieces.id_to_piece(number)]
                run = []
            else:
                run.append(number)
        return "".join(text) + self._pieces.decode(run)


def _first_difference(tokenizer: SentencePieceTokenizer, reference) -> str | None:
    for text in CHECKED_TEXTS:
        ids = reference(text)["input_ids"]
        if tokenizer(text)["input_ids"] != ids or tokenizer.decode(ids, skip_special_tokens=True) != \
                reference.decode(ids, skip_special_tokens=True):
            return text
    return None


def sentencepiece_tokenizer(folder: Path, gguf_source, reference, progress=None) -> SentencePieceTokenizer | None:
    """The folder's sentencepiece tokenizer, its files written first where missing (`gguf_source()` is a context
    that gives the GGUF to read, `reference()` transformers' tokenizer); None where they did not match it."""
    folder = Path(folder)
    if not (folder / INFO_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        if not os.access(folder, os.W_OK):  # before 20 s of reading the GGUF, not after
            raise PermissionError(13, "Permission denied", str(folder))
        if progress:
            progress("Writing the tokenizer for sentencepiece (once, about 20 s)")
        with gguf_source() as gguf:
            write_sentencepiece_files(gguf, folder, reference())
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    return None if info.get("mismatch") else SentencePieceTokenizer(folder, info)
