"""The ``energy`` command: ``register(app, fail)`` adds it to a Typer app."""

from __future__ import annotations

from pathlib import Path

import typer

from neurolang.errors import reporting_commands


def register(app: typer.Typer, fail) -> None:
    command = reporting_commands(app, fail)

    @command()
    def energy(
        model_dir: Path = typer.Argument(..., help="A trained neurolang model folder."),
        simulators: str = typer.Option(
            "torch,snntorch,norse", help="Comma-separated: torch, snntorch, norse, lava."),
        dataset: str = typer.Option("sst2", help="Task name, hub name or local file(s)."),
        split: str = typer.Option("validation", help="validation (alias dev) or train."),
        samples: int = typer.Option(None, help="Count a seeded random subset of N samples "
                                               "(default: the whole split)."),
        output: Path = typer.Option(Path("runs/energy"), "--output", "-o",
                                    help="Folder for energy.json and the PNG charts."),
        energy_config: Path = typer.Option(
            None, help="TOML file of extra energy models ([models.NAME] tables; see "
                       "examples/energy.toml)."),
        models: str = typer.Option(
            None, help="Comma-separated energy models to report (default: cmos45, cmos45-lif, "
                       "loihi and every model of --energy-config)."),
        teacher: str = typer.Option(
            None, help="Teacher folder or name (default: the one recorded in the model "
                       "folder; 'none' to skip)."),
        data_dir: Path = typer.Option(None, help="Data folder (default: $NEUROLANG_DATA_DIR "
                                                 "or ../shared/data)."),
        dtype: str = typer.Option("float64", help="float64 (identical spikes on every "
                                                  "backend) or float32."),
        batch_size: int = typer.Option(32, help="Samples per batch (padding is not counted)."),
        max_length: int = typer.Option(None, help="Truncate samples to this many tokens "
                                                  "(default: the model's max_length)."),
        seed: int = typer.Option(0, help="Seed of the --samples subset."),
        lava_fixed_point: bool = typer.Option(False, help="Run Lava in fixed point (bit-"
                                                          "accurate Loihi) instead of float."),
        neurobench: bool = typer.Option(True, help="Also count the first torch-side run with "
                                                   "NeuroBench's SynapticOperations."),
    ) -> None:
        """Spikes, synaptic operations, MACs and energy per sample on each simulator, counted
        from each simulator's own run, next to the teacher (rules: docs/energy.md)."""
        from rich.console import Console

        from neurolang.energy.report import run_energy
        from neurolang.outputs import claim_folder

        claim_folder(output, ["energy"], what="--output")
        console = Console(width=max(Console().width, 140))
        chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
        report = run_energy(
            model_dir, simulators, dataset=dataset, split=split, samples=samples,
            data_dir=data_dir, teacher=teacher, energy_config=energy_config,
            energy_models=chosen, dtype=dtype, batch_size=batch_size,
            max_length=max_length, seed=seed, lava_fixed_point=lava_fixed_point,
            neurobench=neurobench, console=console)
        report.print(console)
        written = report.write(output)
        console.print("written: " + ", ".join(str(p) for p in written), highlight=False)

    @command("energy-chart")
    def energy_chart_command(
        reports: list[Path] = typer.Argument(..., help="energy.json files (or folders holding "
                                             "one) of `neurolang energy`, one per student."),
        output: Path = typer.Option(Path("runs/tradeoff"), "--output", "-o",
                                    help="Folder for tradeoff.png and tradeoff.md."),
        label: list[str] = typer.Option(None, "--label", help="A name per report, in order "
                                        "(default: the model folder's name)."),
    ) -> None:
        """Students on one accuracy-vs-energy plane (energy as a share of the teacher's, one
        panel per energy model), with the LIF student and the teacher beside them."""
        from neurolang.energy.tradeoff import energy_chart
        from neurolang.outputs import claim_folder

        claim_folder(output, ["tradeoff"], what="--output")
        result = energy_chart(reports, output, label or None)
        typer.echo(result["table"], nl=False)
        if not result["same_samples"]:
            typer.echo("note: the reports count different numbers of samples")
        typer.echo(f"written: {output / 'tradeoff.png'}, {output / 'tradeoff.md'}")
