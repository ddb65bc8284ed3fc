"""SpikeBERT's own figure, recounted: the ``spikebert`` preset against BERT-base.

SpikeBERT (Lv et al., 2023) reports 27.82% of BERT's energy on average (MR: 28.03 mJ against
102.24 mJ) with ``E = 0.9 pJ x SOPs + 4.6 pJ x MACs`` and a layer's SOPs = input firing rate
x T x that layer's MACs; no counting code was published. Here the ``spikebert`` shapes (D 768,
depth 12, 8 heads, T 4, Heaviside encoder, no position embedding) are counted with this
package's rules (:mod:`neurolang.energy.rules`) at SST-2 lengths, with firing rates per kind
of population taken from a measured run: a trained model folder, or, until there is one, the
``tiny`` preset under ``realistic_init`` (an *estimate*, and labelled so).

Three figures come out, each against BERT-base counted by :mod:`neurolang.energy.teacher` on
the same lengths, all with the ``cmos45`` energies:

* ``ours``: our rules. Linears fed by the integer residual stream are dense MACs.
* ``ours, stream as spikes``: the same, but a Linear fed by the residual stream is charged as
  accumulates of the unit spikes the stream is the sum of (sum of |x| x out_features: exact
  for a Heaviside encoder, whose stream is a sum of binary spike tensors).
* ``paper rule``: every Linear ``rate_in x T x MACs`` (rate_in of the stream = its mean
  value), ``Q K^T`` and ``A V`` as ``rate x T x L^2 D`` (rates of Q and of V), only the
  classifier real-valued; norms, neurons and residual additions not counted (our reading).

Run ``python -m neurolang.energy.spikebert [MODEL_DIR]`` to print the table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neurolang.energy.from_spikes import counts_from_spikes
from neurolang.energy.models import BUILTIN_MODELS
from neurolang.energy.plan import CountingPlan
from neurolang.energy.records import ModelCounts
from neurolang.energy.rules import LINEAR_ROLES, TOKEN_STEP
from neurolang.energy.teacher import BERT_BASE, transformer_counts

PAPER = {"ratio": 0.2782, "mr_spikebert_mj": 28.03, "mr_bert_mj": 102.24}
SST2_DEV_MEAN_LENGTH = 25.47  # tokens with [CLS]/[SEP], BERT uncased WordPiece, 872 sentences
KINDS = ("encode", "query", "key", "value", "attention_neuron", "output", "fc1", "fc2")


def population_kind(name: str) -> str | None:
    """``blocks.3.mlp.fc1.neuron`` -> ``fc1``; ``encode`` -> ``encode``."""
    if name == "encode":
        return "encode"
    match = re.match(r"^blocks\.\d+\.(?:attention|mlp)\.(\w+?)(?:\.neuron)?$", name)
    return match.group(1) if match and match.group(1) in KINDS else None


def rates_by_kind(counts: ModelCounts) -> dict[str, float]:
    """Firing rate of each kind of population, all blocks pooled (spikes / neuron updates)."""
    spikes: dict[str, int] = {}
    updates: dict[str, int] = {}
    for layer in counts.populations():
        kind = population_kind(layer.name)
        if kind is None:
            continue
        spikes[kind] = spikes.get(kind, 0) + layer.spikes
        updates[kind] = updates.get(kind, 0) + layer.neuron_updates
    return {kind: spikes[kind] / updates[kind] for kind in spikes if updates[kind]}


def _stream_sums(plan: CountingPlan, spikes: Mapping[str, int]) -> dict[str, int] | None:
    """Sum of the residual stream's values over real elements, per node that carries it (the
    spikes of the population that starts it, a Heaviside encoder, plus every branch spike
    added since): None if it is not a sum of binary spikes."""
    sums: dict[str, int] = {}
    for name in plan.with_role("residual"):
        stream, *branches = plan.data_inputs(plan.nodes[name])
        if stream not in sums:  # where the stream starts
            if sums or not plan.spiking[stream]:
                return None
            sums[stream] = spikes[stream]
        if not all(plan.spiking[i] for i in branches):
            return None
        sums[name] = sums[stream] + sum(spikes[i] for i in branches)
    return sums


def spikebert_estimate(rates: Mapping[str, float], lengths: Sequence[int], *,
                       config: Any = None, rates_source: str = "") -> dict[str, Any]:
    """Count the ``spikebert`` preset (or ``config``) at ``lengths`` with per-kind ``rates``
    and compare it with BERT-base under the three rules of the module docstring."""
    import torch

    from neurolang.config import preset
    from neurolang.models import build_model

    config = (config or preset("spikebert")).replace(representation_taps=False)
    missing = [k for k in KINDS if k not in rates and (k != "encode"
                                                      or config.encoding == "heaviside")]
    if missing:
        raise ValueError(f"no firing rate for {missing}")
    with torch.device("meta"):
        model = build_model(config)
    plan = CountingPlan(model)
    lengths = [int(n) for n in lengths]
    tokens, samples, steps = sum(lengths), len(lengths), config.time_steps
    spikes = {}
    for name in plan.populations():
        sites = steps * tokens * plan.width[name]
        spikes[name] = round(rates[population_kind(name)] * sites)
    counts = counts_from_spikes(model, spikes, lengths, simulator="spikebert-estimate")
    bert = transformer_counts(BERT_BASE, lengths, head=[(768, 768), (768, config.num_labels)],
                              name="bert-base")
    cmos = BUILTIN_MODELS["cmos45"]
    e_ours, e_bert = cmos.per_sample_pj(counts), cmos.per_sample_pj(bert)

    # the residual stream as unit spikes
    sums = _stream_sums(plan, spikes)
    e_stream = None
    if sums is not None:
        swapped_macs, added_acc = 0, 0
        for name in plan.with_role("dense"):
            node = plan.nodes[name]
            source = plan.data_inputs(node)[0]
            if source in sums:
                swapped_macs += counts.layers[name].macs
                added_acc += sums[source] * node.module.out_features
        e_stream = e_ours + (cmos.sop_pj * added_acc - cmos.mac_pj * swapped_macs) / samples

    # SpikeBERT's rule
    squares = sum(n * n for n in lengths)
    parts = dict.fromkeys(("spike_fed_linears", "stream_fed_linears", "attention"), 0.0)
    rule_macs = 0
    for name in plan.with_role(*LINEAR_ROLES, "attention"):
        node = plan.nodes[name]
        if plan.role(name) in LINEAR_ROLES:
            source = plan.data_inputs(node)[0]
            ann_macs = tokens * node.module.in_features * node.module.out_features
            if plan.rows[source] != TOKEN_STEP:  # the head: real-valued
                rule_macs += plan.row_count(plan.rows[source], samples, tokens) * (
                    node.module.in_features * node.module.out_features)
            elif plan.spiking[source]:
                parts["spike_fed_linears"] += rates[population_kind(source)] * steps * ann_macs
            elif sums is not None and source in sums:
                mean_value = sums[source] / (steps * tokens * node.module.in_features)
                parts["stream_fed_linears"] += mean_value * steps * ann_macs
            else:
                rule_macs += steps * ann_macs
        else:
            q, _, v = plan.data_inputs(node)[:3]
            width = plan.width[q]
            parts["attention"] += (rates[population_kind(q)] + rates[population_kind(v)]) * (
                steps * squares * width)
    rule_sops = sum(parts.values())
    e_rule = (cmos.sop_pj * rule_sops + cmos.mac_pj * rule_macs) / samples
    rule_parts = {k: cmos.sop_pj * v / samples / 1e9 for k, v in parts.items()}
    rule_parts["real_valued"] = cmos.mac_pj * rule_macs / samples / 1e9
    # the one input rate, the same for every layer, at which the paper's rule gives 27.82%
    linears = [plan.nodes[name] for name in plan.with_role(*LINEAR_ROLES)]
    ann_total = sum(tokens * n.module.in_features * n.module.out_features for n in linears
                    if plan.rows[plan.data_inputs(n)[0]] == TOKEN_STEP)
    ann_total += sum(2 * squares * plan.width[plan.data_inputs(plan.nodes[name])[0]]
                     for name in plan.with_role("attention"))
    implied_rate = ((PAPER["ratio"] * e_bert * samples - cmos.mac_pj * rule_macs)
                    / (cmos.sop_pj * steps * ann_total))

    breakdown = {k: v / samples for k, v in cmos.breakdown_pj(counts).items()}
    return {
        "config": {"hidden_size": config.hidden_size, "depth": config.depth,
                   "num_heads": config.num_heads, "time_steps": config.time_steps,
                   "encoding": config.encoding},
        "samples": samples, "mean_length": tokens / samples,
        "rates": dict(rates), "rates_source": rates_source,
        "counts_per_sample": {k: counts.per_sample(k) for k in
                              ("spikes", "neuron_updates", "sops", "macs", "adds")},
        "bert_base_macs_per_sample": bert.per_sample("macs"),
        "energy_per_sample_mj": {
            "ours": e_ours / 1e9, "ours_stream_as_spikes": None if e_stream is None
            else e_stream / 1e9, "paper_rule": e_rule / 1e9, "bert_base": e_bert / 1e9},
        "ours_breakdown_mj": {k: v / 1e9 for k, v in breakdown.items()},
        "paper_rule_breakdown_mj": rule_parts,
        "ratio_to_bert": {
            "ours": e_ours / e_bert,
            "ours_stream_as_spikes": None if e_stream is None else e_stream / e_bert,
            "paper_rule": e_rule / e_bert, "paper_reported": PAPER["ratio"]},
        "paper_rule_rate_for_27_82_percent": implied_rate,
        "bert_length_for_102_24_mj": bert_length_for_energy(PAPER["mr_bert_mj"]),
    }


def bert_length_for_energy(millijoules: float) -> int:
    """The sequence length at which BERT-base costs ``millijoules`` (cmos45, our counting)."""
    cmos = BUILTIN_MODELS["cmos45"]
    for length in range(1, 2049):
        counts = transformer_counts(BERT_BASE, [length], head=[(768, 768), (768, 2)])
        if cmos.per_sample_pj(counts) / 1e9 >= millijoules:
            return length
    return 2048


def estimated_rates(seed: int = 0) -> dict[str, float]:
    """Per-kind rates of the ``tiny`` preset after ``realistic_init`` on a probe batch: an
    ESTIMATE standing in for a trained model's rates (rates 10-35% by construction)."""
    import torch

    from neurolang.config import preset
    from neurolang.energy.hooks import count_batches
    from neurolang.models import build_model
    from neurolang.parity import probe_batch, realistic_init

    config = preset("tiny")
    torch.manual_seed(seed)
    model = build_model(config).double()
    ids, mask, _ = probe_batch(config, 8, seed)
    realistic_init(model, ids, mask, seed)
    counts, _ = count_batches(model, [{"input_ids": ids, "attention_mask": mask}])
    return rates_by_kind(counts)


