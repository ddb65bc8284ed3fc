"""Stage 2's data augmentation (Tang et al. 2019): the rules by hand on fixed seeds, the
embedding-space neighbours, the configuration, and a short stage-2 run with it."""

import json
import logging
import random

import numpy as np
import pytest

from neurolang.config import ConfigError, parse_override
from neurolang.data.augment import (
    augment_sentence,
    augment_texts,
    embedding_neighbours,
    join_words,
    split_words,
    teacher_labels,
    text_words,
)
from neurolang.distill.config import load_train_config, train_config_from_dict

MASK = "[MASK]"
RULES = dict(p_mask=0.1, p_replace=0.1, p_ngram=0.25, max_ngram=5, mask_token=MASK)


def _sentence(n, prefix="w"):
    return " ".join(f"{prefix}{i}" for i in range(n))


# ---- the rules ----------------------------------------------------------------------------


def test_mask_and_replacement_rates_and_exclusive():
    rng = random.Random(0)
    neighbours = {f"w{i}": ["SWAP"] for i in range(50)}
    counts = {"mask": 0, "swap": 0, "kept": 0}
    for _ in range(300):
        copy = augment_sentence(_sentence(50), p_mask=0.1, p_replace=0.1, p_ngram=0.0,
                                max_ngram=5, mask_token=MASK, neighbours=neighbours, rng=rng)
        words = copy.split()
        assert len(words) == 50  # no n-gram sampling: one word for one word
        for i, word in enumerate(words):
            key = "mask" if word == MASK else "swap" if word == "SWAP" else "kept"
            assert key != "kept" or word == f"w{i}"
            counts[key] += 1
    total = sum(counts.values())
    assert abs(counts["mask"] / total - 0.1) < 0.015
    assert abs(counts["swap"] / total - 0.1) < 0.015
    # a word without neighbours is never replaced, only masked
    copy = augment_sentence(_sentence(200, "x"), p_mask=0.0, p_replace=1.0, p_ngram=0.0,
                            max_ngram=5, mask_token=MASK, neighbours=neighbours,
                            rng=random.Random(1))
    assert copy == _sentence(200, "x")


def test_all_probabilities_zero_give_no_copies():
    texts = ["a fine movie", "another  one  with   spaces", "我爱北京"]
    rows = augment_texts(texts, copies=20, p_mask=0, p_replace=0, p_ngram=0, max_ngram=5,
                         mask_token=MASK, neighbours={"fine": ["good"]}, seed=0)
    assert rows == []
    assert augment_texts(texts, copies=0, mask_token=MASK) == []
    assert augment_texts(["", "   "], copies=5, mask_token=MASK) == []


def test_ngram_lengths_are_contiguous_and_within_max():
    text = _sentence(30)
    words = text.split()
    lengths = set()
    for seed in range(200):
        copy = augment_sentence(text, p_mask=0, p_replace=0, p_ngram=1.0, max_ngram=5,
                                mask_token=MASK, neighbours={}, rng=random.Random(seed))
        got = copy.split()
        assert 1 <= len(got) <= 5
        start = words.index(got[0])
        assert got == words[start : start + len(got)]
        lengths.add(len(got))
    assert lengths == {1, 2, 3, 4, 5}
    # a sentence shorter than n is kept whole
    short = augment_sentence("one two", p_mask=0, p_replace=0, p_ngram=1.0, max_ngram=1,
                             mask_token=MASK, neighbours={}, rng=random.Random(0))
    assert short in ("one", "two")


def test_copies_are_seeded_distinct_and_independent_of_other_rows():
    texts = [_sentence(12), "a short one", _sentence(8, "v")]
    a = augment_texts(texts, copies=20, seed=3, **{k: v for k, v in RULES.items()})
    assert a == augment_texts(texts, copies=20, seed=3, **RULES)
    assert a != augment_texts(texts, copies=20, seed=4, **RULES)
    assert [r for r, _ in a] == sorted(r for r, _ in a)
    for row, text in enumerate(texts):
        mine = [t for r, t in a if r == row]
        assert 0 < len(mine) <= 20 and len(set(mine)) == len(mine) and text not in mine
    # changing another row does not change row 0's copies
    other = augment_texts([texts[0], "something else entirely", texts[2]], copies=20, seed=3,
                          **RULES)
    assert [t for r, t in other if r == 0] == [t for r, t in a if r == 0]
    assert [t for r, t in other if r == 2] == [t for r, t in a if r == 2]


