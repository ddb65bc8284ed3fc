"""Every option of every configuration is checked where it is parsed: one ConfigError (a
ValueError) naming the option, never a traceback later. Values are given as the command
line's ``parse_override`` gives them (JSON, else the text)."""

import math
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from neurolang.cli import app
from neurolang.config import (
    ConfigError,
    SpikformerConfig,
    load_model_config,
    parse_override,
    preset,
)
from neurolang.distill.config import load_train_config
from neurolang.neurons import NeuronSpec
from neurolang.trainer import OptimConfig
from neurolang.validation import check_int, check_number, check_str_list

EXAMPLES = sorted(Path(__file__).resolve().parents[1].glob("examples/*.toml"))
TRAIN_SECTIONS = {"model", "teacher", "data", "predistill", "distill", "run"}


def _overrides(*texts: str) -> dict:
    return dict(parse_override(text) for text in texts)


def _error(overrides: dict) -> str:
    with pytest.raises(ConfigError) as err:
        load_train_config(None, overrides)
    return str(err.value)


# ---- one test per root cause ----------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.attention_scale=abc", "attention_scale must be a number, got 'abc'"),
        ("model.initializer_range=true", "initializer_range must be a number, got True"),
        ("model.position_embedding=1", "position_embedding must be true or false, got 1"),
        ("model.padding_mask=yes", "padding_mask must be true or false, got 'yes'"),
        ("model.representation_taps=0", "representation_taps must be true or false"),
        ("model.depth=zero", "depth must be a positive integer, got 'zero'"),
        ("model.depth=2.5", "depth must be a positive integer, got 2.5"),
        ("model.hidden_size=true", "hidden_size must be a positive integer, got True"),
        ("model.neuron.tau=abc", "neuron: tau must be a number, got 'abc'"),
        ("model.neuron.beta=true", "neuron: beta must be a number, got True"),
        ("model.attention_neuron.decay_input=1", "attention_neuron: decay_input must be true"),
        ("model.neuron.detach_reset=no", "neuron: detach_reset must be true or false"),
        ("model.neuron.learn_alpha=0", "neuron: learn_alpha must be true or false"),
        ("distill.lr=abc", "[distill] lr must be a number, got 'abc'"),
        ("distill.w_ce=[1]", "[distill] w_ce must be a number"),
        ("distill.icsfd.enabled=1", "[distill.icsfd] enabled must be true or false, got 1"),
        ("distill.icsfd.weight=x", "[distill.icsfd] weight must be a number"),
        ("predistill.enabled=yes", "[predistill] enabled must be true or false"),
        ("predistill.epochs=one", "[predistill] epochs must be a number"),
        ("teacher.lr=abc", "[teacher] lr must be a number, got 'abc'"),
        ("teacher.epochs=1.5", "[teacher] epochs must be a positive integer, got 1.5"),
        ("teacher.name=3", "[teacher] name must be a non-empty string, got 3"),
        ("teacher.select_metric=3", "[teacher] select_metric must be a string, got 3"),
        ("data.max_train_samples=all", "[data] max_train_samples must be an integer >= 0"),
        ("data.task=3", "[data] task must be a non-empty string, got 3"),
        ("run.backend=3", "[run] backend must be a non-empty string, got 3"),
        ("run.seed=false", "[run] seed must be an integer >= 0, got False"),
        ("run.threads=two", "[run] threads must be an integer >= 0, got 'two'"),
    ],
)
def test_a_wrong_type_names_the_option(override, message):
    assert message in _error(_overrides(override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.max_length=1", "max_length must be an integer >= 2, got 1"),
        ("model.vocab_size=1", "vocab_size must be an integer >= 2, got 1"),
        ("model.depth=0", "depth must be a positive integer, got 0"),
        ("model.attention_scale=0", "attention_scale must be a finite number > 0, got 0"),
        ("model.norm_eps=-1e-5", "norm_eps must be a finite number >= 0"),
        ("model.initializer_range=NaN", "initializer_range must be a finite number >= 0, got nan"),
        ("model.neuron.v_threshold=NaN", "neuron: v_threshold must be a finite number > 0, got nan"),
        ("model.neuron.surrogate_alpha=-1", "neuron: surrogate_alpha must be a finite number > 0"),
        ("model.neuron.tau=Infinity", "neuron: tau must be a finite number >= 1, got inf"),
        ("model.neuron.tau=0.5", "neuron: tau must be a finite number >= 1, got 0.5"),
        ("model.neuron.tau=1e300", "neuron: tau=1e+300 is too large"),
        ("model.neuron.beta=1", "neuron: beta must be a finite number in [0, 1), got 1"),
        ("distill.save_every_steps=0", "[distill] save_every_steps must be a positive integer"),
        ("distill.temperature=0", "[distill] temperature must be a finite number > 0, got 0"),
        ("distill.epochs=0", "[distill] epochs must be a finite number > 0"),
        ("distill.lr=-1", "[distill] lr must be a finite number > 0"),
        ("distill.weight_decay=-0.1", "[distill] weight_decay must be a finite number >= 0"),
        ("distill.warmup_ratio=1", "[distill] warmup_ratio must be a finite number in [0, 1)"),
        ("distill.grad_clip=Infinity", "[distill] grad_clip must be a finite number >= 0"),
        ("distill.eval_batch_size=0", "[distill] eval_batch_size must be a positive integer"),
        ("distill.batch_size=0", "[distill] batch_size must be a positive integer"),
        ("distill.seed=-1", "[distill] seed must be an integer >= 0, got -1"),
        ("distill.w_rep=-1", "[distill] w_rep must be a finite number >= 0"),
        ("distill.ignore_layers=-1", "[distill] ignore_layers must be an integer >= 0"),
        ("distill.icsfd.k=0", "[distill.icsfd] k must be a positive integer, got 0"),
        ("distill.icsfd.weight=-1", "[distill.icsfd] weight must be a finite number >= 0"),
        ("predistill.save_every_steps=0", "[predistill] save_every_steps must be a positive"),
        ("predistill.rep_weight=-1", "[predistill] w_rep must be a finite number >= 0"),
        ("predistill.w_emb=NaN", "[predistill] w_emb must be a finite number >= 0"),
        ("predistill.ignore_layers=-2", "[predistill] ignore_layers must be an integer >= 0"),
        ("teacher.epochs=0", "[teacher] epochs must be a positive integer, got 0"),
        ("teacher.lr=0", "[teacher] lr must be a finite number > 0, got 0"),
        ("teacher.batch_size=0", "[teacher] batch_size must be a positive integer"),
        ("teacher.max_length=1", "[teacher] max_length must be an integer >= 2, got 1"),
        ("data.max_length=1", "[data] max_length must be an integer >= 2, got 1"),
        ("data.max_unlabelled_samples=0", "[data] max_unlabelled_samples must be a positive"),
        ("data.max_train_samples=-1", "[data] max_train_samples must be an integer >= 0"),
        ("run.threads=-1", "[run] threads must be an integer >= 0, got -1"),
        ("run.seed=-1", "[run] seed must be an integer >= 0, got -1"),
    ],
)
def test_a_value_out_of_range_names_the_option(override, message):
    assert message in _error(_overrides(override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.device=tpu", "[run] device must be one of cpu, cuda, auto, got 'tpu'"),
        ("run.device=cuda:x", "[run] device must be one of cpu, cuda, auto, got 'cuda:x'"),
        ("run.init_embeddings=bogus", "[run] init_embeddings must be one of teacher, random"),
        ("run.init_blocks=bert", "[run] init_blocks must be one of teacher, random"),
        ("distill.mixed_precision=fp8", "[distill] mixed_precision must be one of no, bf16, fp16"),
        ("predistill.schedule=step", "[predistill] schedule must be one of cosine, linear"),
        ("model.encoding=rate", "encoding must be one of repeat, heaviside, got 'rate'"),
        ("model.block=bert", "block must be one of spikformer, spikelm, spike_driven, got 'bert'"),
        ("model.neuron.kind=izhikevich", "neuron: kind must be one of"),
        ("model.neuron.reset=soft", "neuron: reset must be one of zero, subtract, got 'soft'"),
        ("model.neuron.surrogate=relu", "neuron: surrogate must be one of"),
        ("model.neuron.threshold_comparison=<", "neuron: threshold_comparison must be one of"),
        ("model.preset=huge", "unknown preset 'huge'"),
    ],
)
def test_a_bad_choice_names_the_option(override, message):
    assert message in _error(_overrides(override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("distill=3", "[distill] must be a table of options, got 3"),
        ("predistill=[1]", "[predistill] must be a table of options, got [1]"),
        ("run=cpu", "[run] must be a table of options, got 'cpu'"),
        ("distill.icsfd=3", "[distill.icsfd] must be a table of options, got 3"),
        ("model=3", "[model] must be a table of options, got 3"),
        ("model.neuron=3", "neuron must be a NeuronSpec or a table, got 3"),
    ],
)
def test_a_scalar_for_a_table_names_the_section(override, message, tmp_path):
    assert message in _error(_overrides(override))
    # the same in a file
    key, value = parse_override(override)
    head, _, tail = key.rpartition(".")
    lines = [f"[{head}]"] if head else []
    lines.append(f"{tail} = {value!r}".replace("'", '"'))
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # a valid TOML file
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.unlabelled=wikitext2", ["wikitext2"]),
        ("data.unlabelled=wikitext2,task", ["wikitext2", "task"]),
        ("data.unlabelled=tinyshakespeare, task", ["tinyshakespeare", "task"]),
        ('data.unlabelled=["task"]', ["task"]),
        ("data.unlabelled=[]", []),
        ("data.unlabelled=", None),
        ("data.unlabelled=wikitext2,,task", None),
        ("data.unlabelled=3", None),
        ('data.unlabelled=["task", 3]', None),
        ('data.unlabelled=["  "]', None),
    ],
)
def test_a_string_for_a_list_is_one_item_or_comma_separated(override, expected):
    if expected is None:
        assert "[data] unlabelled must be a list of non-empty strings" in _error(
            _overrides(override))
    else:
        assert load_train_config(None, _overrides(override)).data.unlabelled == expected