def measured_rates(model_dir: str | Path, dataset: str = "sst2", samples: int | None = None,
                   data_dir: str | Path | None = None) -> tuple[dict[str, float], list[int]]:
    """Per-kind rates of a trained model folder on ``dataset``'s validation split (torch
    backend, float64), and the lengths it ran at."""
    import torch

    from neurolang.energy.report import load_samples
    from neurolang.energy.simulators import measure_torch_side

    _, _, batches, lengths, labels, _ = load_samples(model_dir, dataset, "validation", samples,
                                                     data_dir=data_dir)
    run = measure_torch_side(model_dir, "torch", batches, labels, torch.float64)
    return rates_by_kind(run.counts), lengths


def sst2_lengths(data_dir: str | Path | None = None) -> tuple[list[int], str]:
    """Token lengths of SST-2 dev with BERT's uncased WordPiece vocabulary (the offline
    teacher's tokenizer), or 872 times the stored mean when the data is not available."""
    try:
        from neurolang.data import load_task
        from neurolang.teachers import load_teacher

        tokenizer = load_teacher("default").tokenizer
        texts = list(load_task("sst2", data_dir=data_dir)["validation"]["text"])
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)[
            "input_ids"]]
        return lengths, "SST-2 dev, 872 sentences, BERT uncased WordPiece"
    except Exception as err:  # no data or no tokenizer here: the stored mean length
        return [round(SST2_DEV_MEAN_LENGTH)] * 872, f"mean length only ({err})"


