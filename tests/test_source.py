from pathlib import Path

import pytest

from birdsdao.data_prep.source import canonical_name, clean_scientific_name, read_source
from birdsdao.errors import DatasetNotFoundError, InvalidInputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_names_collapse_white_space_and_keep_spelling():
    assert canonical_name("PARAKETT  AUKLET ") == "PARAKETT AUKLET"
    assert canonical_name("RUFUOS MOTMOT") == "RUFUOS MOTMOT"
    assert clean_scientific_name(" VESTIARIA COCCINEA.") == "VESTIARIA COCCINEA"


@pytest.mark.parametrize("fixture", ["birds_tree", "birds_tree_no_csv"])
def test_csv_and_folders_give_the_same_index(fixture, request):
    index = read_source(request.getfixturevalue(fixture))
    counts = index.counts()
    # train/PARAKETT  AUKLET and valid/PARAKETT AUKLET are one species of 5 images
    assert counts["PARAKETT AUKLET"] == 5
    assert "PARAKETT  AUKLET" not in counts
    assert counts == {
        "HOUSE FINCH": 9, "OVENBIRD": 7, "D-ARNAUDS BARBET": 6,
        "PARAKETT AUKLET": 5, "RUFUOS MOTMOT": 5, "ZEBRA DOVE": 5,
    }
    assert index.splits_found == ["train", "val", "test"]
    assert index.missing_splits == []


def test_csv_gives_clean_scientific_names_and_label_aliases(birds_tree):
    index = read_source(birds_tree)
    assert index.csv_path == birds_tree / "birds.csv"
    assert index.scientific_names["HOUSE FINCH"] == "HAEMORHOUS MEXICANUS"
    assert index.label_aliases == {"PARAKETT AUKLET": ["PARAKETT AKULET"]}


def test_reads_the_400_release_header_and_crlf(tmp_path, birds_tree):
    lines = (birds_tree / "birds.csv").read_text().splitlines()
    old = ["class index,filepaths,labels,data set"] + [",".join(line.split(",")[:4]) for line in lines[1:]]
    (birds_tree / "birds.csv").write_bytes(("\r\n".join(old) + "\r\n").encode())
    index = read_source(birds_tree)
    assert index.counts()["HOUSE FINCH"] == 9
    assert index.scientific_names == {}
    assert not any(image.species.endswith("\r") for image in index.images)


def test_missing_split_is_allowed_and_reported(birds_tree_no_csv):
    import shutil

    shutil.rmtree(birds_tree_no_csv / "test")
    index = read_source(birds_tree_no_csv)
    assert index.missing_splits == ["test"]


def test_csv_rows_that_escape_the_source_are_skipped(birds_tree):
    with open(birds_tree / "birds.csv", "a") as handle:
        handle.write("0.0,../../etc/passwd,HOUSE FINCH,train,X\n")
        handle.write("0.0,train/HOUSE FINCH/001.jpg,HOUSE FINCH,holiday,X\n")
        handle.write("0.0,train/HOUSE FINCH/001.jpg\n")
    index = read_source(birds_tree)
    reasons = {item.path.split(":")[1]: item.reason for item in index.skipped}
    last = len((birds_tree / "birds.csv").read_text().splitlines())
    assert "does not stay inside" in reasons[str(last - 2)]
    assert "unknown data set" in reasons[str(last - 1)]
    assert "fields" in reasons[str(last)]
    assert all("etc" not in str(image.path) for image in index.images)


def test_bad_csv_header_names_file_and_line(birds_tree):
    (birds_tree / "birds.csv").write_text("id,path,name\n1,a.jpg,X\n")
    with pytest.raises(InvalidInputError, match=r"birds.csv:1: the header lacks filepaths, labels, data set"):
        read_source(birds_tree)


def test_not_a_birds_tree_is_a_clear_error(tmp_path):
    (tmp_path / "holiday").mkdir()
    (tmp_path / "holiday" / "beach.jpg").write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError, match="is not a BIRDS-525 folder"):
        read_source(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no such folder"):
        read_source(tmp_path / "nowhere")


def test_real_400_release_csv():
    path = SHARED / "birds400.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here (shared data exists in CI and dev only)")
    index = read_source(path.parent, path)  # indexing opens no image, so the photos need not exist
    assert len(index.images) == 62388
    assert not index.skipped
    counts = index.counts()
    # `BLACK & YELLOW  BROADBILL` (train) and `BLACK & YELLOW BROADBILL` (valid, test) are one class
    assert len(counts) == 400
    assert "BLACK & YELLOW BROADBILL" in counts
    assert index.split_counts()["val"]["BLACK & YELLOW BROADBILL"] == 5
