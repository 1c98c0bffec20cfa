"""ChatGLM2's tokenizer on a sentencepiece model trained here: special-token layout, chat format, round trip."""

import pytest

from tests.chatglm2_tiny import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from birdsdao.language_model.chatglm2.tokenizer import ChatGLM2Tokenizer

    folder = tmp_path_factory.mktemp("glm-tokenizer")
    train_tokenizer(folder)
    return ChatGLM2Tokenizer.from_pretrained(folder)


def test_special_tokens_follow_the_sentencepiece_vocabulary(tokenizer):
    size = tokenizer.sp.vocab_size()
    assert [tokenizer.get_command(t) for t in ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")] == list(
        range(size, size + 5))
    assert tokenizer.vocab_size == size + 5
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)  # <unk>, <s>, </s>
    assert tokenizer.get_command("<eos>") == 2 and tokenizer.padding_side == "left"


def test_encoding_starts_with_gmask_sop_and_decodes_back(tokenizer):
    text = "丹顶鹤吃鱼、虾和水草。 The house finch sings."
    ids = tokenizer.encode(text)
    assert ids[:2] == tokenizer.prefix_ids() == [tokenizer.get_command("[gMASK]"), tokenizer.get_command("sop")]
    assert ids[2:] == tokenizer.encode(text, add_special_tokens=False) == tokenizer.sp.encode(text)
    assert tokenizer.decode(ids) == text  # special tokens decode to nothing
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == text
    assert tokenizer.decode(ids[3]) == tokenizer.decode([ids[3]])  # the streamer decodes single ids too
    assert len(tokenizer.encode(text, truncation=True, max_length=5)) == 5


def test_batches_pad_on_the_left_and_become_tensors(tokenizer):
    batch = tokenizer(["丹顶鹤", "白头海雕生活在北美洲。"], return_tensors="pt", padding=True)
    short, long = batch["input_ids"].tolist()
    assert len(short) == len(long) and short[0] == tokenizer.pad_token_id
    assert batch["attention_mask"][0].tolist() == [0] * short.count(0) + [1] * (len(short) - short.count(0))
    single = tokenizer("丹顶鹤", return_tensors="pt")
    assert single["input_ids"].shape == (1, 2 + len(tokenizer.sp.encode("丹顶鹤")))
    assert tokenizer("丹顶鹤", add_special_tokens=False)["input_ids"] == tokenizer.sp.encode("丹顶鹤")


def test_the_chat_format_numbers_rounds_from_one(tokenizer):
    from birdsdao.language_model.prompts import build_prompt

    assert tokenizer.build_prompt("丹顶鹤吃什么？") == "[Round 1]\n\n问：丹顶鹤吃什么？\n\n答："
    history = [("丹顶鹤吃什么？", "鱼和虾。")]
    expected = "[Round 1]\n\n问：丹顶鹤吃什么？\n\n答：鱼和虾。\n\n[Round 2]\n\n问：它住在哪里？\n\n答："
    assert tokenizer.build_prompt("它住在哪里？", history) == expected
    assert build_prompt(tokenizer, "chatglm", "它住在哪里？", history) == (expected, ("[Round",))
