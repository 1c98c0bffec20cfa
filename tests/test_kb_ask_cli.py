"""`birds kb` and `birds ask` from the command line: output people read, JSON scripts read, exit codes."""

import json

import pytest
from typer.testing import CliRunner

from birdsdao_cli.main import app

runner = CliRunner()

NOTES = {
    "magpie.md": "# 红嘴蓝鹊\n红嘴蓝鹊是鸦科鸟类，尾羽很长，嘴和脚是红色的。红嘴蓝鹊吃昆虫、果实，也掏鸟巢吃鸟卵。\n",
    "swallow.txt": "The barn swallow catches insects in flight and winters in Africa south of the Sahara.\n",
}


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_kb_lifecycle(notes):
    created = run("kb", "create", "我的笔记", "-d", "观鸟笔记", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["name"] == "我的笔记"

    added = run("kb", "add", "我的笔记", str(notes))
    assert added.exit_code == 0 and "2 added, 0 replaced, 0 unchanged" in added.output

    listed = json.loads(run("kb", "list", "--json").stdout)
    mine = [kb for kb in listed["knowledge_bases"] if kb["name"] == "我的笔记"]
    assert mine[0]["documents"] == 2 and listed["builtin_built"] is False
    assert "鸟类百科 (birds)" in run("kb", "list").stdout  # known before it is built

    shown = json.loads(run("kb", "show", "我的笔记", "--json").stdout)
    assert shown["chunks"] == 2 and shown["store_bytes"] > 0
    assert {doc["source"].rsplit("/", 1)[1] for doc in shown["documents"]} == set(NOTES)

    found = json.loads(run("kb", "search", "我的笔记", "红嘴蓝鹊吃什么", "-k", "1", "--json").stdout)
    assert found[0]["source"].endswith("magpie.md") and found[0]["relevant"] and found[0]["score"] == 1.0
    table = run("kb", "search", "我的笔记", "swallow winter").stdout
    assert "swallow.txt" in table and "score" in table

    removed = run("kb", "remove", "我的笔记", "magpie.md")
    assert removed.exit_code == 0 and "Removed" in removed.output
    kept = run("kb", "delete", "我的笔记", input="n\n")
    assert kept.exit_code == 1 and "我的笔记" in run("kb", "list").stdout
    deleted = run("kb", "delete", "我的笔记", "--yes")
    assert deleted.exit_code == 0 and "Deleted knowledge base 我的笔记 (1 chunks)" in deleted.output


def test_kb_errors_are_one_line_with_exit_code_2(notes):
    missing = run("kb", "show", "nope")
    assert missing.exit_code == 2 and "no knowledge base 'nope'" in missing.output
    assert "Traceback" not in missing.output
    reserved = run("kb", "create", "birds")
    assert reserved.exit_code == 2 and "built-in knowledge base" in reserved.output
    refused = run("kb", "add", "birds", str(notes))
    assert refused.exit_code == 2 and "species cards only" in refused.output
    bad_method = run("kb", "search", "nope", "x", "--method", "fuzzy")
    assert bad_method.exit_code == 2 and "choose one of hybrid, dense, bm25" in bad_method.output


def test_ask_with_retrieved_passages_and_with_nothing_found(notes):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    found = run("ask", "Where does the barn swallow spend the winter?", "--kb", "notes", "--no-llm", "--json")
    data = json.loads(found.stdout)
    assert data["mode"] == "retrieved" and data["lang"] == "en"
    assert data["answer"].startswith("(Retrieved text, not a generated answer)") and "Sahara" in data["answer"]
    assert data["sources"][0]["source"].endswith("swallow.txt") and "retrieval" in data["timings"]

    nothing = json.loads(run("ask", "鸮鹦鹉吃什么？", "--kb", "notes", "--no-llm", "--json").stdout)
    assert nothing["mode"] == "nothing" and nothing["sources"] == [] and "没有" in nothing["answer"]

    shown = run("ask", "红嘴蓝鹊吃什么", "--kb", "notes", "--no-llm")
    assert "以下为检索到的原文" in shown.stdout and "来源" in shown.output and "magpie.md" in shown.output


def test_ask_grounded_and_plain_with_a_model(notes, tiny_model_dir):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    grounded = run("ask", "What does the barn swallow eat?", "--kb", "notes", "--base-model", str(tiny_model_dir),
                   "--max-new-tokens", "5", "--json")
    data = json.loads(grounded.stdout)
    assert data["mode"] == "grounded" and data["sources"] and {"first_token", "generation"} <= set(data["timings"])
    plain = json.loads(run("ask", "What does the barn swallow eat?", "--no-kb", "--base-model", str(tiny_model_dir),
                           "--max-new-tokens", "5", "--json").stdout)
    assert plain["mode"] == "plain" and plain["sources"] == []


def test_a_model_that_cannot_load_falls_back_to_passages(notes, tmp_path):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    result = run("ask", "barn swallow winter", "--kb", "notes", "--base-model", str(broken), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["mode"] == "retrieved"
    assert "did not load" in result.stderr
    alone = run("ask", "barn swallow", "--no-kb", "--base-model", str(broken))
    assert alone.exit_code == 2


def test_chat_keeps_history_and_answers_commands(notes, tiny_model_dir):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    session = "barn swallow winter\n/sources\n/clear\n/what\n/exit\n"
    result = run("ask", "--kb", "notes", "--no-llm", input=session)
    assert result.exit_code == 0, result.output
    assert "Sahara" in result.stdout
    assert "swallow.txt" in result.output  # /sources
    assert "Conversation cleared." in result.output and "Unknown command /what" in result.output


def test_ask_option_conflicts_are_clear():
    result = run("ask", "x", "--no-kb", "--no-llm")
    assert result.exit_code == 2 and "cannot go with --no-kb" in result.output
    result = run("ask", "--no-kb", "--no-llm", "--json")
    assert result.exit_code == 2


def test_the_default_answer_quotes_the_passages_without_loading_a_model(notes, monkeypatch):
    import birdsdao.language_model.runtime as runtime

    loads = []

    def no_model(*args, **kwargs):  # a load runs in a thread, where raising would go unseen: it is counted
        loads.append(args)
        raise AssertionError("the default model quotes the passages: nothing should load it")

    monkeypatch.setattr(runtime, "load_answering_model", no_model)
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    result = run("ask", "Where does the barn swallow spend the winter?", "--kb", "notes", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "extractive" and "guard" not in data
    assert data["answer"].startswith("(Quoted from the knowledge base, not a generated answer)")
    assert "Sahara" in data["answer"] and data["answer"].endswith("[1]")
    shown = run("ask", "红嘴蓝鹊吃什么", "--kb", "notes")
    assert shown.exit_code == 0 and "摘自知识库原文" in shown.stdout and "红嘴蓝鹊吃昆虫、果实" in shown.stdout
    assert "magpie.md" in shown.output and loads == []
    conflict = run("ask", "x", "--kb", "notes", "--no-llm", "--generate")
    assert conflict.exit_code == 2 and "contradict" in conflict.output


def test_rebuild_reads_the_files_again_and_reports_the_missing(notes):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    (notes / "swallow.txt").write_text("Barn swallows eat flies, caught low over water.\n", encoding="utf-8")
    (notes / "magpie.md").unlink()
    rebuilt = json.loads(run("kb", "rebuild", "notes", "--json").stdout)
    assert rebuilt["replaced"][0].endswith("swallow.txt") and rebuilt["chunks_added"] == 1
    assert rebuilt["skipped"][0]["path"].endswith("magpie.md") and "gone" in rebuilt["skipped"][0]["reason"]
    found = json.loads(run("kb", "search", "notes", "what do barn swallows eat", "-k", "1", "--json").stdout)
    assert "flies" in found[0]["text"]
    shown = json.loads(run("kb", "show", "notes", "--json").stdout)
    assert shown["documents"] and len(shown["documents"]) == 2  # the vanished file's chunks are kept


def test_quantization_on_a_cpu_is_an_error_even_where_a_broken_model_would_fall_back(notes, tiny_model_dir):
    run("kb", "create", "notes")
    run("kb", "add", "notes", str(notes))
    for extra in (["--kb", "notes"], ["--no-kb"]):  # with a KB a model that fails to load is not fatal: this is
        result = run("ask", "barn swallow winter", *extra, "--base-model", str(tiny_model_dir),
                     "--quantization-bit", "4", "--json")
        assert result.exit_code == 2, result.output
        assert "--quantization-bit 4 needs a CUDA GPU" in result.output and result.stdout == ""


def test_prefix_and_no_prefix_together_are_refused(tmp_path):
    result = run("ask", "barn swallow", "--no-kb", "--prefix", str(tmp_path), "--no-prefix")
    assert result.exit_code == 2 and "contradict" in result.output


def test_ui_refuses_prefix_and_no_prefix_together(tmp_path):
    result = run("ui", "--prefix", str(tmp_path), "--no-prefix")
    assert result.exit_code == 2 and "contradict" in result.output


def test_a_built_in_card_is_cited_by_its_place_in_the_package_not_the_install_path():
    from birdsdao.knowledge.retrieval import shown_source
    from birdsdao.resources import data_dir

    shown = run("ask", "白头海雕吃什么？")
    assert shown.exit_code == 0, shown.output
    assert "[1] data/species/bald-eagle.yaml#zh p." in shown.output
    assert str(data_dir()) not in shown.output
    scripted = json.loads(run("ask", "白头海雕吃什么？", "--json").stdout)  # scripts still get the file's path
    assert scripted["sources"][0]["source"] == str(data_dir() / "species" / "bald-eagle.yaml") + "#zh"
    assert shown_source("/home/me/notes/鸟.md") == "/home/me/notes/鸟.md"
