"""Spikes saved for backward as torch.bool: same results, same gradients, less memory."""

import pytest
import torch

import neurolang
from neurolang.config import preset
from neurolang.parity import probe_batch, realistic_init
from neurolang.spikes import pack, spike_attention, spike_linear, unpack
from neurolang.spikformer import Spikformer


def _saved(fn):
    """Run ``fn`` and return the dtypes and bytes of every tensor autograd saves."""
    saved = []

    def keep(t):
        saved.append((t.dtype, t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        out = fn()
    return out, saved


def _spikes(shape, rate, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen, dtype=dtype) < rate).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pack_round_trip_is_exact(dtype):
    x = _spikes((5, 7), 0.3, 0, dtype)
    packed = pack(x)
    assert packed.dtype == torch.bool and packed.element_size() == 1
    back = unpack(packed, dtype)
    assert back.dtype == dtype and torch.equal(back, x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_linear_matches_linear(seed):
    torch.manual_seed(seed)
    x = _spikes((3, 6, 10), 0.25, seed)
    w = torch.randn(4, 10, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    grad = torch.randn(3, 6, 4, dtype=torch.float64)
    results = []
    for fn in (torch.nn.functional.linear, spike_linear):
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        y, saved = _saved(lambda: fn(xs, ws, bs))  # noqa: B023
        y.backward(grad)
        results.append((y, xs.grad, ws.grad, bs.grad, saved))
    (y0, *g0, _), (y1, *g1, saved) = results
    assert torch.equal(y0, y1)
    for a, b_ in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-12)
    assert [d for d, _ in saved].count(torch.bool) == 1


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("length", [5, 12])  # L <= d: (Q K^T) V; L > d: Q (K^T V)
def test_spike_attention_matches_autograd(seed, length):
    shape = (2, 3, length, 8)
    q, k, v = (_spikes(shape, 0.3, seed + i) for i in range(3))
    grad = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    outs = []
    for fn in ((lambda a, b, c: (a @ b.transpose(-2, -1)) @ c * 0.125), spike_attention):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        if fn is spike_attention:
            y, saved = _saved(lambda: spike_attention(*leaves, 0.125))  # noqa: B023
            assert [d for d, _ in saved].count(torch.bool) == 3
        else:
            y = fn(*leaves)
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


@pytest.mark.parametrize("block", ["spikformer", "spikelm"])
def test_only_binary_spikes_are_packed(block):
    """The flags follow the kind of the population feeding each product: graded spikes
    (elastic bi-spiking) are never cast to bool."""
    lif = preset("tiny", block=block)
    elastic = lif.replace(neuron=lif.neuron.replace(kind="elastic_bispike"),
                          attention_neuron=lif.attention_neuron.replace(kind="elastic_bispike"))
    for config, per_block in ((lif, 3), (elastic, 0)):
        modules = list(Spikformer(config).modules())
        flags = [m.binary_input for m in modules if hasattr(m, "binary_input")]
        flags += [m.binary for m in modules if hasattr(m, "binary")]
        # Spikformer: attention output, fc2, the attention product; SpikeLM: output, fc1, fc2
        assert sum(flags) == per_block * config.depth


@pytest.mark.parametrize("backend", ["torch", "snntorch", "norse"])
def test_spikformer_saves_less_and_trains_the_same(backend):
    """The whole model: spike-fed Linears and the attention keep bool copies; the gradients
    are those of the plain products (the same model with the saving switched off)."""
    config = preset("tiny", norm="layer")
    model = Spikformer(config).double()
    ids, mask, labels = probe_batch(config, 4, 0)
    realistic_init(model, ids, mask, seed=0)
    plain = Spikformer(config).double()
    plain.load_state_dict(model.state_dict())
    for module in plain.modules():
        if hasattr(module, "binary_input"):
            module.binary_input = False
        if hasattr(module, "binary"):
            module.binary = False
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
    bools = sum(n for d, n in saved_a if d == torch.bool)
    assert bools > 0
    # each bool element replaces a float64 one: 7 bytes saved per spike kept
    assert sum(n for _, n in saved_b) - sum(n for _, n in saved_a) == 7 * bools


def test_under_autocast_the_gradients_come_back_in_the_input_dtypes():
    """Mixed precision (bf16 autocast, as the trainer uses on GPU; here on CPU): the products
    run in bf16 and each gradient has its input's dtype, close to the plain products'."""
    x = _spikes((2, 8, 16), 0.3, 0, torch.float32)
    w, b = torch.randn(12, 16), torch.randn(12)
    q, k, v = (_spikes((2, 2, 8, 4), 0.3, i, torch.float32) for i in (1, 2, 3))
    results = []
    for plain in (True, False):
        leaves = [t.clone().requires_grad_() for t in (x, w, b, q, k, v)]
        xs, ws, bs, qs, ks, vs = leaves
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if plain:
                y = torch.nn.functional.linear(xs, ws, bs).sum() + (
                    (qs @ ks.transpose(-2, -1)) @ vs * 0.5).sum()
            else:
                y = spike_linear(xs, ws, bs).sum() + spike_attention(qs, ks, vs, 0.5).sum()
        y.float().backward()
        results.append([t.grad for t in leaves])
    for a, c in zip(*results, strict=True):
        assert a.dtype == c.dtype == torch.float32
        torch.testing.assert_close(a, c, rtol=2e-2, atol=2e-2)
