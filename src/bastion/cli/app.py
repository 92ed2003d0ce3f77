"""The ``bastion`` command line: parses arguments, calls the Python API, prints the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion._version import __version__
from bastion.core.errors import ConfigError
from bastion.core.threat_model import Norm, Severity

app = typer.Typer(
    name="bastion",
    help="Machine-learning security: attack a model like an attacker would, then harden it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

_SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def _floats(option: str, text: str | None, count: int | None = None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"Expected {option} to be comma-separated numbers, but got {text!r}"
        ) from None
    if not values or (count is not None and len(values) != count):
        want = f"{count} comma-separated numbers" if count else "comma-separated numbers"
        raise ConfigError(f"Expected {option} to be {want}, but got {text!r}")
    return values


@app.command()
def version() -> None:
    """Print bastion's version."""
    console.print(f"bastion {__version__}")


@app.command()
def assess(
    model: Annotated[
        str,
        typer.Option(
            help="zoo:NAME (embedded), a .onnx file, a torch factory package.module:fn, "
            "or a scikit-learn pickle (needs --trust-pickle)."
        ),
    ] = "zoo:digits-cnn",
    data: Annotated[
        str | None,
        typer.Option(
            help="Labelled data: .npz/.npy/.csv, an image folder, or digits, digits32, "
            "digits-features, breast-cancer, wine. Default: the zoo model's held-out split."
        ),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Safetensors weights for a torch factory.")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow loading a pickled model (runs code).")
    ] = False,
    out: Annotated[Path, typer.Option(help="Directory for index.html and findings.json.")] = Path(
        "report"
    ),
    attacks: Annotated[
        str, typer.Option(help="Comma-separated attack ids: fgsm-linf, fgm-l2, pgd-linf, pgd-l2.")
    ] = "fgsm-linf,pgd-linf,pgd-l2",
    epsilons: Annotated[
        str | None, typer.Option(help="Comma-separated linf budgets, e.g. 0.05,0.1,0.2.")
    ] = None,
    l2_epsilons: Annotated[
        str | None, typer.Option(help="Comma-separated l2 budgets, e.g. 0.5,1,2.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Iterations of the iterative attacks.")] = 40,
    max_samples: Annotated[
        int | None, typer.Option(help="Attack at most this many samples.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the attacks' random starts.")] = 0,
    bounds: Annotated[
        str | None, typer.Option(help="Input range low,high (default: from the data).")
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Per-channel mean the torch/ONNX model normalises by.")
    ] = None,
    std: Annotated[
        str | None, typer.Option(help="Per-channel std the torch/ONNX model normalises by.")
    ] = None,
    standard: Annotated[
        bool,
        typer.Option(
            "--standard",
            help="Also run the standard ensemble evaluation (APGD-CE, APGD-T, FAB-T, Square; "
            "per-sample worst case) at linf 0.1. Slow: thousands of queries per robust point.",
        ),
    ] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(help="Exit 1 when a finding is at least this severe (info..critical)."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded zoo caches trained models.")
    ] = None,
) -> None:
    """Attack a model over an epsilon sweep and write an HTML + JSON report."""
    from bastion.assessment import EvasionPlan, resolve_target
    from bastion.assessment import assess as run_assessment
    from bastion.reports import write_report

    threshold = Severity.parse(fail_on, "--fail-on") if fail_on is not None else None
    eps: dict[Norm, tuple[float, ...]] = {}
    linf = _floats("--epsilons", epsilons)
    l2 = _floats("--l2-epsilons", l2_epsilons)
    plan_kwargs: dict[str, Any] = {}
    if linf or l2:
        from bastion.assessment.evasion import DEFAULT_EPSILONS

        eps = dict(DEFAULT_EPSILONS)
        if linf:
            eps[Norm.LINF] = linf
        if l2:
            eps[Norm.L2] = l2
        plan_kwargs["epsilons"] = eps
    plan = EvasionPlan(
        attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()),
        pgd_steps=steps,
        batch_size=batch_size,
        seed=seed,
        **plan_kwargs,
    )
    bounds_pair = _floats("--bounds", bounds, 2)
    with err_console.status("Loading the model and data (the zoo trains on first use)..."):
        target = resolve_target(
            model,
            data,
            weights=weights,
            trust_pickle=trust_pickle,
            bounds=(bounds_pair[0], bounds_pair[1]) if bounds_pair else None,
            mean=_floats("--mean", mean),
            std=_floats("--std", std),
            batch_size=batch_size,
            max_samples=max_samples,
            cache_dir=cache_dir,
        )
    err_console.print(
        f"Target [bold]{target.model_name}[/] on [bold]{target.data_name}[/] "
        f"({len(target.data)} samples, access {target.model.access.value})"
    )
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        result = run_assessment(
            target.model,
            target.data,
            plan=plan,
            model_name=target.model_name,
            standard=("linf",) if standard else (),
            progress=on_progress,
        )
    paths = write_report(result, out)
    _print_summary(result)
    console.print(f"Report: {paths['html']}  Findings: {paths['json']}")
    worst = result.worst_severity
    if threshold is not None and worst is not None and worst.rank >= threshold.rank:
        err_console.print(
            f"[bold red]policy:[/] a finding is {worst.value}, "
            f"at or above --fail-on {threshold.value}"
        )
        raise typer.Exit(1)


def _print_summary(result: Any) -> None:
    table = Table(title="Accuracy under attack", title_justify="left")
    for column in ("attack", "norm", "epsilon", "clean acc.", "robust acc.", "seconds"):
        table.add_column(column, justify="left" if column in ("attack", "norm") else "right")
    for p in sorted(result.sweep, key=lambda p: (p.attack, p.epsilon)):
        table.add_row(
            p.attack,
            p.norm.value,
            f"{p.epsilon:g}",
            f"{p.clean_accuracy:.3f}",
            f"{p.robust_accuracy:.3f}",
            f"{p.seconds:.2f}",
        )
    console.print(table)
    skipped = result.target.get("skipped_attacks") or []
    if skipped:
        console.print(
            f"[dim]Skipped (the model does not grant the access they need): {', '.join(skipped)}[/]"
        )
    for f in sorted(result.findings, key=lambda f: -f.severity.rank):
        style = _SEVERITY_STYLE[f.severity.value]
        console.print(f"[{style}]{f.severity.value:>8}[/]  {f.title}", highlight=False)


def _register_commands() -> None:
    """Command groups that live in their own modules, each with ``register(app)``."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


#: Modules under bastion.cli that add commands; each defines ``register(app: typer.Typer)``.
COMMAND_MODULES: tuple[str, ...] = (
    "bastion.cli.scan",
    "bastion.cli.audit",
    "bastion.cli.manifest",
    "bastion.cli.serve",
)
_register_commands()
