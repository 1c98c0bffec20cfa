from pathlib import Path

import pytest

from birdsdao.data_prep.selection import rank_species, read_species_file, select_top
from birdsdao.data_prep.source import read_source
from birdsdao.errors import InvalidInputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COUNTS = {"B": 5, "A": 5, "C": 9, "D": 5, "E": 1}


def test_rank_by_count_then_name():
    assert rank_species(COUNTS) == ["C", "A", "B", "D", "E"]


def test_ties_at_the_cut_are_broken_by_name_and_reported():
    selection = select_top(COUNTS, 3)
    assert selection.kept == ["A", "B", "C"]  # class ids follow name order
    assert selection.dropped == ["D", "E"]
    assert selection.tied_at_cutoff == ["A", "B", "D"]
    assert select_top(COUNTS, 4).tied_at_cutoff == []  # the cut falls between 5 and 1
    assert select_top(COUNTS, 10).kept == ["A", "B", "C", "D", "E"]


def test_zero_classes_is_refused():
    with pytest.raises(InvalidInputError, match="at least 1"):
        select_top(COUNTS, 0)


def test_species_file_matches_loosely_and_ignores_comments(tmp_path):
    path = tmp_path / "species.txt"
    path.write_text("# my pick\nc\n  a   # the first\n\nC\n")
    selection = read_species_file(path, COUNTS)
    assert selection.kept == ["A", "C"]
    assert selection.dropped == ["B", "D", "E"]


def test_unknown_species_are_listed_with_their_lines(tmp_path):
    path = tmp_path / "species.txt"
    path.write_text("HOUSE FINCH\nHOUSE FINSH\nDODO\n")
    with pytest.raises(InvalidInputError) as caught:
        read_species_file(path, {"HOUSE FINCH": 3, "OVENBIRD": 2})
    message = str(caught.value)
    assert "2 species not in the source dataset" in message
    assert "line 2: 'HOUSE FINSH' (did you mean 'HOUSE FINCH'?)" in message
    assert "line 3: 'DODO'" in message


def test_empty_species_file_is_refused(tmp_path):
    path = tmp_path / "species.txt"
    path.write_text("# nothing\n")
    with pytest.raises(InvalidInputError, match="names no species"):
        read_species_file(path, COUNTS)


def test_real_400_counts_have_seven_species_tied_for_161st_place():
    path = SHARED / "birds400.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here (shared data exists in CI and dev only)")
    counts = read_source(path.parent, path).counts()
    selection = select_top(counts, 161)
    assert len(selection.kept) == 161
    assert len(selection.tied_at_cutoff) == 7
    assert {counts[name] for name in selection.tied_at_cutoff} == {157}
    kept_from_tie = [name for name in selection.tied_at_cutoff if name in selection.kept]
    assert kept_from_tie == sorted(selection.tied_at_cutoff)[: len(kept_from_tie)]


def test_shared_species_file_matches_the_525_names():
    species_file = SHARED / "species161-by-400-counts.txt"
    classes = SHARED / "classes525.csv"
    if not species_file.exists() or not classes.exists():
        pytest.skip("the shared species list is not here (shared data exists in CI and dev only)")
    names = {line.split(",")[1]: 1 for line in classes.read_text().splitlines()[1:]}
    assert len(read_species_file(species_file, names).kept) == 161
