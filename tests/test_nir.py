"""NIR export and import: round trips, extension nodes, strict files in snnTorch and Norse,
bad files, the CLI."""

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from neurolang.cli import _fail as cli_fail
from neurolang.config import preset
from neurolang.export import NIRError, export_nir, import_nir, read_nir, to_nir
from neurolang.export.commands import register
from neurolang.models import (
    PooledClassifierConfig,
    PooledSpikingClassifier,
    Spikformer,
    calibrate_rates,
)
from neurolang.nir import EXTENSIONS, flatten, read_metadata
from neurolang.parity import probe_batch, realistic_init, record_spikes

ROOT = Path(__file__).resolve().parents[1]


def realistic_spikformer(norm="layer", seed=0, **overrides):
    """A tiny Spikformer with realistic firing rates (cached: the calibration is slow)."""
    model, ids, mask, rates = _realistic(norm, seed, tuple(sorted(overrides.items())))
    return copy.deepcopy(model), ids, mask, rates


@functools.cache
def _realistic(norm, seed, overrides):
    overrides = dict(overrides)
    config = preset("tiny", norm=norm, **overrides)
    torch.manual_seed(seed)
    model = Spikformer(config).double().eval()
    ids, mask, _ = probe_batch(config, 8, seed)
    rates = realistic_init(model, ids, mask, seed)
    if norm == "batch":  # running statistics that are not the identity
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if getattr(m, "kind", None) == "batch":
                    m.running_mean.copy_(0.1 * torch.randn(m.features, generator=gen))
                    m.running_var.copy_(0.5 + torch.rand(m.features, generator=gen))
        with record_spikes(model) as rec:
            model(ids, mask)
        rates = {k: float(v.mean()) for k, v in rec.items()}
    return model, ids, mask, rates


def spikes_and_logits(model, ids, mask):
    with torch.no_grad(), record_spikes(model) as rec:
        out = model(ids, mask)
    return dict(rec), out["logits"]


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_spikformer_round_trip_gives_identical_spikes_in_float64(tmp_path, norm):
    model, ids, mask, rates = realistic_spikformer(norm)
    assert all(0.05 < r < 0.6 for r in rates.values()), rates
    path = export_nir(model, tmp_path / "m.nir")
    back = import_nir(path)
    assert next(back.parameters()).dtype == torch.float64
    ref, ref_logits = spikes_and_logits(model, ids, mask)
    got, logits = spikes_and_logits(back, ids, mask)
    assert set(ref) == set(got) and len(ref) == 15
    mismatches = {k: int((ref[k] != got[k]).sum()) for k in ref}
    assert sum(mismatches.values()) == 0, mismatches
    assert sum(int(v.sum()) for v in ref.values()) > 10_000
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-12)


def test_round_trip_onto_another_backend_and_subtract_reset(tmp_path):
    model, ids, mask, _ = realistic_spikformer(**{"neuron.reset": "subtract"})
    path = export_nir(model, tmp_path / "m.nir")
    graph = read_nir(path)
    types = {type(n).__name__ for n in flatten(graph).nodes.values()}
    assert "LIF" in types  # neurolang.LIF (subtract) and nir.LIF (attention neuron) share a name
    assert "neurolang.LIF" in json.loads(graph.metadata["neurolang.extensions"])
    back = import_nir(path, backend="norse")
    assert back.backend == "norse"
    ref, _ = spikes_and_logits(model, ids, mask)
    got, _ = spikes_and_logits(back, ids, mask)
    assert sum(int((ref[k] != got[k]).sum()) for k in ref) == 0


