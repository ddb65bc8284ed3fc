"""The table ``neurolang bench`` prints."""

from __future__ import annotations

import math
from typing import Any


def print_table(result: dict[str, Any], console=None) -> None:
    """The result as a table (rich if a console is given, else plain text)."""
    compared = f" beside {result['compare']}" if result.get("compare") else ""
    head = (f"{result['preset']}{compared} on {result['device']}: batch {result['batch_size']} x "
            f"{result['length']} tokens, T={result['time_steps']}, {result['threads']} threads, "
            f"median of {result['repeats']} (warm-up {result['warmup']}), torch "
            f"{result['torch_version']}")
    columns = ["variant", "neuron", "train step s", "train samples/s", "train tokens/s",
               "infer samples/s", "infer tokens/s", "train peak MiB", "infer peak MiB",
               "train / handwritten", "infer / handwritten"]

    def num(value, fmt):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
            else format(value, fmt)

    lines = [[r["variant"], r["neuron"], num(r["train_step_s"], ".3f"),
              num(r["train_samples_per_s"], ".2f"), num(r["train_tokens_per_s"], ".0f"),
              num(r["infer_samples_per_s"], ".2f"), num(r["infer_tokens_per_s"], ".0f"),
              num(r["train_peak_mib"], ".1f"), num(r["infer_peak_mib"], ".1f"),
              num(r["train_vs_handwritten"], ".3f"), num(r["infer_vs_handwritten"], ".3f")]
             for r in result["rows"]]
    ratio_lines = [
        f"{phase} {key}: {value:.3f} (by CPU time {result['ratios_cpu_time'][phase][key]:.3f})"
        for phase in ("train", "infer") for key, value in result["ratios"][phase].items()]
    target_lines = [f"target {k}: {'met' if v else 'NOT met'}"
                    for k, v in result["targets"].items()]
    if console is None:
        print(head)
        widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for line in lines:
            print("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)))
        print("\n".join(ratio_lines + target_lines))
        return
    from rich.table import Table

    table = Table(title=head)
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "neuron") else "right")
    for line in lines:
        table.add_row(*line)
    console.print(table)
    for line in ratio_lines + target_lines:
        console.print(line, highlight=False)