def test_cjk_sentences_are_split_per_character():
    words, cjk = split_words("我爱北京天安门，NLP 很好。")
    assert cjk and words == ["我", "爱", "北", "京", "天", "安", "门", "，", "NLP", "很", "好",
                             "。"]
    assert join_words(words, cjk) == "我爱北京天安门，NLP很好。"
    assert join_words(["我", "[MASK]", "NLP", "deep", "好"], True) == "我[MASK] NLP deep好"
    # mostly Latin with a CJK name: whitespace words
    assert split_words("I visited 北京 last year") == (
        ["I", "visited", "北京", "last", "year"], False)
    assert split_words("これはペンです")[1]  # kana count as CJK
    rows = augment_texts(["我爱北京天安门"], copies=30, p_mask=0.3, p_replace=0, p_ngram=0,
                         max_ngram=5, mask_token=MASK, seed=0)
    assert rows
    for _, text in rows:
        # every character is masked or kept on its own: 7 units, in order (two masks in a
        # row are non-CJK words: a space between them)
        units = text.replace(MASK, "M").replace(" ", "")
        assert len(units) == 7
        assert all(u == "M" or u == c for u, c in zip(units, "我爱北京天安门", strict=True))
    assert text_words(["我爱", "a b"]) == {"我", "爱", "a", "b"}


# ---- neighbours from the embedding space ----------------------------------------------------


@pytest.fixture()
def tiny_wordpiece(tmp_path):
    """An uncased WordPiece tokenizer over a known vocabulary and its embedding matrix:
    good ~ great, bad ~ awful, movie ~ film; '##s', ',', '[MASK]', '[unused0]' lie next to
    'good' and must never be chosen."""
    transformers = pytest.importorskip("transformers")
    vectors = {
        "[PAD]": [0, 0, 1], "[UNK]": [0, 0, -1], "[CLS]": [0, -1, 0.1], "[SEP]": [0, -1, -0.1],
        "[MASK]": [1, 0, 0], "[unused0]": [1, 0.001, 0], "##s": [1, 0.002, 0],
        ",": [1, 0.003, 0],
        "good": [1, 0, 0], "great": [0.9, 0.1, 0], "bad": [-1, 0, 0], "awful": [-0.9, -0.1, 0],
        "movie": [0, 1, 0], "film": [0, 0.95, 0.05], "plot": [0.2, 0.8, 0],
    }
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(vectors) + "\n")
    tokenizer = transformers.BertTokenizerFast(str(vocab), do_lower_case=True)
    return tokenizer, np.array(list(vectors.values()), dtype=np.float32)


def test_neighbours_are_nearest_whole_words_in_the_embedding_space(tiny_wordpiece):
    tokenizer, matrix = tiny_wordpiece
    table = embedding_neighbours(tokenizer, matrix, 1, ["good", "bad", "movie", "Film"])
    assert table == {"good": ["great"], "bad": ["awful"], "movie": ["film"], "Film": ["movie"]}
    two = embedding_neighbours(tokenizer, matrix, 2, ["movie"])
    assert two == {"movie": ["film", "plot"]}
    # not one whole-word entry: "goods" is good ##s, "zebra" [UNK], "," no letter: left out
    assert embedding_neighbours(tokenizer, matrix, 3, ["goods", "zebra", ","]) == {}
    everything = embedding_neighbours(tokenizer, matrix, 20)
    assert set(everything) == {"good", "great", "bad", "awful", "movie", "film", "plot"}
    assert all(len(v) == 6 for v in everything.values())  # k capped, never itself
    for banned in ("##s", ",", "[MASK]", "[unused0]", "[PAD]"):
        assert all(banned not in v for v in everything.values())
    # the torch tensor form of the matrix gives the same table
    torch = pytest.importorskip("torch")
    assert embedding_neighbours(tokenizer, torch.from_numpy(matrix), 20) == everything
    rows = augment_texts(["good movie"], copies=20, p_mask=0, p_replace=1.0, p_ngram=0,
                         max_ngram=5, mask_token=MASK, neighbours=table, seed=0)
    assert [t for _, t in rows] == ["great film"]


class _SentencePieceVocab:
    """A tokenizer with only a vocabulary (no ``tokenize``): SentencePiece pieces."""

    all_special_tokens = ["<s>", "</s>", "<mask>"]

    def get_vocab(self):
        return {"<s>": 0, "</s>": 1, "<mask>": 2, "▁good": 3, "▁great": 4, "ood": 5,
                "▁bad": 6, "▁": 7}


def test_sentencepiece_vocabulary_uses_only_word_starting_pieces():
    matrix = np.array([[1, 0]] * 3 + [[1, 0], [0.9, 0.1], [1, 0.01], [-1, 0], [1, 0]],
                      dtype=np.float32)
    table = embedding_neighbours(_SentencePieceVocab(), matrix, 1, ["good", "ood", "bad"])
    assert table == {"good": ["great"], "bad": ["great"]}


# ---- configuration --------------------------------------------------------------------------


