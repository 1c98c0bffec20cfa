"""Every loader on a real file made here, and the Chinese-aware splitter."""

import json

import pytest

from birdsdao.knowledge.loaders import UnreadableDocument, collect_files, load_all, load_document
from birdsdao.text_splitter import chunk_id, sentences, split_text

CRANE_ZH = "丹顶鹤是大型涉禽，头顶有红色的皮肤。它们在湿地生活，吃鱼、虾和水草！冬天飞到南方越冬。"
CRANE_EN = "The red-crowned crane is a large wading bird. It winters in the south."


def test_text_markdown_and_gb18030(tmp_path):
    (tmp_path / "a.txt").write_text(CRANE_ZH, encoding="utf-8")
    (tmp_path / "b.md").write_text("# 丹顶鹤\n\n" + CRANE_EN, encoding="utf-8")
    (tmp_path / "c.txt").write_bytes(CRANE_ZH.encode("gb18030"))
    assert load_document(tmp_path / "a.txt").pages[0].text == CRANE_ZH
    assert "wading bird" in load_document(tmp_path / "b.md").pages[0].text
    assert load_document(tmp_path / "c.txt").pages[0].text == CRANE_ZH


def test_pdf_pages_keep_their_numbers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    path = tmp_path / "cranes.pdf"
    with PdfPages(path) as pdf:
        for text in ("Red-crowned cranes dance in winter.", "Bald eagles eat fish."):
            figure = Figure()
            figure.text(0.1, 0.5, text)
            pdf.savefig(figure)
    pages = load_document(path).pages
    assert [page.page for page in pages] == [1, 2]
    assert "dance" in pages[0].text and "eagles" in pages[1].text


def test_docx_paragraphs_and_tables(tmp_path):
    from docx import Document

    document = Document()
    document.add_paragraph(CRANE_ZH)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "学名", "Grus japonensis"
    document.save(tmp_path / "crane.docx")
    text = load_document(tmp_path / "crane.docx").pages[0].text
    assert CRANE_ZH in text and "学名 | Grus japonensis" in text


def test_html_csv_and_json(tmp_path):
    (tmp_path / "p.html").write_text(f"<html><head><style>p{{}}</style><script>var x;</script></head>"
                                     f"<body><h1>丹顶鹤</h1><p>{CRANE_ZH}</p></body></html>", encoding="utf-8")
    html = load_document(tmp_path / "p.html").pages[0].text
    assert html.startswith("丹顶鹤\n") and "var x" not in html
    (tmp_path / "t.csv").write_text("name,food\n丹顶鹤,鱼虾\nBald eagle,fish\n", encoding="utf-8")
    rows = load_document(tmp_path / "t.csv").pages
    expected = [(1, "name: 丹顶鹤; food: 鱼虾"), (2, "name: Bald eagle; food: fish")]
    assert [(row.page, row.text) for row in rows] == expected
    (tmp_path / "d.json").write_text(json.dumps([{"name": "丹顶鹤", "diet": ["鱼", "虾"]}], ensure_ascii=False))
    assert load_document(tmp_path / "d.json").pages[0].text == "name: 丹顶鹤\ndiet: 鱼\ndiet: 虾"


def test_unreadable_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "ok.txt").write_text(CRANE_EN)
    (tmp_path / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    (tmp_path / "broken.json").write_text("{oops")
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "secret.txt").write_text("not collected")
    report = load_all([tmp_path])
    assert [doc.path.name for doc in report.documents] == ["ok.txt"]
    reasons = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in report.skipped}
    assert reasons["photo.txt"] == "binary data, not text"
    assert reasons["broken.pdf"].startswith("unreadable pdf")
    assert reasons["broken.json"].startswith("not valid JSON at line 1")
    assert reasons["song.mp3"].startswith(".mp3: not a type birds reads")
    assert reasons["empty.md"] == "no text in it"
    assert all(".hidden" not in str(path) for path in collect_files([tmp_path]))
    with pytest.raises(UnreadableDocument, match="no such file"):
        load_document(tmp_path / "missing.txt")


def test_sentences_end_at_chinese_and_english_punctuation():
    text = CRANE_ZH + " " + CRANE_EN
    found = [text[a:b] for a, b in sentences(text)]
    assert found == ["丹顶鹤是大型涉禽，头顶有红色的皮肤。", "它们在湿地生活，吃鱼、虾和水草！", "冬天飞到南方越冬。",
                     "The red-crowned crane is a large wading bird.", "It winters in the south."]


@pytest.mark.parametrize(("size", "overlap"), [(20, 0), (40, 15), (250, 50)])
def test_chunks_fit_cover_everything_and_overlap(size, overlap):
    text = (CRANE_ZH + "\n" + CRANE_EN + " ") * 5
    chunks = split_text(text, size, overlap)
    assert all(0 < len(chunk.text) <= size for chunk in chunks)
    assert all(text[chunk.start:chunk.end] == chunk.text for chunk in chunks)
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for a, b in sentences(text) for i in range(a, b))  # nothing lost
    starts = [chunk.start for chunk in chunks]
    assert starts == sorted(starts)
    if overlap and size >= 40:
        assert any(later.start < earlier.end for earlier, later in zip(chunks, chunks[1:], strict=False))


def test_chunk_ids_follow_the_content_and_the_document():
    chunk = split_text(CRANE_ZH, 30, 5)[0]
    same = split_text(CRANE_ZH, 30, 5)[0]
    assert chunk_id("birds/a.txt", None, chunk) == chunk_id("birds/a.txt", None, same)
    assert chunk_id("birds/a.txt", None, chunk) != chunk_id("other/a.txt", None, chunk)  # same name, other folder
    edited = split_text(CRANE_ZH.replace("红色", "朱红色"), 30, 5)[0]
    assert chunk_id("birds/a.txt", None, chunk) != chunk_id("birds/a.txt", None, edited)
