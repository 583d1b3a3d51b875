"""Reading CSV, JSONL and Parquet files: rows, row numbers, and bad rows as Problems."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tastegraph.ingest.quarantine import InputError, Problem
from tastegraph.ingest.readers import Row, read_table


def read(tmp_path: Path, name: str, data: bytes | str) -> list[Row | Problem]:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return list(read_table(path))


def only_problem(entries: list[Row | Problem]) -> Problem:
    problems = [entry for entry in entries if isinstance(entry, Problem)]
    assert len(problems) == 1, entries
    return problems[0]


# -- CSV ----------------------------------------------------------------------------------


def test_csv_rows_are_numbered_from_one_without_the_header(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", "id,title\na,Alpha\nb,Beta\n")
    assert entries == [Row(1, {"id": "a", "title": "Alpha"}), Row(2, {"id": "b", "title": "Beta"})]


def test_csv_empty_and_blank_cells_are_none_and_cells_are_stripped(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", "id,title,price\n a ,,   \n")
    assert entries == [Row(1, {"id": "a", "title": None, "price": None})]


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", b"\xef\xbb\xbfid,title\na,A\n")
    assert entries == [Row(1, {"id": "a", "title": "A"})]


def test_csv_blank_lines_are_not_rows(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", "id\na\n\n\nb\n")
    assert entries == [Row(1, {"id": "a"}), Row(2, {"id": "b"})]


def test_csv_quoted_newline_keeps_one_row(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", 'id,title\r\na,"two\r\nlines"\r\nb,B\r\n')
    assert entries == [
        Row(1, {"id": "a", "title": "two\r\nlines"}),
        Row(2, {"id": "b", "title": "B"}),
    ]


def test_csv_header_only_gives_no_rows(tmp_path: Path) -> None:
    assert read(tmp_path, "items.csv", "id,title\n") == []


def test_csv_row_with_extra_fields_is_a_problem_with_the_counts(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", "id,title\na,A\nb,B,surplus\nc,C\n")
    problem = only_problem(entries)
    assert (problem.row, problem.field) == (2, None)
    assert problem.reason == "row has 3 fields but the header has 2"
    assert problem.raw == "b,B,surplus"
    assert len(entries) == 3
    assert entries[2] == Row(3, {"id": "c", "title": "C"})


def test_csv_row_with_missing_fields_is_a_problem_with_the_counts(tmp_path: Path) -> None:
    problem = only_problem(read(tmp_path, "items.csv", "id,title,price\na,A,1\nb\n"))
    assert problem.row == 2
    assert problem.reason == "row has 1 fields but the header has 3"


def test_csv_invalid_utf8_in_a_cell_names_the_field(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", b"id,title\na,ok\nb,caf\xe9\n")
    problem = only_problem(entries)
    assert (problem.row, problem.field, problem.reason) == (2, "title", "not valid UTF-8")
    assert problem.raw is not None and problem.raw.isascii()  # shown escaped, never raw bytes
    assert "caf" in problem.raw
    assert entries[0] == Row(1, {"id": "a", "title": "ok"})


def test_csv_nul_byte_in_a_cell_names_the_field(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", b"id,title\na,x\x00y\nb,B\n")
    problem = only_problem(entries)
    assert (problem.row, problem.field, problem.reason) == (1, "title", "contains a NUL byte")
    assert entries[1] == Row(2, {"id": "b", "title": "B"})


def test_csv_truncated_last_line_is_a_problem(tmp_path: Path) -> None:
    entries = read(tmp_path, "events.csv", "user,item,action\nu1,i1,view\nu2,i")
    assert entries[0] == Row(1, {"user": "u1", "item": "i1", "action": "view"})
    problem = only_problem(entries)
    assert problem.row == 2
    assert problem.reason == "row has 2 fields but the header has 3"


def test_csv_truncated_inside_a_quoted_cell_is_a_problem(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.csv", 'id,title\na,A\nb,"cut in the mid')
    assert entries[0] == Row(1, {"id": "a", "title": "A"})
    assert only_problem(entries).row == 2


def test_an_unclosed_quote_does_not_hide_the_rows_after_it(tmp_path: Path) -> None:
    rows = [f"{k},Item {k}" for k in range(1, 12)]
    rows[7] = '8,"Item 8 with an unclosed quote'
    entries = read(tmp_path, "items.csv", "id,title\n" + "\n".join(rows) + "\n")
    problem = only_problem(entries)
    assert problem.row == 8 and "3 lines after it are read again" in problem.reason
    assert problem.raw is not None and "unclosed quote" in problem.raw
    kept = [e.values["id"] for e in entries if isinstance(e, Row)]
    assert kept == [str(k) for k in range(1, 12) if k != 8]
    assert [e.number for e in entries if isinstance(e, Row)][-3:] == [9, 10, 11]


def test_csv_empty_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty; expected a header row"):
        read(tmp_path, "items.csv", b"")


def test_csv_repeated_or_empty_column_names_are_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty or repeated column names"):
        read(tmp_path, "items.csv", "id,title,id\na,b,c\n")
    with pytest.raises(InputError, match="empty or repeated column names"):
        read(tmp_path, "more.csv", "id,,title\na,b,c\n")


def test_csv_header_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="header is not valid UTF-8"):
        read(tmp_path, "items.csv", b"id,t\xeftle\na,b\n")


# -- JSONL --------------------------------------------------------------------------------


def test_jsonl_rows_skip_blank_lines_and_empty_strings_are_none(tmp_path: Path) -> None:
    data = '{"id": "a", "price": 3}\n\n   \n{"id": "b", "title": ""}\n'
    assert read(tmp_path, "items.jsonl", data) == [
        Row(1, {"id": "a", "price": 3}),
        Row(2, {"id": "b", "title": None}),
    ]


def test_ndjson_suffix_and_upper_case_suffixes_are_read(tmp_path: Path) -> None:
    assert read(tmp_path, "items.ndjson", '{"id": "a"}\n') == [Row(1, {"id": "a"})]
    assert read(tmp_path, "ITEMS.CSV", "id\na\n") == [Row(1, {"id": "a"})]


def test_jsonl_malformed_line_is_a_problem_and_reading_goes_on(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.jsonl", '{"id": "a"}\n{"id": \n{"id": "c"}\n')
    problem = only_problem(entries)
    assert problem.row == 2
    assert problem.reason.startswith("malformed JSON")
    assert entries[2] == Row(3, {"id": "c"})


@pytest.mark.parametrize("line", ['"text"', "[1, 2]", "42", "null"])
def test_jsonl_line_that_is_not_an_object_is_a_problem(tmp_path: Path, line: str) -> None:
    problem = only_problem(read(tmp_path, "items.jsonl", f'{{"id": "a"}}\n{line}\n'))
    assert (problem.row, problem.reason) == (2, "expected a JSON object")


def test_jsonl_invalid_utf8_line_is_a_problem(tmp_path: Path) -> None:
    problem = only_problem(read(tmp_path, "items.jsonl", b'{"id": "caf\xe9"}\n'))
    assert (problem.row, problem.reason) == (1, "not valid UTF-8")


def test_jsonl_truncated_last_line_is_a_problem(tmp_path: Path) -> None:
    entries = read(tmp_path, "events.jsonl", '{"user": "u1"}\n{"user": "u2", "it')
    assert entries[0] == Row(1, {"user": "u1"})
    problem = only_problem(entries)
    assert problem.row == 2
    assert problem.reason.startswith("malformed JSON")


def test_jsonl_integer_too_long_to_parse_is_a_problem(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.jsonl", '{"id": "a", "price": 1' + "0" * 5000 + "}\n")
    assert only_problem(entries).row == 1


def test_jsonl_deeply_nested_line_is_a_problem(tmp_path: Path) -> None:
    entries = read(tmp_path, "items.jsonl", "[" * 100_000 + "\n")
    assert only_problem(entries).row == 1


# -- Parquet ------------------------------------------------------------------------------


def test_parquet_rows_are_numbered_across_batches_and_empty_is_none(tmp_path: Path) -> None:
    n = 10_050  # more than one 10,000-row batch
    ids = [f"i{k}" for k in range(n)]
    titles = ["" if k == 3 else None if k == 4 else f"t{k}" for k in range(n)]
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": ids, "title": titles}), path, row_group_size=3000)
    entries = [entry for entry in read_table(path) if isinstance(entry, Row)]
    assert [entry.number for entry in entries] == list(range(1, n + 1))
    assert entries[0] == Row(1, {"id": "i0", "title": "t0"})
    assert entries[3].values["title"] is None
    assert entries[4].values["title"] is None
    assert entries[-1] == Row(n, {"id": f"i{n - 1}", "title": f"t{n - 1}"})


def test_file_that_is_not_parquet_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read(tmp_path, "items.parquet", "id,title\na,A\n")


def test_truncated_parquet_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"id": [f"i{k}" for k in range(100)]}), path)
    data = path.read_bytes()
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read(tmp_path, "cut.parquet", data[: len(data) // 2])


# -- the file as a whole ------------------------------------------------------------------


def test_unknown_extension_is_an_input_error_listing_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "items.xlsx"
    path.write_text("id\na\n")
    with pytest.raises(InputError, match=r"unknown format '\.xlsx'.*\.csv, \.jsonl"):
        read_table(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "folder.csv")
