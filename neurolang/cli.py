"""The ``neurolang`` command: one sub-command per job, a thin layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Spiking language models: define once, compile to snnTorch / Norse / PyTorch.",
)
console = Console(width=max(Console().width, 120))


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _model_config(config: Path | None, preset_name: str, overrides: list[str]):
    from neurolang.config import load_model_config, parse_override, preset

    base = load_model_config(config) if config else preset(preset_name)
    return base.with_overrides(dict(parse_override(o) for o in overrides)) if overrides else base


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
            ", ".join(b.kinds), ", ".join(b.resets), " ".join(b.comparisons),
            ", ".join(b.surrogates), ", ".join(str(d) for d in b.detach_reset),
        )
    console.print(table)
    for b in BACKENDS.values():
        for note in b.notes:
            console.print(f"[bold]{b.name}[/]: {note}", highlight=False)


@app.command()
def parity(
    backends: str = typer.Option("torch,snntorch,norse", help="Comma-separated backends."),
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

    from neurolang.backends import BackendError
    from neurolang.config import ConfigError
    from neurolang.parity import print_report, run_parity

    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in dtypes:
        _fail(f"--dtype must be float64 or float32, got {dtype!r}")
    names = [b.strip() for b in backends.split(",") if b.strip()]
    try:
        model_config = _model_config(config, preset, set_)
        report = run_parity(model_config, names, seed=seed, dtype=dtypes[dtype],
                            batch_size=batch_size)
    except (ConfigError, BackendError) as err:
        _fail(str(err))
    print_report(report, console)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(f"report written to {json_out}")
    if report.total_mismatches:
        raise typer.Exit(1)


def _register_commands() -> None:
    from neurolang.distill import commands as distill_commands
    from neurolang.energy import commands as energy_commands

    distill_commands.register(app, _fail)
    energy_commands.register(app, _fail)


_register_commands()


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="neurolang")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
