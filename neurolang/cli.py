"""The ``neurolang`` command: one sub-command per job, a thin layer over the library."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from neurolang.errors import reported

console = Console(width=max(Console().width, 120))


def _fail(message: str, code: int = 2) -> None:
    # the message is plain text: brackets in it (``[distill]``) are not rich markup
    console.print(Text.assemble(("error: ", "bold red"), message), highlight=False,
                  soft_wrap=True)
    raise typer.Exit(code)


def os_error_message(err: OSError) -> str:
    """``cannot write 'x/energy.json': permission denied`` from any ``OSError``."""
    reason = (err.strerror or str(err) or type(err).__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    where = f" {str(err.filename)!r}" if err.filename is not None else ""
    if err.filename2 is not None:
        where += f" -> {str(err.filename2)!r}"
    hints = {IsADirectoryError: "; a file name was expected",
             NotADirectoryError: "; a folder was expected",
             PermissionError: "; choose a path you can read and write"}
    hint = next((h for kind, h in hints.items() if isinstance(err, kind)), "")
    return f"{where.strip() or 'a file'}: {reason}{hint}"


def guarded(command):
    """Run a command so that bad input ends in one line, never a traceback: the project's
    errors (:class:`~neurolang.errors.NeurolangError`, and ``ValueError``) and ``OSError``
    (an unreadable file, a read-only folder, a folder for a file). The one place the
    ``neurolang`` command catches them."""
    reporting = reported(_fail)(command)

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return reporting(*args, **kwargs)
        except OSError as err:
            _fail(os_error_message(err))
        except KeyboardInterrupt:
            _fail("interrupted; a training run continues with --resume", code=130)

    return run


class App(typer.Typer):
    """A Typer app whose every command runs :func:`guarded`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(function):
            register(guarded(function))
            return function

        return decorator


app = App(
    add_completion=False,
    no_args_is_help=True,
    help="Spiking language models: define once, compile to snnTorch / Norse / PyTorch.",
)


def _model_config(config: Path | None, preset_name: str, overrides: list[str]):
    from neurolang.config import load_model_config, parse_override, preset

    base = load_model_config(config) if config else preset(preset_name)
    values = {}
    for key, value in (parse_override(o) for o in overrides):
        # "model.neuron.kind" as in training configs, or "neuron.kind"
        values[key.removeprefix("model.")] = value
    return base.with_overrides(values) if values else base


@app.command()
def backends() -> None:
    """List the training backends, whether each is installed, and what each computes."""
    from neurolang.backends import BACKENDS

    table = Table(title="neurolang backends")
    for column in ("backend", "installed", "kinds", "resets", "comparison", "surrogates",
                   "detach_reset"):
        table.add_column(column)
    for b in BACKENDS.values():
        version = b.version() if b.available() else None
        table.add_row(
            b.name,
            f"{b.library or 'torch'} {version}" if version else "[red]no[/]",
            ", ".join(f"{k} (neurolang's)" if k in b.own_kinds else k for k in b.kinds),
            ", ".join(b.resets), " ".join(b.comparisons),
            ", ".join(b.surrogates), ", ".join(str(d) for d in b.detach_reset),
        )
    console.print(table)
    for b in BACKENDS.values():
        for note in b.notes:
            console.print(f"[bold]{b.name}[/]: {note}", highlight=False)


@app.command()
def parity(
    backends: str = typer.Option("torch,snntorch,norse",
                                 help="Comma-separated: torch, snntorch, norse, lava."),
    dtype: str = typer.Option("float64", help="float64 or float32."),
    seed: int = typer.Option(0, help="Seed of weights and tokens."),
    config: Path | None = typer.Option(None, help="Model config (.toml [model] or .json)."),
    preset: str = typer.Option("tiny", help="Preset used when no --config is given."),
    set_: list[str] = typer.Option([], "--set", help="Override, e.g. --set neuron.reset=subtract"),
    batch_size: int = typer.Option(4, help="Sequences in the probe batch (with padding)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Same weights, same tokens: compare every spike of every population across backends."""
    import torch

    from neurolang.parity import print_report, run_parity

    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in dtypes:
        _fail(f"--dtype must be float64 or float32, got {dtype!r}")
    if json_out:
        from neurolang.outputs import claim_file

        claim_file(json_out, what="--json")
    if batch_size < 1:
        _fail(f"--batch-size must be >= 1, got {batch_size}")
    names = [b.strip() for b in backends.split(",") if b.strip()]
    with_lava = "lava" in names
    names = [n for n in names if n != "lava"]
    if with_lava and dtype != "float64":
        _fail("the lava comparison runs in float64 only")
    model_config = _model_config(config, preset, set_)
    report = run_parity(model_config, names, seed=seed, dtype=dtypes[dtype],
                        batch_size=batch_size)
    print_report(report, console)
    result = report.to_dict()
    mismatches = report.total_mismatches
    if with_lava:
        lava = _lava_parity(model_config, seed, batch_size)
        result["lava"] = lava
        mismatches += lava["total_count_mismatches"]
    if json_out:
        from neurolang.outputs import write_text_atomic

        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
        console.print(f"report written to {json_out}")
    if mismatches:
        raise typer.Exit(1)


def _lava_parity(model_config, seed: int, batch_size: int) -> dict:
    """The same model and batch exported to NIR and run in Lava (float), against torch."""
    from neurolang.parity_lava import lava_parity

    lava = lava_parity(model_config, seed=seed, batch_size=batch_size)
    table = Table(title="Lava (floating point) against the torch backend: spike counts per "
                        "sample and step")
    for column in ("population", "torch spikes", "lava spikes", "count mismatches"):
        table.add_column(column, justify="right")
    for layer in lava["layers"]:
        table.add_row(layer["population"], str(layer.get(lava["reference"], "-")),
                      str(layer.get(lava["other"], "-")), str(layer["count_mismatches"]))
    console.print(table)
    console.print(f"lava: total count mismatches {lava['total_count_mismatches']}, prediction "
                  f"agreement {lava['prediction_agreement']:.1%}, logits max |diff| "
                  f"{lava['logits_max_abs_diff']:.1e}")
    return lava


def _register_commands() -> None:
    from neurolang import bench
    from neurolang.distill import commands as distill_commands
    from neurolang.energy import commands as energy_commands
    from neurolang.export import commands as export_commands
    from neurolang.lava import commands as lava_commands
    from neurolang.teachers import commands as teacher_commands

    distill_commands.register(app, _fail)
    export_commands.register(app, _fail)
    lava_commands.register(app, _fail)
    energy_commands.register(app, _fail)
    teacher_commands.register(app, _fail)
    bench.register(app, _fail)


_register_commands()


def main() -> None:  # pragma: no cover - console entry point
    from neurolang.progress import quiet_library_bars

    quiet_library_bars()
    app(prog_name="neurolang")


if __name__ == "__main__":  # pragma: no cover
    main()
