"""The whole Spikformer in Lava (its own Python 3.10 environment): spike-count parity with the
torch backend in floating point, fixed-point agreement, errors, the simulate command.

The session fixture creates ``.venv-lava`` when it is missing (``neurolang setup-lava``,
about 20 s); the tests are skipped only when no Python 3.10 exists on the machine.
"""

import json

import nir
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from neurolang.config import preset
from neurolang.export import export_nir, import_nir, read_nir
from neurolang.lava.driver import LavaError, compare, simulate_lava, torch_reference
from neurolang.lava.env import LavaEnvError, find_python310, is_ready, setup_lava, venv_path
from neurolang.lava.plan import plan_network
from neurolang.lava.plan_types import LavaModelError
from neurolang.models import Spikformer
from neurolang.parity import probe_batch, realistic_init


@pytest.fixture(scope="session")
def lava_env():
    if not is_ready(venv_path()):
        try:
            find_python310()
        except LavaEnvError as err:
            pytest.skip(str(err))
        setup_lava(log=lambda _m: None)
    return venv_path()


def tiny_model(tmp_path, seed=0, batch=8, **overrides):
    config = preset("tiny", **overrides)
    torch.manual_seed(seed)
    model = Spikformer(config).double().eval()
    ids, mask, _ = probe_batch(config, batch, seed)
    rates = realistic_init(model, ids, mask, seed)
    assert all(0.05 < r < 0.6 for r in rates.values()), rates
    path = export_nir(model, tmp_path / "model.nir")
    return model, path, ids.numpy(), mask.sum(1).numpy()


def assert_parity(reference, lava):
    report = compare(reference, lava)
    layers = {row["population"]: row for row in report["layers"]}
    assert len(layers) == 15
    for name, row in layers.items():
        assert row["count_mismatches"] == 0, (name, row)
        assert row[reference.simulator] > 300, (name, row)  # realistic activity everywhere
    assert report["prediction_agreement"] == 1.0
    assert report["logits_max_abs_diff"] < 1e-9
    # per sample and step, not only totals
    for name, counts in reference.spike_counts.items():
        np.testing.assert_array_equal(counts, lava.spike_counts[name])
    return report


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_lava_float_matches_torch_spike_for_spike(lava_env, tmp_path, norm):
    model, path, ids, lengths = tiny_model(tmp_path, norm=norm)
    assert lengths.min() < lengths.max()  # samples of different lengths share one network
    lava = simulate_lava(path, ids, lengths, progress=False)
    assert lava.info["latency_compensated_steps"] == 1  # the classifier's Lava Dense
    assert lava.info["lava_steps"] == len(lengths) * 4 + 1
    assert_parity(torch_reference(model, ids, lengths), lava)
    # the model the file describes, on the torch backend, is the same reference
    assert_parity(torch_reference(import_nir(path), ids, lengths), lava)


def test_lava_subtract_reset_uses_neurolangs_lif_process(lava_env, tmp_path):
    model, path, ids, lengths = tiny_model(tmp_path, seed=1, **{"neuron.reset": "subtract"})
    plan = plan_network(read_nir(path))
    kinds = [s.kind for s in plan.steps.values()]
    assert kinds.count("ref_lif") == 12 and kinds.count("lif") == 2  # attention neurons: Lava's
    assert_parity(torch_reference(model, ids, lengths),
                  simulate_lava(path, ids, lengths, progress=False))


def test_lava_fixed_point_agrees_with_float(lava_env, tmp_path):
    model, path, ids, lengths = tiny_model(tmp_path, seed=2, batch=12)
    ref = simulate_lava(path, ids, lengths, progress=False)
    fixed = simulate_lava(path, ids, lengths, fixed_point=True, progress=False)
    assert fixed.info["mode"] == "fixed_pt"
    quant = fixed.info["quantisation"]
    assert quant["blocks.0.attention.query.norm"]["w_scale"]["min"] > 0  # one per feature
    report = compare(ref, fixed)
    for row in report["layers"]:
        # block 0 stays close; deeper, a flipped Q/K/V spike moves whole (Q K^T) V counts
        floor = 0.93 if row["population"].startswith(("encode", "blocks.0.")) else 0.6
        assert row["agreement"] > floor, row
    assert report["total_count_mismatches"] > 0  # it is a different arithmetic
    assert report["prediction_agreement"] >= 10 / 12