def format_table(result: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table."""
    e, r = result["energy_per_sample_mj"], result["ratio_to_bert"]
    rows = [("ours (stream-fed Linears as MACs)", e["ours"], r["ours"]),
            ("ours, residual stream as unit spikes", e["ours_stream_as_spikes"],
             r["ours_stream_as_spikes"]),
            ("SpikeBERT's rule (rate x T x MACs)", e["paper_rule"], r["paper_rule"]),
            ("BERT-base", e["bert_base"], 1.0)]
    lines = ["| counting | energy per sample (mJ) | ratio to BERT-base |", "|---|---:|---:|"]
    for label, energy, ratio in rows:
        if energy is not None:
            lines.append(f"| {label} | {energy:.3f} | {ratio:.2%} |")
    lines.append(f"| SpikeBERT paper (average over data sets) | | {PAPER['ratio']:.2%} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - a report script
    import argparse
    import json

    from neurolang.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(
        prog="python -m neurolang.energy.spikebert",
        description="SpikeBERT's energy ratio to BERT-base under neurolang's counting rules, "
                    "with firing rates measured on a trained model (or estimated).")
    parser.add_argument("model_dir", nargs="?", help="a trained neurolang model folder whose "
                        "firing rates are measured on SST-2 dev; without it, estimated rates")
    args = parser.parse_args(argv)
    lengths, lengths_source = sst2_lengths()
    if args.model_dir:
        try:
            rates, _ = measured_rates(args.model_dir)
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        source = f"measured: {args.model_dir} on SST-2 dev (torch, float64)"
        if "encode" not in rates:  # a model with encoding="repeat" has no encoder spikes
            rates["encode"] = estimated_rates()["encode"]
            source += ("; the encoder's rate ESTIMATED (tiny preset under realistic_init): "
                       "the model has no spiking encoder")
    else:
        rates = estimated_rates()
        source = "ESTIMATE: tiny preset under realistic_init (no trained model given)"
    result = spikebert_estimate(rates, lengths, rates_source=source)
    result["lengths_source"] = lengths_source
    print(json.dumps(result, indent=2))
    print()
    print(format_table(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
