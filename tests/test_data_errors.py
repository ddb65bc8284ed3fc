"""Data problems that used to give silent wrong results or tracebacks: each is one clear
``DataError`` from ``load_task`` (or, where the data is still usable, a visible warning)."""

import csv
import errno
import logging
import re
from pathlib import Path

import pytest

from neurolang.data import (
    DataError,
    load_local_files,
    load_task,
    load_unlabelled,
    resolve_task,
    validate_unlabelled_sources,
)
from neurolang.data import files as data_files

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def tsv(rows) -> str:
    return "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows)


def binary_rows(n: int):
    return [(f"sentence {i}", i % 2) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Bad labels


BAD_LABELS = {
    # a typo label in an otherwise 0/1 file made an 8-class model
    "typo_label": (
        tsv(binary_rows(20) + [("typo", 7)]),
        r"labels in '.*train\.tsv' are 0, 1 and 7 \(7 once, at line 22\): class ids 2\.\.6 never "
        r"occur; fix the data or pass num_labels= / label_names=",
    ),
    "one_based_labels": (
        tsv([("a", 1), ("b", 2), ("c", 2)]),
        r"labels in '.*' are 1 and 2 \(1 once, at line 2; 2 in 2 rows, first at line 3\): "
        r"class id 0 never occurs",
    ),
    "negative_label": (
        tsv([("a", -1), ("b", 0), ("c", 1)]),
        r"are -1\.\.1 \(-1 once, at line 2\): -1 is not a class id",
    ),
    "ids_and_names_mixed": (
        tsv([("a", 0), ("b", 1), ("c", "O"), ("d", 1)]),
        r"mix integer class ids and names: .* 'O' once, at line 4",
    ),
    "single_int_class": (
        tsv([("a", 1)] * 5),
        r"the train split of task '[^']+' \('.*train\.tsv'\) has only one class \('1', 5 rows\): "
        r"a classifier needs at least two",
    ),
    "single_string_class": (
        tsv([("a", "pos")] * 3),
        r"has only one class \('pos', 3 rows\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_bad_train_labels(case, tmp_path):
    text, message = BAD_LABELS[case]
    path = write(tmp_path / "train.tsv", text)
    with pytest.raises(DataError, match=message):
        load_task(path)


def test_declared_classes_accept_ids_that_train_lacks(tmp_path):
    path = write(tmp_path / "train.tsv", tsv(binary_rows(20) + [("typo", 7)]))
    data = load_task(path, num_labels=8)
    assert data["train"].features["label"].num_classes == 8
    path = write(tmp_path / "one_based.tsv", tsv([("a", 1), ("b", 2)]))
    assert load_task(path, label_names=["x", "y", "z"])["train"]["label"] == [1, 2]


def test_single_class_is_an_error_even_when_classes_are_declared(tmp_path):
    path = write(tmp_path / "train.tsv", tsv([("a", 1)] * 4))
    with pytest.raises(DataError, match=r"only one class \('pos', 4 rows\)"):
        load_task(path, label_names=["neg", "pos"])


def test_rare_label_location_names_the_file_when_train_has_several(tmp_path):
    first = write(tmp_path / "a.tsv", tsv(binary_rows(6)))
    second = write(tmp_path / "b.tsv", tsv([("x", 0), ("typo", 4)]))
    with pytest.raises(
        DataError,
        match=r"the train files '.*a\.tsv', '.*b\.tsv' are 0, 1 and 4 "
        r"\(4 once, at '.*b\.tsv', line 3\): class ids 2 and 3 never occur",
    ):
        load_local_files({"train": [first, second]})


UNSEEN_DEV = {
    "int": (
        "0\n1\n",
        "0\n2\n2\n",
        r"validation labels never seen in the train split of task "
        r"'[^']+': 2 in 2 rows, first at '.*dev\.csv', line 3 \(train labels in "
        r"'.*train\.csv': 0 and 1\)",
    ),
    "string": (
        "neg\npos\n",
        "pos\nneutral\n",
        r"'neutral' once, at '.*dev\.csv', line 3 "
        r"\(train labels in '.*': 'neg' and 'pos'\)",
    ),
    "name_for_int_classes": ("0\n1\n", "1\nyes\n", r"'yes' once, at '.*dev\.csv', line 3"),
}


@pytest.mark.parametrize("case", sorted(UNSEEN_DEV))
def test_dev_label_absent_from_train_is_an_error_when_classes_are_inferred(case, tmp_path):
    train, dev, message = UNSEEN_DEV[case]
    for name, labels in (("train.csv", train), ("dev.csv", dev)):
        rows = "".join(f"t{i},{label}\n" for i, label in enumerate(labels.split()))
        write(tmp_path / name, "text,label\n" + rows)
    with pytest.raises(DataError, match=message):
        load_task(tmp_path)


def test_dev_label_absent_from_train_is_fine_when_classes_are_declared(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")
    write(tmp_path / "dev.csv", "text,label\nc,2\n")
    assert load_task(tmp_path, num_labels=3)["validation"]["label"] == [2]
    assert load_task(tmp_path, label_names=["a", "b", "c"])["validation"]["label"] == [2]


@pytest.mark.skipif(not (SHARED_DATA / "chnsenticorp").is_dir(), reason="no shared data")
def test_a_shipped_data_set_loads_as_user_files_with_inferred_classes():
    data = load_task(SHARED_DATA / "chnsenticorp", text_column="text_a")
    assert (len(data["train"]), len(data["validation"])) == (9600, 1200)
    assert data["train"].features["label"].names == ["0", "1"]


# --------------------------------------------------------------------------------------------
# Empty texts


ALL_EMPTY = {
    "train": (
        {"train.csv": "text,label\n ,0\n,1\n"},
        {},
        r"every text of the train split of "
        r"task '.*' is empty \(column 'text', 2 rows of '.*train\.csv'\); check text_column=",
    ),
    "validation": (
        {"train.csv": "text,label\na,0\nb,1\n", "dev.csv": "text,label\n\t,1\n"},
        {},
        r"every text of the validation split .* is empty",
    ),
    "text_pair": (
        {"train.tsv": "a\tb\tlabel\nx\t \t0\ny\t\t1\n"},
        {"text_column": "a", "text_pair_column": "b"},
        r"is empty \(column 'b', 2 rows .*check text_pair_column=",
    ),
    "label_sentence": ({"train.txt": "0\n1 \n"}, {}, r"is empty .* format= \(now 'label_sentence'"),
}


@pytest.mark.parametrize("case", sorted(ALL_EMPTY))
def test_all_empty_texts_are_an_error(case, tmp_path):
    files, options, message = ALL_EMPTY[case]
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(DataError, match=message):
        load_task(tmp_path, **options)


def test_some_empty_texts_are_a_visible_warning(tmp_path, caplog):
    path = write(tmp_path / "train.csv", "text,label\na,0\n  ,1\nc,1\n,0\n")
    with caplog.at_level(logging.WARNING, logger="neurolang.data"):
        data = load_task(path)
    assert data["train"]["text"] == ["a", "  ", "c", ""]  # kept, as before
    warnings = [r for r in caplog.records if r.name == "neurolang.data"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert re.search(
        r"2 of 4 texts of the train split .* are empty .*train\.csv', line 3",
        warnings[0].getMessage(),
    )


def test_no_warning_without_empty_texts(tmp_path, caplog):
    path = write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")
    with caplog.at_level(logging.WARNING, logger="neurolang.data"):
        load_task(path)
    assert not [r for r in caplog.records if r.name == "neurolang.data"]


# --------------------------------------------------------------------------------------------
# Empty, missing and unreadable files


def _train_dir(tmp_path: Path, name: str, text: str) -> Path:
    write(tmp_path / name, text)
    return tmp_path


BAD_FILES = {
    "empty_csv": (
        "train.csv",
        "",
        r"split 'train' of task '[^']+' has no rows: '.*train\.csv' "
        r"is empty",
    ),
    "blank_lines_only": ("train.tsv", "\n  \n\n", r"has no rows: '.*train\.tsv' is empty"),
    "empty_jsonl": ("train.jsonl", "", r"has no rows: '.*train\.jsonl' is empty"),
    "empty_label_sentence": ("train.txt", "", r"has no rows: '.*train\.txt' is empty"),
    "header_only": (
        "train.csv",
        "text,label\n",
        r"has no rows: '.*train\.csv' holds only a "
        r"header row \(text, label\)",
    ),
    "wrong_columns": (
        "train.csv",
        "sentence,label\na,0\nb,1\n",
        r"column 'text' not found in "
        r"'.*train\.csv'; columns present: 'sentence', 'label'\. Pass text_column=",
    ),
    "undecodable": ("train.csv", None, r"train\.csv' is not valid utf-8: byte 0xe9 on line 2"),
    "bad_json": (
        "train.jsonl",
        '{"text": "a", "label": 0}\n{"text": \n',
        r"line 2: not valid "
        "JSON",
    ),
    "jsonl_line_without_label": (
        "train.jsonl",
        '{"text": "a", "label": 0}\n{"text": "b"}\n',
        r"train\.jsonl', line 2: no 'label' field \(this line has 'text'\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file(case, tmp_path):
    name, text, message = BAD_FILES[case]
    if text is None:
        (tmp_path / name).write_bytes("text,label\ncaf\u00e9,0\n".encode("latin-1"))
    else:
        write(tmp_path / name, text)
    with pytest.raises(DataError, match=message):
        load_task(tmp_path)
    with pytest.raises(DataError, match=message):
        load_task(tmp_path / name)


OS_ERRORS = {
    "permission": (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    "io_error": (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    "is_a_directory": (IsADirectoryError(errno.EISDIR, "Is a directory"), "is a directory"),
}


@pytest.mark.parametrize("case", sorted(OS_ERRORS))
def test_unreadable_file(case, tmp_path, monkeypatch):
    # Tests run as root, who reads a chmod 000 file: make the read itself fail instead.
    error, message = OS_ERRORS[case]
    path = write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")

    def refuse(self):
        raise error

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError, match=r"'.*train\.csv'.*" + message):
        load_task(path)
    with pytest.raises(DataError, match=message):
        load_unlabelled(write(tmp_path / "texts.txt", "one\n"))


def test_unreadable_directory(tmp_path, monkeypatch):
    write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")

    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(DataError, match=f"cannot read {str(tmp_path)!r}: permission denied"):
        load_task(tmp_path)


def test_permission_error_message_is_exact(tmp_path, monkeypatch):
    path = write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")

    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError) as caught:
        load_task(path)
    assert str(caught.value) == f"cannot read {str(path)!r}: permission denied"


def test_a_directory_where_a_file_is_expected(tmp_path):
    (tmp_path / "sst2" / "stsa.binary.train").mkdir(parents=True)
    write(tmp_path / "sst2" / "stsa.binary.dev", "0 bad\n1 good\n")
    with pytest.raises(
        DataError,
        match=r"expected a file but '.*stsa\.binary\.train' is a "
        r"directory \(task 'sst2'\)",
    ):
        load_task("sst2", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"data file '.*stsa\.binary\.train' is a directory"):
        load_local_files({"train": tmp_path / "sst2" / "stsa.binary.train"})
    with pytest.raises(DataError, match=r"expected a file but .* is a directory"):
        data_files.read_text(tmp_path / "sst2", "utf-8")


def test_directory_without_a_train_file(tmp_path):
    write(tmp_path / "dev.csv", "text,label\na,0\n")
    with pytest.raises(DataError, match=r"has no train\.\* file \(it holds: dev\.csv\)"):
        load_task(tmp_path)


# --------------------------------------------------------------------------------------------
# Oversized fields


@pytest.fixture
def csv_limit():
    """Restore the csv module's (process-wide) field size limit after the test."""
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


LONG = "word " * 56_000  # 280 kB, over Python's default limit of 128 KiB


@pytest.mark.parametrize(
    "name,text",
    [
        ("train.tsv", f"text\tlabel\nshort\t0\n{LONG}\t1\n"),
        ("train.csv", f'text,label\nshort,0\n"{LONG},\n{LONG}",1\n'),
    ],
)
def test_a_field_over_the_default_csv_limit_loads(name, text, tmp_path, csv_limit):
    csv.field_size_limit(128 * 1024)  # Python's default, whatever ran before
    texts = load_task(write(tmp_path / name, text))["train"]["text"]
    assert texts[0] == "short" and len(texts[1]) >= len(LONG) >= 280_000


def test_a_remaining_csv_error_is_a_data_error_with_file_and_line(tmp_path, monkeypatch, csv_limit):
    monkeypatch.setattr(data_files, "CSV_FIELD_SIZE_LIMIT", 1000)
    csv.field_size_limit(1000)
    path = write(tmp_path / "train.csv", f"text,label\nshort,0\n{'x' * 2000},1\n")
    with pytest.raises(
        DataError,
        match=r"train\.csv', line 3: cannot be read as CSV \(field "
        r"larger than field limit \(1000\)\)",
    ):
        load_task(path)


# --------------------------------------------------------------------------------------------
# Unlabelled sources


@pytest.fixture
def task_dir(tmp_path) -> Path:
    folder = tmp_path / "mytask"
    write(folder / "train.tsv", "q\tp\tlabel\nfirst\tsecond\t0\n \tfourth\t1\nfifth\tsixth\t1\n")
    write(folder / "dev.tsv", "q\tp\tlabel\ndev one\tdev two\t0\n")
    return folder


def test_a_task_spec_is_an_unlabelled_source(task_dir):
    spec = resolve_task(task_dir, text_column="q", text_pair_column="p")
    texts = load_unlabelled(spec)["text"]
    assert texts == ["first", "fifth", "second", "fourth", "sixth"]  # empty text dropped
    both = load_unlabelled([spec], splits=("train", "validation"))["text"]
    assert both[-2:] == ["dev one", "dev two"]


def test_a_task_directory_or_data_file_is_an_unlabelled_source(tmp_path):
    folder = tmp_path / "own"
    write(folder / "train.csv", "text,label\ngood film,1\nbad film,0\n")
    write(folder / "dev.csv", "text,label\nfine,1\n")
    assert load_unlabelled(folder)["text"] == ["good film", "bad film"]
    assert load_unlabelled(str(folder / "train.csv"))["text"] == ["good film", "bad film"]
    jsonl = write(tmp_path / "data.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    assert load_unlabelled([jsonl])["text"] == ["a", "b"]


def test_a_text_file_keeps_meaning_one_text_per_line(tmp_path):
    txt = write(tmp_path / "corpus.txt", "1 a line that looks labelled\n\nanother\n")
    assert load_unlabelled(txt)["text"] == ["1 a line that looks labelled", "another"]
    plain = write(tmp_path / "corpus", "x\ny\n")
    assert load_unlabelled(plain)["text"] == ["x", "y"]


def test_a_named_task_is_still_an_unlabelled_source(tiny_data_dir):
    assert len(load_unlabelled(["sst2"], data_dir=tiny_data_dir)) == 96


def test_a_bad_task_source_fails_with_the_task_error(tmp_path):
    folder = tmp_path / "own"
    write(folder / "train.csv", "sentence,label\na,0\nb,1\n")
    with pytest.raises(DataError, match="column 'text' not found"):
        load_unlabelled(folder)


BAD_SOURCES = {
    "unknown_name": ("bookcorpus", r"unknown unlabelled text source 'bookcorpus'"),
    "missing_text_file": ("{tmp}/nope.txt", r"unlabelled text source not found: .*nope\.txt"),
    "missing_data_file": ("{tmp}/nope.tsv", r"not found: .*nope\.tsv"),
    "missing_corpus": ("wikitext2", r"file not found: '.*wikitext2/valid\.txt'"),
    "task_missing_files": ("sst2", r"file not found: '.*sst2/stsa\.binary\.train'"),
    "directory_without_train": ("{tmp}/empty_dir", r"has no train\.\* file"),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_validate_unlabelled_sources_rejects(case, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    source, message = BAD_SOURCES[case]
    source = source.format(tmp=tmp_path)
    with pytest.raises(DataError, match=message):
        validate_unlabelled_sources([source], data_dir=tmp_path / "empty_dir")
    with pytest.raises(DataError, match=message):
        load_unlabelled([source], data_dir=tmp_path / "empty_dir")


def test_validate_unlabelled_sources_accepts_every_kind_without_reading(
    task_dir, tmp_path, monkeypatch
):
    data_dir = tmp_path / "data"
    for name in ("wikitext2/valid.txt", "wikitext2/test.txt", "tinyshakespeare/input.txt"):
        write(data_dir / name, "= Heading =\ntext\n")
    write(data_dir / "sst2" / "stsa.binary.train", "0 bad\n1 good\n")
    write(data_dir / "sst2" / "stsa.binary.dev", "0 bad\n1 good\n")
    txt = write(tmp_path / "corpus.txt", "x\n")
    spec = resolve_task(task_dir, text_column="q", text_pair_column="p")

    def no_reading(self):
        raise AssertionError(f"read {self}")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    sources = ["wikitext2", "tinyshakespeare", "sst2", spec, task_dir, task_dir / "train.tsv", txt]
    assert validate_unlabelled_sources(sources, data_dir=data_dir) is None
    with pytest.raises(DataError, match="no unlabelled text source given"):
        validate_unlabelled_sources([])


def test_validate_rejects_a_task_spec_whose_files_are_gone(task_dir):
    spec = resolve_task(task_dir, text_column="q", text_pair_column="p")
    (task_dir / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"file not found: '.*mytask/dev\.tsv' \(task '[^']+'\)"):
        validate_unlabelled_sources(spec)
