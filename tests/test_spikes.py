"""Spikes kept for backward packed (bool; int8 signs + amplitudes): same results, same
gradients, less memory."""

import pytest
import torch

import neurolang
from neurolang.config import preset
from neurolang.models import build_model
from neurolang.parity import probe_batch, realistic_init
from neurolang.spikes import pack, spike_attention, spike_format, spike_linear, unpack


def _saved(fn):
    """Run ``fn`` and return the dtypes and bytes of every tensor autograd saves."""
    saved = []

    def keep(t):
        saved.append((t.dtype, t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        out = fn()
    return out, saved


def _spikes(shape, rate, seed, dtype=torch.float64, fmt="binary"):
    """Random spikes of ``fmt``: 0/1, or ``alpha[row] * {-1, 0, 1}`` with one amplitude per
    row of dim 0 (an elastic population's folded (T*B, ...) output)."""
    gen = torch.Generator().manual_seed(seed)
    fired = (torch.rand(shape, generator=gen, dtype=dtype) < rate).to(dtype)
    if fmt == "binary":
        return fired
    sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    alpha = torch.rand(shape[0], *[1] * (len(shape) - 1), generator=gen, dtype=dtype) + 0.1
    return fired * sign * alpha


@pytest.mark.parametrize("fmt", ["binary", "ternary"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pack_round_trip_is_exact(fmt, dtype):
    x = _spikes((6, 5, 7), 0.3, 0, dtype, fmt)
    codes, amplitude = pack(x, fmt)
    assert codes.element_size() == 1
    assert codes.dtype == (torch.bool if fmt == "binary" else torch.int8)
    assert (amplitude is None) == (fmt == "binary")
    back = unpack(codes, amplitude, dtype)
    assert back.dtype == dtype and torch.equal(back, x)


def test_pack_ternary_rows_without_spikes_and_unknown_formats():
    x = _spikes((4, 3, 5), 0.3, 1, fmt="ternary")
    x[2] = 0.0
    assert torch.equal(unpack(*pack(x, "ternary"), x.dtype), x)
    with pytest.raises(ValueError, match="unknown spike format"):
        pack(x, "graded")


def test_spike_format_follows_the_neuron_kind():
    lif = preset("tiny").neuron
    assert spike_format(lif) == "binary"
    assert spike_format(lif.replace(kind="elastic_bispike")) == "ternary"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fmt", ["binary", "ternary"])
def test_spike_linear_matches_linear(seed, fmt):
    torch.manual_seed(seed)
    x = _spikes((3, 6, 10), 0.25, seed, fmt=fmt)
    w = torch.randn(4, 10, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    grad = torch.randn(3, 6, 4, dtype=torch.float64)
    results = []
    for fn in (torch.nn.functional.linear, lambda *a: spike_linear(*a, fmt=fmt)):
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        y, saved = _saved(lambda: fn(xs, ws, bs))  # noqa: B023
        y.backward(grad)
        results.append((y, xs.grad, ws.grad, bs.grad, saved))
    (y0, *g0, _), (y1, *g1, saved) = results
    assert torch.equal(y0, y1)
    for a, b_ in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-12)
    packed = torch.bool if fmt == "binary" else torch.int8
    assert [d for d, _ in saved].count(packed) == 1
    assert torch.float64 not in [d for d, n in saved if n == x.numel() * 8]  # no float copy


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("length", [5, 12])  # L <= d: (Q K^T) V; L > d: Q (K^T V)
@pytest.mark.parametrize("fmt", ["binary", "ternary"])
def test_spike_attention_matches_autograd(seed, length, fmt):
    shape = (2, 3, length, 8)
    q, k, v = (_spikes(shape, 0.3, seed + i, fmt=fmt) for i in range(3))
    grad = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    outs = []
    for packed in (False, True):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        if packed:
            y, saved = _saved(lambda: spike_attention(*leaves, 0.125, fmt))  # noqa: B023
            code = torch.bool if fmt == "binary" else torch.int8
            assert [d for d, _ in saved].count(code) == 3
        else:
            y = (leaves[0] @ leaves[1].transpose(-2, -1)) @ leaves[2] * 0.125
        y.backward(grad)
        outs.append((y, *(t.grad for t in leaves)))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_without_gradients_nothing_is_saved_and_results_agree():
    x = _spikes((4, 10), 0.3, 0, torch.float32)
    w = torch.randn(3, 10)
    with torch.inference_mode():
        assert torch.equal(spike_linear(x, w, None), torch.nn.functional.linear(x, w))
    q = _spikes((1, 2, 6, 4), 0.3, 1, torch.float32)
    with torch.no_grad():
        assert torch.equal(spike_attention(q, q, q, 0.5), (q @ (q.transpose(-2, -1) @ q)) * 0.5)


def _elastic(config):
    return config.replace(neuron=config.neuron.replace(kind="elastic_bispike"),
                          attention_neuron=config.attention_neuron.replace(kind="elastic_bispike"))


@pytest.mark.parametrize("block", ["spikformer", "spikelm"])
def test_packing_follows_the_kind_feeding_each_product(block):
    lif = preset("tiny", block=block)
    for config, fmt in ((lif, "binary"), (_elastic(lif), "ternary")):
        formats = [m.spikes for m in build_model(config).modules() if hasattr(m, "spikes")]
        # Spikformer: attention output, fc2, the attention product; SpikeLM: output, fc1, fc2
        assert formats.count(fmt) == 3 * config.depth
        assert set(formats) == {fmt, None}


@pytest.mark.parametrize("backend", ["torch", "snntorch", "norse"])
@pytest.mark.parametrize("kind", ["lif", "elastic_bispike"])
def test_spikformer_saves_less_and_trains_the_same(backend, kind):
    """The whole model: the spike-fed products keep packed copies; its outputs and gradients
    are those of the same model with the packing switched off."""
    config = preset("tiny", norm="layer")
    if kind != "lif":
        config = _elastic(config)
    model = build_model(config).double()
    ids, mask, labels = probe_batch(config, 4, 0)
    realistic_init(model, ids, mask, seed=0)
    plain = build_model(config).double()
    plain.load_state_dict(model.state_dict())
    for module in plain.modules():
        if hasattr(module, "spikes"):
            module.spikes = None
    model, plain = neurolang.compile(model, backend), neurolang.compile(plain, backend)

    def step(m):
        m.zero_grad()
        out, saved = _saved(lambda: m(ids, mask)["logits"])
        torch.nn.functional.cross_entropy(out, labels).backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        return out, grads, saved

    out_a, grads_a, saved_a = step(model)
    out_b, grads_b, saved_b = step(plain)
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=0, atol=1e-10, msg=name)
    code = torch.bool if kind == "lif" else torch.int8
    packed = sum(n for d, n in saved_a if d == code)
    assert packed > 0
    # each packed element replaces a float64 one: 7 bytes less per spike kept (ternary: less
    # the amplitudes, 8 bytes a row)
    saved_bytes = sum(n for _, n in saved_b) - sum(n for _, n in saved_a)
    if kind == "lif":
        assert saved_bytes == 7 * packed
    else:
        assert 6.5 * packed < saved_bytes < 7 * packed


def test_under_autocast_the_gradients_come_back_in_the_input_dtypes():
    """Mixed precision (bf16 autocast, as the trainer uses on GPU; here on CPU): the products
    run in bf16 and each gradient has its input's dtype, close to the plain products'."""
    x = _spikes((2, 8, 16), 0.3, 0, torch.float32)
    w, b = torch.randn(12, 16), torch.randn(12)
    q, k, v = (_spikes((2, 2, 8, 4), 0.3, i, torch.float32, "ternary") for i in (1, 2, 3))
    results = []
    for plain in (True, False):
        leaves = [t.clone().requires_grad_() for t in (x, w, b, q, k, v)]
        xs, ws, bs, qs, ks, vs = leaves
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if plain:
                y = torch.nn.functional.linear(xs, ws, bs).sum() + (
                    (qs @ ks.transpose(-2, -1)) @ vs * 0.5).sum()
            else:
                y = (spike_linear(xs, ws, bs).sum()
                     + spike_attention(qs, ks, vs, 0.5, "ternary").sum())
        y.float().backward()
        results.append([t.grad for t in leaves])
    for a, c in zip(*results, strict=True):
        assert a.dtype == c.dtype == torch.float32
        torch.testing.assert_close(a, c, rtol=2e-2, atol=2e-2)