# ---- the checks in the dataclasses themselves ------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"v_threshold": math.nan}, "v_threshold must be a finite number > 0, got nan"),
        ({"surrogate_alpha": -1}, "surrogate_alpha must be a finite number > 0, got -1"),
        ({"tau": math.inf}, "tau must be a finite number >= 1, got inf"),
        ({"tau": "abc"}, "tau must be a number, got 'abc'"),
        ({"tau": None, "beta": math.nan}, "beta must be a finite number in [0, 1), got nan"),
        ({"decay_input": "yes"}, "decay_input must be true or false, got 'yes'"),
        ({"tau": None, "beta": None}, "a neuron needs tau or beta"),
    ],
)
def test_neuron_spec_raises_value_errors_naming_the_option(options, message):
    with pytest.raises(ValueError) as err:
        NeuronSpec(**options)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"save_every_steps": 0}, "save_every_steps must be a positive integer, got 0"),
        ({"grad_accum": 0}, "grad_accum must be a positive integer, got 0"),
        ({"lr": "abc"}, "lr must be a number, got 'abc'"),
        ({"mixed_precision": "yes"}, "mixed_precision must be one of no, bf16, fp16"),
    ],
)
def test_optim_config_raises_value_errors_naming_the_option(options, message):
    with pytest.raises(ValueError) as err:
        OptimConfig(**options)
    assert message in str(err.value)


