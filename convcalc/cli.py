"""The ``convcalc`` command line: thin commands over the library's functions.

Heavy imports (torch, textual) happen inside the commands that need them, so ``convcalc shape``
starts fast. Results go to stdout, diagnostics to stderr. ``main()`` is the one place that
turns an expected error (``ConvcalcError``, a usage error, Ctrl-C) into a message and exit 1.
"""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console

from convcalc import __version__
from convcalc.errors import ConvcalcError

# Piped output is 120 columns wide (rich would pick 80), so tables do not wrap in files and CI.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
stdout = Console(highlight=False, width=_PIPE_WIDTH)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _input_shape(value: str | None) -> tuple[int, int, int] | None:
    """``--input 1x28x28`` (C×H×W) or ``28x28`` (H×W, channels from the spec)."""
    if value is None:
        return None
    parts = value.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        dims = ()
    if len(dims) not in (2, 3) or min(dims, default=0) < 1:
        raise click.BadParameter(f"{value!r}: give CxHxW (e.g. 1x28x28) or HxW, positive integers")
    return dims  # type: ignore[return-value]


def _load(spec_path: str, input_override: tuple[int, ...] | None = None):
    from convcalc.spec import load_spec

    network = load_spec(spec_path)
    if input_override is not None:
        shape = input_override if len(input_override) == 3 else (network.input[0], *input_override)
        network = network.model_copy(update={"input": tuple(shape)})
    return network


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="convcalc")
def cli() -> None:
    """convcalc: convolution arithmetic for PyTorch CNNs, from a small YAML spec.

    Output shapes, parameters, MACs, memory and receptive fields before any model exists;
    then proven against real torch (check), exported (export), trained (train), and
    designed interactively (tui).
    """


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--input", "input_size", metavar="CxHxW", help="Override the spec's input size (e.g. 3x32x32).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable machine interface).")
@click.option("--explain", is_flag=True, help="Show each layer's formulas with the numbers put in.")
def shape(spec: str, input_size: str | None, as_json: bool, explain: bool) -> None:
    """Output shape, params, MACs and receptive field of every layer of SPEC.

    Exit code 1 when the spec is invalid or a layer is impossible (errors on stderr).
    """
    from convcalc import render
    from convcalc.engine import analyze

    network = _load(spec, _input_shape(input_size))
    analysis = analyze(network)
    if as_json:
        _print_json(render.to_json(analysis))
    else:
        stdout.print(render.layer_table(analysis))
        stdout.print(render.totals_text(analysis))
        if explain:
            stdout.print()
            stdout.print(render.explain_text(analysis), markup=False)
    if analysis.warnings and not as_json:
        stderr.print(render.problems_text(analysis.warnings, "warning"), style="yellow", markup=False)
    if analysis.errors:
        stderr.print(render.problems_text(analysis.errors, "error"), style="red", markup=False)
        sys.exit(1)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of spec files (for editor completion and checking)."""
    from convcalc.spec import json_schema

    _print_json(json_schema())


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs a command; expected errors become a message and exit code 1."""
    try:
        rc = cli.main(args=argv, prog_name="convcalc", standalone_mode=False)
    except ConvcalcError as error:
        stderr.print(f"error: {error}", style="red", markup=False, highlight=False)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(1)
    except (KeyboardInterrupt, click.Abort):
        stderr.print("interrupted", style="red")
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()  # `convcalc shape x | head`: the reader left, nothing to report
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)

