"""`birds ui`: the pages' logic through Streamlit's AppTest, on detectors and a language model made here."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from birdsdao_cli.main import app
from tests.conftest import biased_detector, jpeg_bytes

pytest.importorskip("streamlit", reason="the [ui] extra is not installed")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).parents[1] / "birdsdao" / "ui" / "app.py")
runner = CliRunner()


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory):
    """One BIRDS_HOME for the module: the built-in KB is embedded once, not per test."""
    return tmp_path_factory.mktemp("ui-home")


@pytest.fixture(scope="module")
def ui_detectors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-detectors")
    return {"sure": biased_detector(folder / "sure.pt", [4.0, -1.0, -9.0]),
            "blind": biased_detector(folder / "blind.pt", [-9.0, -9.0, -9.0])}


@pytest.fixture
def ui_env(monkeypatch, ui_home, ui_detectors, tiny_model_dir):
    monkeypatch.setenv("BIRDS_HOME", str(ui_home))
    monkeypatch.setenv("BIRDS_UI_WEIGHTS", str(ui_detectors["sure"]))
    monkeypatch.setenv("BIRDS_UI_BASE_MODEL", str(tiny_model_dir))
    for name in ("BIRDS_UI_PREFIX", "BIRDS_UI_NO_LLM", "BIRDS_CHROMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def started(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [element.value for element in elements]


@pytest.mark.slow
def test_upload_identify_shows_image_table_and_streamed_description(ui_env):
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("birds-ui-*"))
    at = started()
    assert texts(at.title) == ["鸟类识别"]
    at.file_uploader[0].upload("finch photo.jpg", jpeg_bytes(96, 64, seed=1), "image/jpeg")
    at.button[0].click().run()
    assert not at.exception and not at.error, (at.exception, texts(at.error))
    assert len(at.get("image")) == 1
    assert set(Path(tempfile.gettempdir()).glob("birds-ui-*")) == before  # the uploads' copies are gone
    table = at.dataframe[0].value
    assert table.to_dict("records") == [{"物种": "HOUSE FINCH", "名称": "家朱雀", "数量": 1, "置信度": 0.982}]
    assert "家朱雀（House Finch）" in texts(at.subheader)
    described = at.session_state["identified"]["descriptions"]
    assert len(described) == 1 and described[0]["text"]  # the tiny model wrote something, grounded on the card
    assert all(hit.source.endswith("house-finch.yaml#zh") for hit in described[0]["hits"])
    assert any("house-finch.yaml#zh" in caption for caption in texts(at.caption))

    at.sidebar.radio[0].set_value("English").run()  # a rerun shows the last results, in the new language's frame
    assert texts(at.title) == ["Identify birds"] and len(at.get("image")) == 1
    assert described[0]["text"] in texts(at.markdown)


def test_unreadable_upload_is_a_message_and_card_text_needs_no_model(ui_env):
    ui_env.setenv("BIRDS_UI_NO_LLM", "1")
    at = started()
    at.sidebar.radio[0].set_value("English").run()
    assert at.checkbox[1].value and at.checkbox[1].disabled  # card text only: no model to offer
    at.file_uploader[0].set_value([("broken.jpg", b"\xff\xd8 not a jpeg", "image/jpeg"),
                                   ("bird.png", jpeg_bytes(64, 64, seed=2), "image/png")])
    at.button[0].click().run()
    assert not at.exception
    assert [e.value.split(":")[0] for e in at.error] == ["Could not read broken.jpg"]
    assert at.dataframe[0].value["Species"].tolist() == ["HOUSE FINCH"]
    described = at.session_state["identified"]["descriptions"]
    assert described[0]["text"].startswith("(Retrieved text, not a generated answer)")


def test_no_bird_and_no_photo_are_said(ui_env, ui_detectors):
    ui_env.setenv("BIRDS_UI_WEIGHTS", str(ui_detectors["blind"]))
    at = started()
    at.button[0].click().run()
    assert texts(at.warning) == ["请先上传至少一张照片。"]
    at.file_uploader[0].upload("empty.jpg", jpeg_bytes(80, 80, seed=3), "image/jpeg")
    at.button[0].click().run()
    assert texts(at.info) == ["没有发现鸟。"] and not at.dataframe and not at.error


def test_a_missing_model_is_a_message_not_a_traceback(ui_env, tmp_path):
    ui_env.setenv("BIRDS_UI_BASE_MODEL", str(tmp_path / "no-such-model"))
    at = started("pages/ask.py")
    at.selectbox[0].set_value("").run()  # the model alone
    at.chat_input[0].set_value("What do finches eat?").run()
    assert not at.exception
    assert len(at.error) == 1 and "no-such-model" in at.error[0].value
    assert at.session_state["conversations"][""]["messages"] == []


@pytest.mark.slow
def test_chat_keeps_history_and_grounded_answers_show_sources(ui_env):
    at = started("pages/ask.py")
    assert at.selectbox[0].value == "birds"  # the built-in 鸟类百科 first
    at.chat_input[0].set_value("家朱雀吃什么？").run()
    at.chat_input[0].set_value("它们生活在哪里？").run()
    assert not at.exception and not at.error
    conversation = at.session_state["conversations"]["birds"]
    roles = [message["role"] for message in conversation["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    # the tiny model writes nonsense: the guard may show the passages instead, both grounded on the cards
    assert conversation["messages"][1]["mode"] in {"grounded", "guarded"}
    assert [q for q, _ in conversation["history"]] == ["家朱雀吃什么？", "它们生活在哪里？"]
    assert len(at.chat_message) == 4
    assert any("house-finch.yaml#zh" in caption for caption in texts(at.caption))

    at.selectbox[0].set_value("").run()  # the model alone: its own conversation, no sources
    at.chat_input[0].set_value("Hello?").run()
    assert at.session_state["conversations"][""]["messages"][1]["mode"] == "plain"
    at.button[0].click().run()  # clear
    assert at.session_state["conversations"][""]["messages"] == []
    assert at.session_state["conversations"][""]["history"] == []


def test_knowledge_base_create_upload_remove_delete(ui_env, ui_home):
    at = started("pages/knowledge.py")
    at.text_input[0].set_value("notes")
    at.text_input[1].set_value("field notes")
    at.button[0].click().run()  # the form's submit
    assert texts(at.success) == ["已创建知识库 notes。"]
    names = at.dataframe[0].value["名称"].tolist()
    assert "notes" in names

    notes = "The barn swallow eats flying insects caught over fields and water.\n\nIt nests under roofs."
    at.file_uploader[0].set_value([("swallow notes.txt", notes.encode(), "text/plain"),
                                   ("bad.pdf", b"not a pdf", "application/pdf")]).run()
    add = next(button for button in at.button if button.label == "加入知识库")
    add.click().run()
    assert not at.exception
    assert texts(at.success) == ["新增 1，更新 0，未变 0；写入 1 个片段。"]
    assert len(at.warning) == 1 and at.warning[0].value.startswith("跳过 bad.pdf：")
    kept = ui_home / "uploads" / "notes" / "swallow notes.txt"
    assert kept.read_text() == notes  # the KB refers to it by path, so it stays
    documents = at.dataframe[1].value
    assert documents["名称"].tolist() == [str(kept)] and documents["片段"].tolist() == [1]

    remove = next(button for button in at.button if button.label == "移除")
    remove.click().run()
    assert texts(at.success) == [f"已移除 {kept}（1 个片段）。"]
    assert texts(at.info) == ["这个知识库还没有文档。"]

    delete = next(button for button in at.button if button.label == "删除")
    assert delete.disabled  # until the confirmation is ticked
    at.checkbox(key="confirm-notes").check().run()
    next(button for button in at.button if button.label == "删除").click().run()
    assert texts(at.success) == ["已删除知识库 notes。"]
    assert "notes" not in (at.dataframe[0].value["名称"].tolist() if at.dataframe else [])


def test_builtin_kb_cannot_be_taken_by_a_new_base(ui_env):
    at = started("pages/knowledge.py")
    at.text_input[0].set_value("鸟类百科")
    at.button[0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "built-in" in at.error[0].value


def test_birds_ui_refuses_a_busy_port_and_a_missing_streamlit(monkeypatch):
    import importlib.util
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    result = runner.invoke(app, ["ui"])
    assert result.exit_code == 2 and 'pip install "birdsdao[ui]"' in result.output