def test_augment_config_defaults_and_overrides():
    default = load_train_config(None).data.augment
    assert (default.copies, default.p_mask, default.p_replace, default.p_ngram,
            default.max_ngram, default.neighbours, default.seed) == (0, 0.1, 0.1, 0.25, 5, 15, 0)
    config = load_train_config(None, dict([parse_override("data.augment.copies=2"),
                                           parse_override("data.augment.p_ngram=0.5")]))
    assert config.data.augment.copies == 2 and config.data.augment.p_ngram == 0.5
    table = train_config_from_dict({"data": {"augment": {"copies": 20, "seed": 7}}})
    assert table.data.augment.copies == 20 and table.data.augment.seed == 7
    assert table.to_dict()["data"]["augment"]["copies"] == 20
    again = train_config_from_dict({k: v for k, v in table.to_dict().items() if k != "model"})
    assert again.data.augment == table.data.augment


@pytest.mark.parametrize("override, message", [
    ("data.augment.copies=-1", "[data.augment] copies must be an integer >= 0, got -1"),
    ("data.augment.copies=2.5", "[data.augment] copies must be an integer >= 0"),
    ("data.augment.p_mask=1.5", "[data.augment] p_mask must be a finite number in [0, 1]"),
    ("data.augment.p_replace=x", "[data.augment] p_replace must be a number, got 'x'"),
    ("data.augment.p_ngram=-0.1", "[data.augment] p_ngram must be a finite number in [0, 1]"),
    ("data.augment.max_ngram=0", "[data.augment] max_ngram must be a positive integer"),
    ("data.augment.neighbours=true", "[data.augment] neighbours must be a positive integer"),
    ("data.augment.seed=-3", "[data.augment] seed must be an integer >= 0"),
    ("data.augment.colour=1", "unknown option(s) ['colour'] in [data.augment]"),
    ("data.augment=3", "[data.augment] must be a table of options, got 3"),
])
def test_bad_augment_values_are_one_clear_error(override, message):
    with pytest.raises(ConfigError) as err:
        load_train_config(None, dict([parse_override(override)]))
    assert message in str(err.value)


def test_mask_and_replace_probabilities_must_fit_one_draw():
    with pytest.raises(ConfigError, match=r"\[data.augment\] p_mask \+ p_replace must be <= 1"):
        load_train_config(None, {"data.augment.p_mask": 0.6, "data.augment.p_replace": 0.5})


# ---- with the teacher -------------------------------------------------------------------


def _config(tiny_teacher, tiny_data_dir, **augment):
    table = {
        "model": {"preset": "tiny", "max_length": 32, "depth": 2, "time_steps": 2},
        "teacher": {"name": str(tiny_teacher), "finetuned": str(tiny_teacher)},
        "data": {"task": "sst2", "data_dir": str(tiny_data_dir), "max_length": 32,
                 "augment": augment},
        "distill": {"epochs": 0.5, "batch_size": 16},
        "run": {"threads": 1, "device": "cpu"},
    }
    return train_config_from_dict(table)


def test_pair_rows_augment_the_first_text_and_copy_the_second(tiny_teacher, tiny_data_dir):
    import datasets
    import torch

    from neurolang.data.load import dataset_features
    from neurolang.distill.stages import _augmented_train
    from neurolang.teachers import load_teacher

    teacher = load_teacher(tiny_teacher, task_head=True)
    features = dataset_features(True, ["no", "yes"])
    first = ["the cat sat on the mat all day", "a dog ran fast across the wide field"]
    second = ["a cat is sitting", "the dog is slow"]
    split = datasets.Dataset.from_dict({"text": first, "text_pair": second, "label": [0, 1]},
                                       features=features)
    raw = datasets.DatasetDict({"train": split, "validation": split})
    config = _config(tiny_teacher, tiny_data_dir, copies=4, p_mask=0.3)
    out = _augmented_train(raw, teacher, config, "cpu")
    train = out["train"]
    assert train.features == features and out["validation"] is split
    assert len(train) > 2 and train[:2] == split[:]
    for row in train.select(range(2, len(train))):
        source = first.index(row["text"]) if row["text"] in first else None
        assert source is None  # a copy differs from every original
        assert row["text_pair"] in second
        assert row["text"] != first[second.index(row["text_pair"])]
    # the labels are the teacher's argmax, row by row (no padding) as a check of the batches
    for row in train.select(range(2, len(train))):
        encoded = teacher.tokenizer(row["text"], row["text_pair"], truncation=True,
                                    max_length=32, return_tensors="pt")
        with torch.no_grad():
            logits = teacher(encoded["input_ids"], encoded["attention_mask"],
                             encoded["token_type_ids"]).logits
        assert row["label"] == int(logits.argmax(-1))
    assert teacher_labels(teacher, [], None, 32) == []
    # off: unchanged
    assert _augmented_train(raw, teacher, _config(tiny_teacher, tiny_data_dir), "cpu") is raw