def test_missing_environment_and_unrunnable_models(tmp_path):
    from neurolang.models import PooledClassifierConfig, PooledSpikingClassifier

    _, path, ids, lengths = tiny_model(tmp_path)
    with pytest.raises(LavaEnvError, match="run `neurolang setup-lava`"):
        simulate_lava(path, ids, lengths, venv=tmp_path / "no-venv")
    pooled = export_nir(PooledSpikingClassifier(PooledClassifierConfig()), tmp_path / "p.nir")
    with pytest.raises(LavaModelError, match="takes token ids as input"):
        plan_network(nir.read(pooled))
    subtract = export_nir(Spikformer(preset("tiny", **{"neuron.reset": "subtract"})).double(),
                          tmp_path / "r.nir")
    with pytest.raises(LavaModelError, match="fixed point needs Lava's LIF after each dense"):
        plan_network(read_nir(subtract), fixed_point=True)


def test_runner_reports_bad_inputs_in_one_line(lava_env, tmp_path):
    _, path, ids, lengths = tiny_model(tmp_path)
    ids = ids.copy()
    ids[0, 0] = 10_000  # outside the vocabulary of 512
    with pytest.raises(LavaError, match="token ids outside the vocabulary of 512"):
        simulate_lava(path, ids, lengths, progress=False)


def test_setup_lava_is_idempotent(lava_env):
    messages = []
    assert setup_lava(log=messages.append) == lava_env
    assert messages == [f"[setup-lava] {lava_env} is ready"]


def test_simulate_command(lava_env, tmp_path, tiny_data_dir):
    transformers = pytest.importorskip("transformers")
    from neurolang.cli import _fail as cli_fail
    from neurolang.lava.commands import register
    from neurolang.teachers import resolve_teacher_path

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_teacher_path("default"))
    except Exception:  # noqa: BLE001
        pytest.skip("the offline teacher package is not installed")
    model, _, ids, _ = tiny_model(tmp_path, vocab_size=tokenizer.vocab_size)
    folder = tmp_path / "model"
    folder.mkdir()
    tokenizer.save_pretrained(folder)
    export_nir(model, folder / "model.nir")
    app = typer.Typer()
    register(app, cli_fail)
    out = CliRunner().invoke(app, [
        "simulate", str(folder / "model.nir"), "--simulator", "lava", "--dataset", "sst2",
        "--split", "dev", "--samples", "6", "--data-dir", str(tiny_data_dir),
        "--json", str(tmp_path / "out.json")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["samples"] == 6 and set(report["results"]) == {"torch", "lava_float"}
    assert report["comparisons"]["torch_vs_lava_float"]["total_count_mismatches"] == 0
    assert 0 <= report["results"]["lava_float"]["accuracy"] <= 1
    assert "torch_vs_lava_float: 0 spike-count mismatches" in out.output
    # the model with 8-bit weights, on every simulator; the NIR file itself is unchanged
    before = (folder / "model.nir").read_bytes()
    out = CliRunner().invoke(app, [
        "simulate", str(folder / "model.nir"), "--dataset", "sst2", "--split", "dev",
        "--samples", "6", "--data-dir", str(tiny_data_dir), "--fixed-point",
        "--eight-bit-weights", "--json", str(tmp_path / "eight.json")])
    assert out.exit_code == 0, out.output
    eight = json.loads((tmp_path / "eight.json").read_text())
    assert eight["nir"] == str(folder / "model.nir")
    assert set(eight["results"]) == {"torch", "lava_float", "lava_fixed"}
    assert eight["comparisons"]["torch_vs_lava_float"]["total_count_mismatches"] == 0
    assert 0 < eight["eight_bit_weights"]["max_relative_change"] <= 0.5 / 127 + 1e-12
    assert (folder / "model.nir").read_bytes() == before
    missing = CliRunner().invoke(app, ["simulate", str(tmp_path / "none.nir")])
    assert missing.exit_code == 2 and missing.output.startswith("error:")
