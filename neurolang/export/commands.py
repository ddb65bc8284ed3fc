"""CLI sub-commands ``export`` and ``import`` (``setup-lava`` and ``simulate`` are in
``neurolang.lava.commands``).

``register(app, fail)`` adds them to a ``typer.Typer`` (``neurolang.cli`` wires it in).
Errors are one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from neurolang.errors import reporting_commands

console = Console(width=max(Console().width, 120))


def register(app: typer.Typer, fail) -> None:
    """Add ``export`` and ``import`` to ``app``; ``fail(message)`` reports bad input (one
    line, non-zero exit)."""
    _fail = fail
    command = reporting_commands(app, fail)

    @command("export")
    def export_command(
        model_dir: Path = typer.Argument(..., help="A model folder (neurolang.checkpoint."
                                         "save_pretrained) of any family."),
        output: Path = typer.Option(..., "-o", "--output", help="The file to write."),
        format: str = typer.Option("nir", "--format", help="Only 'nir'."),
        strict: bool = typer.Option(False, "--strict",
                                    help="Refuse models that need neurolang extension nodes."),
        dt: float = typer.Option(1e-4, "--dt", help="Time step the LIF parameters assume "
                                 "(snnTorch's importer assumes 1e-4)."),
    ) -> None:
        """Export a model folder as a NIR graph (standard nodes + neurolang extensions)."""
        if format != "nir":
            _fail(f"--format must be 'nir', got {format!r}")
        if not dt > 0 or dt == float("inf"):
            _fail(f"--dt must be a finite time step > 0, got {dt}")
        from neurolang.outputs import claim_file

        claim_file(output, what="-o", suffixes=(".nir",))
        from neurolang.checkpoint import from_pretrained
        from neurolang.export.nir_export import to_nir
        from neurolang.nir.io import write_nir

        model = from_pretrained(model_dir).double().eval()
        graph = to_nir(model, strict=strict, dt=dt)
        graph.metadata["neurolang.source"] = str(Path(model_dir).resolve())
        write_nir(graph, output)
        ext = json.loads(graph.metadata["neurolang.extensions"])
        console.print(f"wrote {output}: {'standard NIR only' if not ext else 'extensions ' + ', '.join(ext)}"
                      f"; dt = {dt}", highlight=False)

    @command("import")
    def import_command(
        nir_file: Path = typer.Argument(..., help="A neurolang NIR file."),
        output: Path = typer.Option(..., "-o", "--output", help="The model folder to write."),
        tokenizer: Path | None = typer.Option(None, help="Tokenizer folder to save with it "
                                              "(default: the exported model's, if found)."),
    ) -> None:
        """Rebuild a model folder from a neurolang NIR file."""
        try:
            from neurolang.nir.errors import NIRError
            from neurolang.nir.io import (
                TOKENIZER_FILES,
                has_tokenizer,
                read_metadata,
                read_nir,
                tokenizer_folder,
            )
            from neurolang.outputs import claim_folder

            claim_folder(output, ["model"], what="-o")
            if tokenizer is not None and not has_tokenizer(tokenizer):
                raise NIRError(f"--tokenizer {str(tokenizer)!r} holds no tokenizer files "
                               f"({', '.join(TOKENIZER_FILES)})")
            from neurolang.checkpoint import save_pretrained
            from neurolang.export.nir_export import from_nir_graph

            graph = read_nir(nir_file)
            meta = read_metadata(graph)
            model = from_nir_graph(graph)
            if meta["neurolang.model"] == "pooled_classifier":
                save_pretrained(model, output,
                                metadata={"imported_from": str(Path(nir_file).resolve())})
                console.print(f"wrote {output}", highlight=False)
                return
            if meta["neurolang.model"] != "spikformer":
                raise NIRError(f"cannot write a folder for a {meta['neurolang.model']}")
            tok = None
            source = tokenizer or tokenizer_folder(nir_file, meta)
            if source is not None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(source))
            save_pretrained(model, output, tokenizer=tok,
                            metadata={"imported_from": str(Path(nir_file).resolve())})
        except OSError as err:
            _fail(f"cannot load the tokenizer: {err}")
        console.print(f"wrote {output}", highlight=False)