def test_stage2_trains_on_teacher_labelled_copies(tmp_path, tiny_teacher, tiny_data_dir,
                                                  caplog):
    import datasets

    from neurolang.distill.stages import distill

    config = _config(tiny_teacher, tiny_data_dir, copies=2)
    output = tmp_path / "run" / "distill"
    with caplog.at_level(logging.INFO, logger="neurolang.train"):
        results = distill(config, output, str(tiny_teacher), stage1=None)
    assert results["stage"] == "distill"
    rows = results["train_rows"]
    assert rows["task"] == 96 and rows["transfer"] == 0 and 0 < rows["augmented"] <= 2 * 96
    added = [r for r in caplog.records if "augmented rows added" in r.getMessage()]
    assert len(added) == 1 and "to the 96 train rows" in added[0].getMessage()
    cache_dir = output.parent / ".cache"
    (train_file,) = cache_dir.glob("tokenized-train-*.arrow")
    (val_file,) = cache_dir.glob("tokenized-validation-*.arrow")
    train = datasets.Dataset.from_file(str(train_file))
    assert 96 < len(train) <= 96 * 3  # the 96 rows of the fixture and up to 2 copies each
    assert len(datasets.Dataset.from_file(str(val_file))) == 48  # validation untouched
    assert train["index"] == list(range(len(train)))
    (meta,) = (cache_dir / "teacher").glob("*/meta.json")
    assert json.loads(meta.read_text())["rows"] == len(train)  # the cache covers the copies
    logits = np.load(meta.parent / "logits.npy")
    labels = np.asarray(train["label"])
    assert (labels[96:] == logits[96:].argmax(-1)).all()


# ---- the transfer set: more text, labelled by the teacher ----------------------------------


def test_transfer_set_adds_teacher_labelled_texts_never_dev_or_train(tmp_path, tiny_teacher,
                                                                   tiny_data_dir):
    import datasets
    import torch

    from neurolang.config import ConfigError
    from neurolang.data import load_task
    from neurolang.data.load import dataset_features
    from neurolang.distill.stages import _transfer_train
    from neurolang.teachers import load_teacher

    teacher = load_teacher(tiny_teacher, task_head=True)
    raw = load_task("sst2", data_dir=tiny_data_dir)
    dev, train = raw["validation"]["text"], raw["train"]["text"]
    new = ["a quietly moving film", "the plot goes nowhere", "sharp , funny and warm",
           "too long by half", "an actor at the top of his game"]
    lines = [*new, new[0], dev[3], "  " + train[5].upper() + " "]
    source = tmp_path / "phrases.txt"
    source.write_text("\n".join(lines) + "\n")

    def config(**data):
        table = {"model": {"preset": "tiny", "max_length": 32, "depth": 2, "time_steps": 2},
                 "teacher": {"name": str(tiny_teacher), "finetuned": str(tiny_teacher)},
                 "data": {"task": "sst2", "data_dir": str(tiny_data_dir), "max_length": 32,
                          **data},
                 "run": {"threads": 1, "device": "cpu"}}
        return train_config_from_dict(table)

    out = _transfer_train(dict(raw), teacher, config(transfer=[str(source)]), "cpu")
    added = out["train"].select(range(len(train), len(out["train"])))
    assert out["train"][: len(train)] == raw["train"][:]  # the train split comes first, whole
    assert sorted(added["text"]) == sorted(new)  # the dev sentence, the train one, the repeat
    for row in added:
        encoded = teacher.tokenizer(row["text"], return_tensors="pt")
        with torch.no_grad():
            logits = teacher(encoded["input_ids"], encoded["attention_mask"],
                             encoded["token_type_ids"]).logits
        assert row["label"] == int(logits.argmax(-1))
    capped = _transfer_train(dict(raw), teacher, config(transfer=[str(source)],
                                                        max_transfer_samples=2), "cpu")
    assert len(capped["train"]) == len(train) + 2
    assert _transfer_train(raw, teacher, config(), "cpu") is raw  # off: unchanged
    pairs = datasets.Dataset.from_dict(
        {"text": ["a b"], "text_pair": ["c d"], "label": [0]},
        features=dataset_features(True, ["no", "yes"]))
    with pytest.raises(ConfigError, match="single texts"):
        _transfer_train({"train": pairs}, teacher, config(transfer=[str(source)]), "cpu")
    with pytest.raises(ConfigError, match="max_transfer_samples"):
        config(transfer=["glue_sst2"], max_transfer_samples=0)
