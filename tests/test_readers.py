"""Readers against the real staged data (official row counts) and small malformed files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from taskmix.errors import DataError
from taskmix.tasks import load_split
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.readers import Columns, LabelSpec, TableReader

# (task, split, rows): official counts, data rows only; SNLI counts only gold-labelled pairs.
OFFICIAL_COUNTS = [
    ("cola", "train", 8551), ("cola", "dev", 1043), ("cola", "test", 1063),
    ("sst-2", "train", 67349), ("sst-2", "dev", 872), ("sst-2", "test", 1821),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408), ("mrpc", "test", 1725),
    ("sts-b", "train", 5749), ("sts-b", "dev", 1500), ("sts-b", "test", 1379),
    ("qnli", "dev", 5463), ("qnli", "test", 5463),
    ("rte", "train", 2490), ("rte", "dev", 277), ("rte", "test", 3000),
    ("wnli", "train", 635), ("wnli", "dev", 71), ("wnli", "test", 146),
    ("ax", "test", 1104), ("ax", "full", 1104),
    ("superglue-rte", "train", 2490), ("superglue-rte", "dev", 277),
    ("superglue-rte", "test", 3000),
    ("cb", "train", 250), ("cb", "dev", 56), ("cb", "test", 250),
    ("boolq", "dev", 3270), ("wic", "dev", 638),
    ("wsc", "train", 554), ("wsc", "dev", 104), ("wsc", "test", 146),
    ("snli", "dev", 9842), ("snli", "test", 9824), ("snli", "train_0.01", 5498),
]

# SuperGLUE files with no task here (multiple choice, spans, diagnostic): read generically.
RAW_JSONL_COUNTS = [
    ("superglue/copa/train.jsonl", "premise", 400), ("superglue/copa/val.jsonl", "premise", 100),
    ("superglue/copa/test.jsonl", "premise", 500),
    ("superglue/ax-g/WinoGender.jsonl", "premise", 356),
]


@pytest.mark.parametrize(("task", "split", "rows"), OFFICIAL_COUNTS)
def test_official_row_counts(data_dir: Path, task: str, split: str, rows: int) -> None:
    examples = load_split(task, split, data_dir)
    assert len(examples) == rows
    labelled = not split.startswith("test") or task == "snli"
    assert all((e.label is not None) == labelled for e in examples)


@pytest.mark.parametrize(("file", "text_key", "rows"), RAW_JSONL_COUNTS)
def test_other_superglue_files_read(data_dir: Path, file: str, text_key: str, rows: int) -> None:
    assert len(TableReader("jsonl", Columns(text_a=text_key, uid="idx"))(data_dir / file)) == rows


def test_label_distributions(data_dir: Path) -> None:
    full = load_split("ax", "full", data_dir)
    assert Counter(e.label for e in full) == {0: 460, 1: 386, 2: 258}
    snli_dev = load_split("snli", "dev", data_dir)
    assert Counter(e.label for e in snli_dev) == {0: 3329, 1: 3235, 2: 3278}
    boolq = load_split("boolq", "dev", data_dir)
    assert Counter(e.label for e in boolq) == {1: 2033, 0: 1237}


def test_glue_quirks(data_dir: Path) -> None:
    mrpc = load_split("mrpc", "dev", data_dir)  # BOM before the "Quality" header
    assert mrpc[0].label == 1 and mrpc[0].text_b.startswith('" The foodservice')
    test = load_split("mrpc", "test", data_dir)
    assert [e.uid for e in test[:2]] == ["0", "1"]
    cola = load_split("cola", "train", data_dir)  # headerless
    assert cola[0].text_a.startswith("Our friends won't buy")
    full = load_split("ax", "full", data_dir)  # CRLF endings, categories from four columns
    assert full[0].label == 2 and full[0].meta["categories"] == ["Logic"]
    assert Counter(len(e.meta["categories"]) for e in full)[0] == 2
    stsb = load_split("sts-b", "dev", data_dir)
    assert stsb[0].label == pytest.approx(5.0) and stsb[0].uid == "0"
    assert load_split("snli", "dev", data_dir)[0].uid == "4705552913.jpg#2r1n"


BINARY = LabelSpec(CLASSIFICATION, ("0", "1"))
PAIR = Columns(text_a="a", text_b="b", label="label", uid="id")


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_tsv_without_quoting_bom_and_crlf(tmp_path: Path) -> None:
    file = write(tmp_path / "x.tsv", '\ufeffid\ta\tb\tlabel\r\n7\t"quoted\tb "\t1\r\n\r\n')
    [example] = TableReader("tsv", PAIR, BINARY)(file)
    fields = (example.uid, example.text_a, example.text_b, example.label)
    assert fields == ("7", '"quoted', 'b "', 1)


def test_tsv_by_index_without_header(tmp_path: Path) -> None:
    file = write(tmp_path / "x.tsv", "s\t1\t\tfirst\ns\t0\t*\tsecond\n")
    examples = TableReader("tsv", Columns(text_a=3, label=1), BINARY, header=False)(file)
    assert [(e.text_a, e.label, e.uid) for e in examples] == [("first", 1, "0"), ("second", 0, "1")]


def test_tsv_wrong_field_count_names_line(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.tsv", "id\ta\tb\tlabel\n1\tx\ty\t0\n2\tx\ty\n")
    with pytest.raises(DataError, match=r"bad\.tsv:3: expected 4 fields, found 3"):
        TableReader("tsv", PAIR, BINARY)(file)


def test_label_outside_set_names_file_line_label_and_set(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.tsv", "id\ta\tb\tlabel\n1\tx\ty\t0\n2\tx\ty\tmaybe\n")
    with pytest.raises(DataError, match=r"bad\.tsv:3: label 'maybe' is not one of \{'0', '1'\}"):
        TableReader("tsv", PAIR, BINARY)(file)


def test_regression_label_must_be_a_number(tmp_path: Path) -> None:
    file = write(tmp_path / "sts.tsv", "id\ta\tb\tlabel\n1\tx\ty\t4.5\n2\tx\ty\thigh\n")
    with pytest.raises(DataError, match=r"sts\.tsv:3: regression label 'high'"):
        TableReader("tsv", PAIR, LabelSpec(REGRESSION))(file)


def test_unknown_header_column(tmp_path: Path) -> None:
    file = write(tmp_path / "x.tsv", "id\tsentence\n1\tx\n")
    with pytest.raises(DataError, match=r"x\.tsv:1: no column 'a' in header"):
        TableReader("tsv", PAIR, BINARY)(file)


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    text = '{"a": "x", "b": "y", "label": "0", "id": 1}\n{"a": "x",\n'
    file = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(DataError, match=r"bad\.jsonl:2: bad JSON"):
        TableReader("jsonl", PAIR, BINARY)(file)


def test_jsonl_booleans_and_skip_rule(tmp_path: Path) -> None:
    lines = ['{"a": "x", "label": true}', '{"a": "y", "label": "-"}', '{"a": "z", "label": false}']
    file = write(tmp_path / "x.jsonl", "\n".join(lines))
    spec = LabelSpec(CLASSIFICATION, ("False", "True"), skip=frozenset({"-"}))
    examples = TableReader("jsonl", Columns(text_a="a", label="label"), spec)(file)
    assert [(e.text_a, e.label) for e in examples] == [("x", 1), ("z", 0)]


def test_jsonl_missing_key_names_line(tmp_path: Path) -> None:
    file = write(tmp_path / "x.jsonl", '{"a": "x", "label": "0"}\n{"label": "1"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: row has no field 'a'"):
        TableReader("jsonl", Columns(text_a="a", label="label"), BINARY)(file)


def test_csv_uses_standard_quoting(tmp_path: Path) -> None:
    file = write(tmp_path / "x.csv", 'id,a,b,label\n1,"x, with comma","line\nbreak",1\n2,p,q\n')
    reader = TableReader("csv", PAIR, BINARY)
    with pytest.raises(DataError, match=r"x\.csv:4: expected 4 fields, found 3"):
        reader(file)
    write(file, 'id,a,b,label\n1,"x, with comma","say ""hi""",1\n')
    [example] = reader(file)
    assert (example.text_a, example.text_b) == ("x, with comma", 'say "hi"')
