"""The assistant layer: one object from one config; models load once; replies complete themselves as they stream."""

import pytest

from birdsdao.assistant import Assistant, AssistantConfig, ModelChoice, Reply
from birdsdao.errors import BirdsError, InvalidInputError
from birdsdao.settings import load_settings
from tests.conftest import biased_detector, jpeg_bytes

NOTES = {"swallow.txt": "The barn swallow catches insects in flight and winters in Africa south of the Sahara.\n"}


@pytest.fixture
def settings(tmp_path):
    return load_settings(tmp_path / "home")


@pytest.fixture
def notes_kb(settings, tmp_path):
    from birdsdao.knowledge.service import StoreAddress, add, create

    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    address = StoreAddress(settings.kb_dir)
    create(address, "notes")
    add(address, "notes", [folder])
    return "notes"


class Loads:
    """Counts the answering model's loads; the real loader does the work."""

    def __init__(self, monkeypatch):
        import birdsdao.language_model.runtime as runtime

        self.count = 0
        real = runtime.load_answering_model

        def counted(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(runtime, "load_answering_model", counted)


def test_a_reply_completes_its_answer_when_its_stream_ends(settings, notes_kb):
    assistant = Assistant(AssistantConfig(settings=settings, kb=notes_kb, model=ModelChoice(off=True)))
    reply = assistant.ask("Where does the barn swallow spend the winter?")
    assert isinstance(reply, Reply) and reply.answer.mode == "retrieved" and reply.answer.text == ""
    shown = "".join(reply)
    assert reply.answer.text == shown and "Africa south of the Sahara" in shown  # the stream filled it in
    again = assistant.ask("barn swallow insects").result()  # result() drains for callers that do not stream
    assert again.text and again.hits[0].source.endswith("swallow.txt")


def test_the_model_loads_once_and_the_history_grows_as_replies_finish(settings, tiny_model_dir, monkeypatch):
    from birdsdao.language_model.generate import GenerationSettings

    loads = Loads(monkeypatch)
    config = AssistantConfig(settings=settings, kb=None, model=ModelChoice(base_model=str(tiny_model_dir)),
                             generation=GenerationSettings(max_new_tokens=6))
    assistant = Assistant(config)
    history: list = []
    first = assistant.ask("丹顶鹤吃什么？", history)
    assert history == []  # the round counts once the reply is complete
    "".join(first)
    assert history == [("丹顶鹤吃什么？", first.answer.text)] and first.answer.mode == "plain"
    assistant.ask("白头海雕生活在哪里？", history).result()
    assert len(history) == 2 and loads.count == 1


def test_without_a_kb_a_model_that_cannot_load_is_an_error_and_with_one_the_passages_answer(
        settings, notes_kb, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    alone = Assistant(AssistantConfig(settings=settings, kb=None, model=ModelChoice(base_model=str(broken))))
    with pytest.raises(BirdsError, match="cannot load it"):
        alone.ask("What does the barn swallow eat?")
    grounded = Assistant(AssistantConfig(settings=settings, kb=notes_kb, model=ModelChoice(base_model=str(broken))))
    answer = grounded.ask("Where does the barn swallow spend the winter?").result()
    assert answer.mode == "retrieved" and grounded.model_problem  # said why, answered from the KB


def test_the_model_loads_while_the_passages_are_retrieved(settings, notes_kb, tiny_model_dir, monkeypatch):
    import threading

    import birdsdao.knowledge.service as service
    import birdsdao.language_model.runtime as runtime
    from birdsdao.language_model.generate import GenerationSettings

    retrieved = threading.Event()
    real_search, real_load = service.search_kb, runtime.load_answering_model

    def search(*args, **kwargs):
        hits = real_search(*args, **kwargs)
        retrieved.set()
        return hits

    def load(*args, **kwargs):  # finishes only once the passages are in: it must run beside retrieval
        assert retrieved.wait(30), "the model loaded before the passages were retrieved, not beside them"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(service, "search_kb", search)
    monkeypatch.setattr(runtime, "load_answering_model", load)
    config = AssistantConfig(settings=settings, kb=notes_kb, model=ModelChoice(base_model=str(tiny_model_dir)),
                             generation=GenerationSettings(max_new_tokens=4))
    answer = Assistant(config).ask("Where does the barn swallow spend the winter?").result()
    assert answer.mode in ("grounded", "guarded") and answer.hits and answer.timings["first_token"] > 0


def test_contradictory_choices_fail_when_the_assistant_is_built(settings):
    with pytest.raises(InvalidInputError, match="--no-kb"):
        Assistant(AssistantConfig(settings=settings, kb=None, model=ModelChoice(off=True)))
    with pytest.raises(InvalidInputError, match="contradict"):
        Assistant(AssistantConfig(settings=settings, model=ModelChoice(off=True), generate=True))
    with pytest.raises(InvalidInputError, match="--method"):
        Assistant(AssistantConfig(settings=settings, method="fuzzy"))


def test_identify_opens_the_detector_once_for_many_photos(settings, tmp_path, monkeypatch):
    import birdsdao.recognition.identify as identify_module

    weights = biased_detector(tmp_path / "sure.pt", [4.0, -1.0, -9.0])
    photo, other = tmp_path / "a.jpg", tmp_path / "b.jpg"
    photo.write_bytes(jpeg_bytes(96, 64, seed=1))
    other.write_bytes(jpeg_bytes(80, 80, seed=2))
    opened = []
    real = identify_module.open_recognition
    monkeypatch.setattr(identify_module, "open_recognition", lambda *a, **k: opened.append(a) or real(*a, **k))
    assistant = Assistant(AssistantConfig(settings=settings, weights=weights))
    first = list(assistant.identify([photo]))
    second = list(assistant.identify([photo, other]))
    assert len(opened) == 1 and len(second) == 2
    assert first[0].birds[0].species == "HOUSE FINCH" and first[0].birds[0].certain
    assert assistant.recognition_summary()["classifier"] is None  # a user's detector names its own classes


def test_a_refused_description_becomes_the_cards_passages_and_other_answers_stream_unchanged():
    from birdsdao.assistant.answer import Answer
    from birdsdao.assistant.core import passages_not_refusal

    class Hit:
        def __init__(self, text):
            self.text = text

    def run(pieces, lang="zh"):
        answer = Answer(question="q", lang=lang, mode="grounded", hits=[Hit("家朱雀 食性：种子、花芽和果实。")])
        shown = list(passages_not_refusal(answer, iter(pieces)))
        return answer, shown

    answer, shown = run(["根据已知", "信息无法回答", "该问题。"])
    assert answer.mode == "retrieved" and "根据已知" not in "".join(shown)  # the refusal is never shown
    assert shown == [answer.text] and "种子、花芽和果实" in answer.text
    assert answer.text.startswith("（以下为检索到的原文")
    answer, shown = run([" The known information", " cannot answer this."], lang="en")
    assert answer.mode == "retrieved" and "Retrieved text" in shown[0]
    answer, shown = run(["根据已知", "资料，家朱雀", "吃种子。"])  # starts like a refusal, is not one
    assert answer.mode == "grounded" and "".join(shown) == "根据已知资料，家朱雀吃种子。"
    assert shown[1:] == ["吃种子。"]  # once it differs, it streams piece by piece
    answer, shown = run(["家朱雀", "吃种子。"])
    assert shown == ["家朱雀", "吃种子。"]


@pytest.mark.parametrize(("lang", "expected"), [("zh", "体长约13–14厘米"), ("en", "about 13–14 cm long")])
def test_a_description_from_the_card_opens_like_a_field_guide_with_the_birds_size(settings, lang, expected):
    """`birds identify`'s description quotes the card's overview facts (size, range, diet), not e.g. how to
    tell it from a look-alike, which "Tell me about …" once pulled in through the word "tell"."""
    from birdsdao.recognition.detector import Bird

    finch = Bird("HOUSE FINCH", "House Finch", "家朱雀", 0.99, (0.0, 0.0, 224.0, 224.0), True)
    [(bird, reply)] = list(Assistant(AssistantConfig(settings=settings, kb="birds")).describe([finch], lang))
    text = "".join(reply)
    assert bird is finch and reply.answer.mode == "extractive"
    assert expected in text.splitlines()[1], text
