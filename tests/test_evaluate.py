"""``neurolang evaluate`` on a task's split or on a labelled file of the user's (the format
options of training files), scored with the task's classes and metrics."""

import json

import pytest
from test_bad_input import assert_clean_error, invoke

from neurolang.data import load_task


def _score(args):
    result, text = invoke(["evaluate", *args])
    assert result.exit_code == 0, text
    return json.loads(result.output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def dev_rows(tiny_data_dir):
    return load_task("sst2", data_dir=tiny_data_dir)["validation"]


def test_a_labelled_file_scores_like_the_split_it_holds(tmp_path, model_dir, tiny_data_dir,
                                                        dev_rows):
    split = _score([model_dir, "--data-dir", tiny_data_dir])
    assert split["rows"] == len(dev_rows) == 48 and split["source"] == "sst2:validation"
    # the same rows in SST-2's own 'LABEL SENTENCE' format, as a TSV with class names in
    # other columns, and headerless by column index
    plain = tmp_path / "test.txt"
    plain.write_text("".join(f"{r['label']} {r['text']}\n" for r in dev_rows))
    names = ("negative", "positive")
    tsv = tmp_path / "test.tsv"
    tsv.write_text("id\tsentiment\tsentence\n" + "".join(
        f"{i}\t{names[r['label']]}\t{r['text']}\n" for i, r in enumerate(dev_rows)))
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(f"{r['label']},\"{r['text']}\"\n" for r in dev_rows))
    runs = [
        _score([model_dir, "--data-dir", tiny_data_dir, "--file", plain]),
        _score([model_dir, "--data-dir", tiny_data_dir, "--file", tsv, "--text-column",
                "sentence", "--label-column", "sentiment"]),
        _score([model_dir, "--data-dir", tiny_data_dir, "--file", bare, "--no-header",
                "--text-column", "1", "--label-column", "0", "--json", tmp_path / "m.json"]),
    ]
    for run in runs:
        assert {k: v for k, v in run.items() if k != "source"} == {
            k: v for k, v in split.items() if k != "source"}
    assert json.loads((tmp_path / "m.json").read_text()) == runs[-1]
    flipped = tmp_path / "flipped.txt"  # every label the other way round: accuracy 1 - a
    flipped.write_text("".join(f"{1 - r['label']} {r['text']}\n" for r in dev_rows))
    other = _score([model_dir, "--data-dir", tiny_data_dir, "--file", flipped])
    assert other["accuracy"] == pytest.approx(1 - split["accuracy"])
    one_class = tmp_path / "one.txt"  # a scored file may hold one class
    one_class.write_text("".join(f"1 {r['text']}\n" for r in dev_rows if r["label"] == 1))
    assert _score([model_dir, "--data-dir", tiny_data_dir, "--file", one_class])["rows"] > 0


def test_the_train_split(model_dir, tiny_data_dir):
    run = _score([model_dir, "--data-dir", tiny_data_dir, "--split", "train"])
    assert run["rows"] == 96 and run["source"] == "sst2:train"


def test_bad_evaluation_requests(tmp_path, model_dir, tiny_data_dir):
    base = [model_dir, "--data-dir", tiny_data_dir]
    result, text = invoke(["evaluate", *base, "--split", "test"])
    assert_clean_error(result, text, "--split", "--file")
    good = tmp_path / "good.txt"
    good.write_text("1 a fine film\n0 a dull one\n")
    result, text = invoke(["evaluate", *base, "--split", "train", "--file", good])
    assert_clean_error(result, text, "not both")
    result, text = invoke(["evaluate", *base, "--file", tmp_path / "missing.tsv"])
    assert_clean_error(result, text, "missing.tsv")
    result, text = invoke(["evaluate", *base, "--file", good, "--no-header",
                           "--text-column", "text"])
    assert_clean_error(result, text, "--text-column", "index")
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("text\tlabel\na fine film\tgreat\n")
    result, text = invoke(["evaluate", *base, "--file", unknown])
    assert_clean_error(result, text, "great")
    result, text = invoke(["evaluate", *base, "--file", good, "--json", tmp_path])
    assert_clean_error(result, text, "--json", "folder")