def test_file_layout_metadata_and_nesting(tmp_path):
    model, *_ = realistic_spikformer()
    path = export_nir(model, tmp_path / "m.nir", dt=1e-3)
    graph = read_nir(path)
    meta = read_metadata(graph)
    assert meta["dt"] == 1e-3 and meta["time_steps"] == 4 and meta["reset"] == "zero"
    assert meta["threshold_comparison"] == ">" and meta["neurolang.version"]
    assert meta["config"]["hidden_size"] == 32
    assert isinstance(graph.nodes["blocks.0"], nir.NIRGraph)
    block = graph.nodes["blocks.0"]
    assert isinstance(block.nodes["attention.query.linear"], nir.Affine)
    lif = block.nodes["attention.query.neuron"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (32,)
    # SpikingJelly form: beta = 1 - dt/tau = 0.5 exactly, r = 1
    assert np.all(1 - 1e-3 / lif.tau == 0.5) and np.all(lif.r == 1)
    assert np.all(block.nodes["attention.attention_neuron"].v_threshold == 0.5)
    assert isinstance(block.nodes["attention.residual"], nir.Scale)
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    assert outputs == ["logits"]
    assert graph.nodes["logits"].metadata["neurolang.readout"] == "time_mean"


def test_plain_nir_read_fails_loudly_on_extension_nodes(tmp_path):
    model, *_ = realistic_spikformer()
    path = export_nir(model, tmp_path / "m.nir")
    with pytest.raises((AssertionError, KeyError)):
        nir.read(path)
    # python -O strips asserts: nir then fails on the registry lookup, still loudly
    code = ("import nir, sys\ntry:\n    nir.read(sys.argv[1])\nexcept KeyError as e:\n"
            "    print('KeyError', e)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code, str(path)], capture_output=True,
                         text=True, check=True)
    assert "KeyError 'neurolang." in out.stdout
    assert set(json.loads(read_nir(path).metadata["neurolang.extensions"])) <= set(EXTENSIONS)


def test_strict_export_names_every_offending_layer(tmp_path):
    model, *_ = realistic_spikformer()
    with pytest.raises(NIRError) as err:
        export_nir(model, tmp_path / "m.nir", strict=True)
    message = str(err.value)
    for layer in ("embedding", "position", "blocks.0.attention.product",
                  "blocks.1.mlp.fc2.norm", "head.token_mean"):
        assert layer in message
    assert "strict NIR export refused" in message and "\n" not in message
    assert not (tmp_path / "m.nir").exists()


def pooled_model(decay_input=True, seed=0, dyadic=False):
    """A realistic strict model. ``dyadic``: every parameter and input on a coarse binary grid
    (and BatchNorm variances with ``var + eps == 1``), so that every operation of every
    library is exact in float32 and float64 and any spike difference is a mapping error."""
    from neurolang.export.import_rules import _identity_var

    neuron = preset("tiny").neuron.replace(decay_input=decay_input)
    config = PooledClassifierConfig(input_size=32, hidden_sizes=(48, 40), num_labels=3,
                                    time_steps=6, neuron=neuron)
    torch.manual_seed(seed)
    model = PooledSpikingClassifier(config).double()
    features = torch.randn(48, 32, dtype=torch.float64)
    if dyadic:
        features = torch.round(features * 4) / 4
    rates = calibrate_rates(model, features, seed)
    if dyadic:
        def grid(t, step):
            t.copy_(torch.round(t / step) * step)

        with torch.no_grad():
            for layer in model.layers:
                norm = layer.norm
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                norm.weight.copy_(scale)
                norm.running_var.fill_(_identity_var(norm.eps))
                for t, step in ((layer.linear.weight, 1 / 16), (layer.linear.bias, 1 / 16),
                                (norm.weight, 1 / 4), (norm.bias, 1 / 16),
                                (norm.running_mean, 1 / 16)):
                    grid(t, step)
            grid(model.classifier.weight.data, 1 / 16)
        rates = {k: float(v.mean()) for k, v in neurolang_run(model, features)[0].items()}
    assert all(0.05 < r < 0.45 for r in rates.values()), rates
    return model, features


def neurolang_run(model, features):
    T = model.config.time_steps
    with torch.no_grad(), record_spikes(model) as rec:
        out = model(features)
    spikes = {k: v.reshape(T, features.shape[0], -1) for k, v in rec.items()}
    return spikes, out["logits_per_step"].reshape(T, features.shape[0], -1)


def mismatches(a, b):
    return {k: int((a[k].double() != b[k].double()).sum()) for k in b}


@pytest.mark.parametrize("decay_input", [True, False])
def test_strict_file_in_snntorch_and_norse_importers(tmp_path, decay_input):
    """Both importers compute the file's semantics exactly: the same spikes as neurolang
    running that file (``import_nir``) at their precision, float32 (both cast parameters to
    float32). Against the original model (BatchNorm not folded, float64), float32 rounding
    flips a few spikes near the threshold; the dyadic test below shows those are rounding."""
    from neurolang.export.interop import load_norse, load_snntorch, run_norse, run_snntorch

    model, features = pooled_model(decay_input)
    path = export_nir(model, tmp_path / "strict.nir", strict=True)
    graph = nir.read(path)  # standard NIR: the plain reader takes it
    assert not json.loads(graph.metadata["neurolang.extensions"])
    file32, out32 = neurolang_run(import_nir(path).float(), features.float())
    ref64, _ = neurolang_run(model, features)
    for name, (spikes, outputs) in {
        "snntorch": run_snntorch(load_snntorch(path), features),
        "norse": run_norse(load_norse(path), features),
    }.items():
        assert set(spikes) == set(file32) == {"layers.0.neuron", "layers.1.neuron"}
        assert all(spikes[k].shape == file32[k].shape for k in file32)
        assert all(int(file32[k].sum()) > 500 for k in file32)
        assert sum(mismatches(spikes, file32).values()) == 0, (name, mismatches(spikes, file32))
        total = sum(int(v.sum()) for v in ref64.values())
        assert sum(mismatches(spikes, ref64).values()) <= 0.02 * total
        torch.testing.assert_close(outputs.float(), out32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decay_input", [True, False])
def test_strict_importers_exact_on_a_dyadic_model(tmp_path, decay_input):
    from neurolang.export.interop import load_norse, load_snntorch, run_norse, run_snntorch

    model, features = pooled_model(decay_input, seed=1, dyadic=True)
    path = export_nir(model, tmp_path / "strict.nir", strict=True)
    ref64, out64 = neurolang_run(model, features)  # the original model, BatchNorm unfolded
    for name, (spikes, outputs) in {
        "snntorch": run_snntorch(load_snntorch(path), features),
        "norse": run_norse(load_norse(path), features),
    }.items():
        assert sum(mismatches(spikes, ref64).values()) == 0, (name, mismatches(spikes, ref64))
        torch.testing.assert_close(outputs.double(), out64, rtol=0, atol=1e-6)


def test_pooled_round_trip_and_snntorch_dt_check(tmp_path):
    from neurolang.export.interop import load_snntorch

    model, features = pooled_model()
    path = export_nir(model, tmp_path / "p.nir", strict=True)
    back = import_nir(path)
    a, la = neurolang_run(model, features)
    b, lb = neurolang_run(back, features)
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-12)
    other = export_nir(model, tmp_path / "dt.nir", strict=True, dt=1e-3)
    with pytest.raises(NIRError, match="dt = 0.0001"):
        load_snntorch(other)
    with pytest.raises(NIRError, match="standard NIR only"):
        load_snntorch(export_nir(realistic_spikformer()[0], tmp_path / "s.nir"))


# ---- bad input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    model, *_ = realistic_spikformer()
    return export_nir(model, tmp_path_factory.mktemp("nir") / "m.nir")


def copy_with(good_file, tmp_path, edit):
    path = tmp_path / "bad.nir"
    path.write_bytes(good_file.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f["node"])
    return path


def test_missing_truncated_and_garbage_files(good_file, tmp_path):
    with pytest.raises(NIRError, match="no NIR file"):
        read_nir(tmp_path / "nothing.nir")
    truncated = tmp_path / "t.nir"
    truncated.write_bytes(good_file.read_bytes()[: good_file.stat().st_size // 2])
    with pytest.raises(NIRError, match="truncated or corrupted"):
        read_nir(truncated)
    garbage = tmp_path / "g.nir"
    garbage.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(NIRError, match="not a readable NIR file"):
        read_nir(garbage)
    other = tmp_path / "o.nir"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=[1, 2])
    with pytest.raises(NIRError, match="not a NIR graph"):
        read_nir(other)


def set_type(group, value):
    del group["type"]
    group.create_dataset("type", data=value, dtype=h5py.string_dtype())


def test_unknown_node_types(good_file, tmp_path):
    bad = copy_with(good_file, tmp_path,
                    lambda n: set_type(n["nodes"]["blocks.0"]["nodes"]["attention.product"],
                                       "SpikeMatmul"))
    with pytest.raises(NIRError, match="unknown node type 'SpikeMatmul'") as err:
        read_nir(bad)
    assert "blocks.0.attention.product" in str(err.value)
    future = copy_with(good_file, tmp_path, lambda n: set_type(n["nodes"]["head.token_mean"],
                                                               "neurolang.TokenMax"))
    with pytest.raises(NIRError, match="unknown neurolang extension type"):
        read_nir(future)


def test_inconsistent_shapes_and_structure(good_file, tmp_path):
    def shrink(node):
        g = node["nodes"]["blocks.0"]["nodes"]["mlp.fc2.linear"]
        w = g["weight"][()]
        del g["weight"]
        g.create_dataset("weight", data=w[:, :40])

    with pytest.raises(NIRError, match="inconsistent shapes: edge 'blocks.0.mlp.fc1.neuron' "
                                       "-> 'blocks.0.mlp.fc2.linear'"):
        read_nir(copy_with(good_file, tmp_path, shrink))

    def drop_edge(node):
        edges = [tuple(e) for e in node["edges"][()]]
        del node["edges"]
        node.create_dataset("edges", data=np.array(edges[:-1], dtype=object),
                            dtype=h5py.string_dtype())

    with pytest.raises(NIRError, match="edges do not match"):
        import_nir(copy_with(good_file, tmp_path, drop_edge))

    def dangling(node):
        edges = [tuple(x.decode() for x in e) for e in node["edges"][()]] + [("embedding", "x")]
        del node["edges"]
        node.create_dataset("edges", data=np.array(edges, dtype=object),
                            dtype=h5py.string_dtype())

    with pytest.raises(NIRError, match="names a node 'x' that does not exist"):
        read_nir(copy_with(good_file, tmp_path, dangling))

    def wrong_tau(node):
        g = node["nodes"]["blocks.1"]["nodes"]["mlp.fc1.neuron"]
        tau = g["tau"][()]
        del g["tau"]
        g.create_dataset("tau", data=tau * 3)

    with pytest.raises(NIRError, match="disagrees with its parameters"):
        import_nir(copy_with(good_file, tmp_path, wrong_tau))


def test_format_module_imports_without_torch():
    code = ("import sys; import neurolang.nir.io, neurolang.nir.nodes, neurolang.nir.flatten, "
            "neurolang.nir.lif, neurolang.lava.plan, neurolang.lava.network, "
            "neurolang.lava.env, neurolang.lava.run; import neurolang.export; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


# ---- CLI ---------------------------------------------------------------------------------------


@pytest.fixture()
def cli():
    app = typer.Typer()
    register(app, cli_fail)
    return app


def test_cli_export_import_round_trip(cli, tmp_path):
    from neurolang.checkpoint import from_pretrained, save_pretrained

    model, ids, mask, _ = realistic_spikformer(norm="batch")
    save_pretrained(model, tmp_path / "model")
    runner = CliRunner()
    out = runner.invoke(cli, ["export", str(tmp_path / "model"), "--format", "nir", "-o",
                              str(tmp_path / "m.nir")])
    assert out.exit_code == 0, out.output
    assert "neurolang.SpikeAttention" in out.output
    out = runner.invoke(cli, ["import", str(tmp_path / "m.nir"), "-o", str(tmp_path / "back")])
    assert out.exit_code == 0, out.output
    back = from_pretrained(tmp_path / "back").double().eval()
    ref, _ = spikes_and_logits(model, ids, mask)
    got, _ = spikes_and_logits(back, ids, mask)
    # the folder stores float32 weights: compare the float32 models
    ref32, _ = spikes_and_logits(from_pretrained(tmp_path / "model").eval(), ids, mask)
    got32, _ = spikes_and_logits(from_pretrained(tmp_path / "back").eval(), ids, mask)
    assert sum(int((ref32[k] != got32[k]).sum()) for k in ref32) <= 5
    assert sum(int((ref[k] != got[k]).sum()) for k in ref) <= 5


def test_cli_strict_export_of_a_pooled_classifier_folder(cli, tmp_path):
    from neurolang.checkpoint import from_pretrained, save_pretrained
    from neurolang.export.interop import load_norse, run_norse

    model, features = pooled_model()
    save_pretrained(model.float(), tmp_path / "pooled")
    runner = CliRunner()
    out = runner.invoke(cli, ["export", str(tmp_path / "pooled"), "--strict", "-o",
                              str(tmp_path / "p.nir")])
    assert out.exit_code == 0 and "standard NIR only" in out.output, out.output
    out = runner.invoke(cli, ["import", str(tmp_path / "p.nir"), "-o", str(tmp_path / "back")])
    assert out.exit_code == 0, out.output
    ref, _ = neurolang_run(from_pretrained(tmp_path / "back"), features.float())
    norse, _ = run_norse(load_norse(tmp_path / "p.nir"), features)
    assert sum(mismatches(norse, ref).values()) == 0


def test_cli_errors_are_one_line_with_exit_code_2(cli, tmp_path):
    runner = CliRunner()
    cases = [
        ["export", str(tmp_path / "missing"), "-o", str(tmp_path / "x.nir")],
        ["export", str(tmp_path), "--format", "onnx", "-o", str(tmp_path / "x.nir")],
        ["import", str(tmp_path / "missing.nir"), "-o", str(tmp_path / "m")],
    ]
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n" + b"0" * 200)
    cases.append(["import", str(bad), "-o", str(tmp_path / "m")])
    for args in cases:
        out = runner.invoke(cli, args)
        assert out.exit_code == 2, (args, out.output)
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), out.output


def test_cli_strict_export_refusal(cli, tmp_path):
    from neurolang.checkpoint import save_pretrained

    save_pretrained(Spikformer(preset("tiny")), tmp_path / "model")
    out = CliRunner().invoke(cli, ["export", str(tmp_path / "model"), "--strict", "-o",
                                   str(tmp_path / "m.nir")])
    assert out.exit_code == 2 and "strict NIR export refused" in out.output


def test_to_nir_refuses_foreign_models():
    with pytest.raises(NIRError, match="cannot export a Linear"):
        to_nir(torch.nn.Linear(2, 2))
