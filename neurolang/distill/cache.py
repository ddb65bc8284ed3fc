"""Teacher outputs computed once per data set and kept on disk.

For a tokenised split, the teacher's logits and the hidden states of the layers the student
distils from are computed in one pass and stored in a folder named by a hash of the teacher,
the token ids and the layer list: ``logits.npy`` (N, C) float32 and, per layer,
``hidden_<k>.npy`` (real tokens of all rows, D) float16 with ``offsets.npy`` giving each row's
slice. Reads are memory-mapped, so a cache larger than memory still works. A folder appears
only when complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from neurolang.progress import progress as tqdm
from neurolang.teachers import Teacher


def _fingerprint_teacher(teacher: Teacher) -> str:
    digest = hashlib.sha256(teacher.model.config.to_json_string().encode())
    for name, tensor in sorted(teacher.model.state_dict().items()):
        digest.update(name.encode())
        # a cheap but weight-sensitive summary: sum and a strided sample of every tensor
        flat = tensor.detach().float().flatten()
        digest.update(np.float64(flat.sum().item()).tobytes())
        digest.update(flat[:: max(1, flat.numel() // 64)].numpy().tobytes())
    return digest.hexdigest()[:16]


def _fingerprint_ids(dataset) -> str:
    digest = hashlib.sha256()
    for ids in dataset["input_ids"]:
        digest.update(np.asarray(ids, dtype=np.int32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


class TeacherCache:
    """Cached teacher logits and hidden states of one tokenised split."""

    def __init__(self, folder: Path):
        self.folder = folder
        meta = json.loads((folder / "meta.json").read_text())
        self.layers: list[int] = meta["layers"]
        self.offsets = np.load(folder / "offsets.npy")
        self.logits = np.load(folder / "logits.npy") if meta["has_logits"] else None
        self.hidden = {k: np.load(folder / f"hidden_{k}.npy", mmap_mode="r") for k in self.layers}

    @classmethod
    def build(cls, teacher: Teacher, dataset, layers: list[int], root: str | Path,
              batch_size: int = 64, device: str | torch.device = "cpu",
              description: str = "teacher outputs") -> TeacherCache:
        """Load the cache for (teacher, dataset, layers) from ``root``, computing it if absent."""
        layers = sorted(set(layers))
        key = hashlib.sha256(
            f"{_fingerprint_teacher(teacher)}-{_fingerprint_ids(dataset)}-{layers}".encode()
        ).hexdigest()[:20]
        folder = Path(root) / key
        if (folder / "meta.json").is_file():
            return cls(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
        try:
            cls._compute(teacher, dataset, layers, tmp, batch_size, device, description)
            try:
                tmp.rename(folder)
            except OSError:
                # another run of the same teacher and data finished first: its cache holds
                # the same outputs, so ours is dropped
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(folder)

    @staticmethod
    def _compute(teacher, dataset, layers, folder: Path, batch_size, device, description):
        lengths = np.asarray(dataset["length"], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        total = int(offsets[-1])
        hidden = {k: np.lib.format.open_memmap(folder / f"hidden_{k}.npy", mode="w+",
                                               dtype=np.float16, shape=(total, teacher.hidden_size))
                  for k in layers}
        logits = None
        order = np.argsort(lengths, kind="stable")
        teacher.eval().to(device)
        has_types = "token_type_ids" in dataset.column_names and teacher.uses_token_types
        # pad with the tokenizer's pad id (RoBERTa: 1, and its position ids count non-pad ids)
        pad_id = getattr(teacher.tokenizer, "pad_token_id", None) or 0
        with torch.no_grad():
            for start in tqdm(range(0, len(order), batch_size), desc=description, unit="batch"):
                rows = order[start : start + batch_size]
                batch = dataset[rows.tolist()]
                width = int(lengths[rows].max())
                ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                mask = torch.zeros(len(rows), width, dtype=torch.long)
                types = torch.zeros(len(rows), width, dtype=torch.long)
                for j, seq in enumerate(batch["input_ids"]):
                    ids[j, : len(seq)] = torch.tensor(seq)
                    mask[j, : len(seq)] = 1
                    if has_types:
                        types[j, : len(seq)] = torch.tensor(batch["token_type_ids"][j])
                out = teacher(ids.to(device), mask.to(device),
                              types.to(device) if has_types else None)
                if out.logits is not None:
                    if logits is None:
                        logits = np.zeros((len(order), out.logits.shape[-1]), dtype=np.float32)
                    logits[rows] = out.logits.float().cpu().numpy()
                for k in layers:
                    states = out.hidden_states[k].float().cpu().numpy()
                    for j, row in enumerate(rows):
                        hidden[k][offsets[row] : offsets[row + 1]] = states[j, : lengths[row]]
        for array in hidden.values():
            array.flush()
        np.save(folder / "offsets.npy", offsets)
        if logits is not None:
            np.save(folder / "logits.npy", logits)
        meta = {"layers": layers, "has_logits": logits is not None, "rows": len(order),
                "teacher": teacher.source}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    def batch(self, indices: torch.Tensor, width: int, dtype=torch.float32):
        """Teacher logits (B, C) or None, and {layer: hidden states (B, width, D)} zero-padded."""
        rows = indices.tolist()
        logits = torch.from_numpy(self.logits[rows]).to(dtype) if self.logits is not None else None
        hidden = {}
        for k, array in self.hidden.items():
            out = np.zeros((len(rows), width, array.shape[1]), dtype=np.float32)
            for j, row in enumerate(rows):
                start, end = self.offsets[row], self.offsets[row + 1]
                out[j, : end - start] = array[start:end]
            hidden[k] = torch.from_numpy(out).to(dtype)
        return logits, hidden