def test_the_checks_themselves():
    assert check_int("[x]", "n", 2.0, at_least=1) == 2 and type(check_int("", "n", 2.0)) is int
    for bad in (True, 2.5, math.inf, "2", None):
        with pytest.raises(ConfigError, match=r"\[x\] n must be"):
            check_int("[x]", "n", bad)
    assert check_number("", "lr", 1, greater_than=0) == 1  # an int is a number, kept as given
    with pytest.raises(ConfigError, match=r"r must be a finite number in \(0, 1\], got 0"):
        check_number("", "r", 0, greater_than=0, at_most=1)
    with pytest.raises(ConfigError, match=r"r must be a finite number < 1, got 2"):
        check_number("", "r", 2, less_than=1)
    assert check_str_list("", "s", ("a", "b")) == ["a", "b"]
    assert issubclass(ConfigError, ValueError)


# ---- valid configurations are read as before ------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_configs_still_load(path):
    if not set(tomllib.loads(path.read_text())) <= TRAIN_SECTIONS:
        pytest.skip("not a training configuration")
    config = load_train_config(path)
    assert config.model.max_length >= 2 and config.data.unlabelled


def test_valid_values_are_kept():
    default = load_train_config(None)
    assert default.data.unlabelled == ["wikitext2", "task"] and default.run.device == "auto"
    assert default.distill.icsfd.k == 3 and default.predistill.enabled is True
    config = load_train_config(None, _overrides(
        "distill.lr=1", "run.device=cuda:0", "model.depth=2.0", "model.neuron.tau=10",
        "distill.icsfd.enabled=true", "run.init_embeddings=random", "data.max_train_samples=0"))
    assert config.distill.lr == 1 and config.run.device == "cuda:0"
    assert config.model.depth == 2 and type(config.model.depth) is int
    assert config.model.neuron.tau == 10 and config.model.neuron.beta == pytest.approx(0.9)
    assert config.distill.icsfd.enabled is True and config.run.init_embeddings == "random"


def test_model_config_round_trips(tmp_path):
    for name in ("tiny", "small", "spikebert", "spikebert-reference", "spikelm-small"):
        config = preset(name)
        assert SpikformerConfig.from_dict(config.to_dict()) == config
        config.save(tmp_path / "config.json")
        assert load_model_config(tmp_path / "config.json") == config
    (tmp_path / "config.json").write_text("3\n")
    with pytest.raises(ConfigError, match="must be a table of options, got 3"):
        load_model_config(tmp_path / "config.json")


# ---- the command line: one line, no traceback ----------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "--length", "0"], "--length must be an integer >= 2, got 0"),
        (["bench", "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["bench", "--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
        (["bench", "--warmup", "-1"], "--warmup must be an integer >= 0, got -1"),
        (["bench", "--threads", "-1"], "--threads must be an integer >= 0"),
        (["bench", "--dtype", "float16"], "--dtype must be float32, float64 or bf16, got 'float16'"),
        (["bench", "--device", "tpu"], "--device must be cpu or cuda"),
        (["parity", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["parity", "--set", "neuron.tau=abc"], "neuron: tau must be a number, got 'abc'"),
        (["parity", "--set", "attention_scale=abc"], "attention_scale must be a number"),
        (["parity", "--set", "max_length=1"], "max_length must be an integer >= 2, got 1"),
    ],
)
def test_the_command_line_names_the_option(args, message):
    if args[0] == "bench":
        args = [*args, "--preset", "tiny", "--backends", "torch"]
    result = CliRunner().invoke(app, args)
    output = " ".join(result.output.split())
    assert result.exit_code != 0
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert message in output
