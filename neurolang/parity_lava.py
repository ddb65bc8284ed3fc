"""Backend parity for Lava: the model ``neurolang.parity.run_parity`` builds, exported to NIR
and simulated in Lava, against the torch backend.

The torch side of the comparison: it needs both the NIR export (``neurolang.export``) and
the Lava driver (``neurolang.lava.driver``), which do not know each other; the Lava side
knows no export.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from neurolang.config import SpikformerConfig
from neurolang.export.nir_export import export_nir
from neurolang.lava.driver import compare, simulate_lava, torch_reference
from neurolang.models import build_model
from neurolang.parity import probe_batch, realistic_init


def lava_parity(config: SpikformerConfig, seed: int = 0, batch_size: int = 4,
                fixed_point: bool = False, progress: bool = False) -> dict[str, Any]:
    """``neurolang parity`` for Lava: the model ``run_parity`` builds (realistic firing
    rates, float64, a padded probe batch) exported to NIR and run in Lava, against the
    torch backend; per population spikes and count mismatches (per sample and step)."""
    torch.manual_seed(seed)
    model = build_model(config).to(torch.float64).eval()
    ids, mask, _ = probe_batch(config, batch_size, seed)
    realistic_init(model, ids, mask, seed)
    ids_np, lengths = ids.numpy(), mask.sum(1).numpy()
    with tempfile.TemporaryDirectory(prefix="neurolang-parity-") as tmp:
        path = export_nir(model, Path(tmp) / "model.nir")
        lava = simulate_lava(path, ids_np, lengths, fixed_point=fixed_point, progress=progress)
    report = compare(torch_reference(model, ids_np, lengths), lava)
    report["wall_time_s"] = lava.wall_time_s
    return report


__all__ = ["lava_parity"]
