"""Bit-exact parity of the whole Spikformer across backends (neurolang parity)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from neurolang.cli import app
from neurolang.config import preset
from neurolang.parity import RATE_BAND, run_parity

ALL = ["torch", "snntorch", "norse"]


def _check(report, backends):
    assert report.rates_in_band, [(p.name, p.rate) for p in report.populations]
    assert report.total_mismatches == 0
    for b in backends:
        assert report.logits_max_diff[b] < 1e-12
        assert report.grad_max_diff[b] < 1e-10
    # every population is compared, and the reference itself spiked
    encoder = report.config["encoding"] == "heaviside"
    per_block = 6 if report.config.get("block") == "spikelm" else 7
    assert len(report.populations) == report.config["depth"] * per_block + encoder
    assert all(p.spikes["reference"] > 0 for p in report.populations)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_depth2_t4_spikformer_all_backends_float64(seed):
    config = preset("tiny")
    assert config.depth >= 2 and config.time_steps >= 4
    _check(run_parity(config, ALL, seed=seed, check_float32=False), ALL)


@pytest.mark.parametrize(
    "overrides, backends",
    [
        ({"padding_mask": False}, ALL),
        ({"norm": "batch", "encoding": "repeat"}, ALL),
        ({"neuron.reset": "subtract", "attention_neuron.reset": "subtract"}, ["torch", "norse"]),
        ({"neuron.decay_input": False, "attention_neuron.decay_input": False, "neuron.tau": 3.0},
         ALL),
        ({"neuron.detach_reset": True, "attention_neuron.detach_reset": True},
         ["torch", "norse"]),
        ({"neuron.surrogate": "atan", "neuron.surrogate_alpha": 2.0,
          "neuron.threshold_comparison": ">=", "time_steps": 6}, ["torch", "snntorch"]),
    ],
)
def test_parity_across_settings(overrides, backends):
    config = preset("tiny").with_overrides(overrides)
    _check(run_parity(config, backends, seed=3, check_float32=False), backends)


@pytest.mark.parametrize(
    "overrides",
    [
        # SpikeLM's elastic bi-spiking neurons (ternary spikes, first-batch amplitudes)
        {"neuron.kind": "elastic_bispike", "attention_neuron.kind": "elastic_bispike"},
        # the same block with LIF neurons; the context averages binary V spikes: threshold 0.25
        {"attention_neuron.v_threshold": 0.25},
    ],
    ids=["elastic_bispike", "lif"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_spikelm_block_all_backends_float64(overrides, seed):
    config = preset("tiny", block="spikelm", encoding="repeat", **overrides)
    report = run_parity(config, ALL, seed=seed, check_float32=False)
    _check(report, ALL)
    names = [p.name for p in report.populations]
    assert "blocks.1.attention.context_neuron" in names and "blocks.1.ffn.hidden_neuron" in names


def test_parity_cli_spikelm_block(tmp_path):
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(app, ["parity", "--set", "model.block=spikelm", "--set",
                                      "encoding=repeat", "--set", "neuron.kind=elastic_bispike",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["config"]["block"] == "spikelm" and report["total_mismatches"] == 0
    assert "blocks.0.attention.context_neuron" in [p["name"] for p in report["populations"]]


def test_float32_agreement_is_reported():
    report = run_parity(preset("tiny"), ALL, seed=0, check_float32=True)
    assert set(report.float32_mismatches) == set(ALL)
    assert report.float32_vs_float64_mismatches is not None


def test_parity_cli_writes_json_and_table(tmp_path):
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(app, ["parity", "--seed", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "total spike mismatches: 0" in result.output
    report = json.loads(out.read_text())
    assert report["total_mismatches"] == 0 and report["rates_in_band"]
    assert report["rate_band"] == list(RATE_BAND)
    names = [p["name"] for p in report["populations"]]
    assert "blocks.1.attention.attention_neuron" in names


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backends", "torch,jax"], "unknown backend 'jax'"),
        (["--set", "neuron.reset=subtract", "--backends", "snntorch"], "reset='subtract'"),
        (["--set", "depth=zero"], "depth must be a positive integer"),
        (["--dtype", "float16"], "--dtype must be float64 or float32"),
        (["--config", "/nonexistent.toml"], "no configuration file"),
    ],
)
def test_parity_cli_bad_input(args, message):
    result = CliRunner().invoke(app, ["parity", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_backends_cli_lists_all():
    result = CliRunner().invoke(app, ["backends"])
    assert result.exit_code == 0
    for name in ALL:
        assert name in result.output


def test_torch_default_dtype_untouched():
    assert torch.get_default_dtype() == torch.float32
