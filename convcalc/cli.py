"""The ``convcalc`` command line: thin commands over the library's functions.

Heavy imports (torch, textual) happen inside the commands that need them, so ``convcalc shape``
starts fast. Results go to stdout, diagnostics to stderr. ``main()`` is the one place that
turns an expected error (``ConvcalcError``, a usage error, Ctrl-C) into a message and exit 1.
"""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from convcalc import __version__
from convcalc.errors import ConvcalcError

# Piped output is 120 columns wide (rich would pick 80), so tables do not wrap in files and CI.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120


class _TrimmedStdout:
    """``sys.stdout`` (looked up at each write) without spaces at the ends of lines: rich pads a
    table's title, and some text, to the table's width, which piped output and files keep."""

    def __init__(self) -> None:
        self._spaces = ""  # the spaces after the last text written: dropped if a newline follows

    def write(self, text: str) -> int:
        text = self._spaces + text
        body, newline, tail = text.rpartition("\n")
        kept = tail.rstrip(" ")
        self._spaces = tail[len(kept) :]
        lines = "\n".join(line.rstrip(" ") for line in body.split("\n")) + newline if newline else ""
        sys.stdout.write(lines + kept)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", "utf-8")


# emoji=False: a ':name:' in a spec's text stays text (and rich's emoji table is not loaded)
stdout = Console(
    highlight=False, emoji=False, width=_PIPE_WIDTH, file=None if sys.stdout.isatty() else _TrimmedStdout()
)
stderr = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def _print_table(table) -> None:
    """A table on stdout; piped, as wide as it needs (at least 120 columns), never cut."""
    if _PIPE_WIDTH is not None:
        from rich.measure import Measurement

        # the table's natural width (table.min_width is only a floor one may set, None here)
        natural = Measurement.get(stdout, stdout.options.update_width(1_000_000), table).maximum
        stdout.width = max(_PIPE_WIDTH, natural)
    stdout.print(table)


def _print_layer_table(analysis, depth: int | None) -> None:
    """``shape``'s table, drawn line by line (``render.table_lines``: rich's layout of 10,000 rows
    takes 18 s) whenever it fits: piped always; in a terminal narrower than the table, rich's
    table, which shrinks the text columns to fit."""
    from rich.text import Text

    from convcalc import render

    lines = render.table_lines(analysis, depth)
    width = len(lines[1][0])  # the top rule: the table's width
    if _PIPE_WIDTH is None and width > stdout.width:
        _print_table(render.layer_table(analysis, depth))
        return
    if _PIPE_WIDTH is not None:
        stdout.width = max(_PIPE_WIDTH, width)  # as _print_table: the totals below wrap alike
    if stdout.color_system is None:
        click.echo("\n".join(text for text, _ in lines))
        return
    styled = [Text(text, style or "") for text, style in lines]
    styled[0].stylize("italic")  # rich's table.title style
    stdout.print(Text("\n").join(styled), crop=False, no_wrap=True)


def _input_shape(value: str | None) -> tuple[int, ...] | None:
    """``--input 1x28x28`` (the whole input: C×H×W, C×L or C×D×H×W) or ``28x28`` (the spatial
    sizes only, channels from the spec); ``_load`` matches it to the spec's dimensionality."""
    if value is None:
        return None
    parts = value.lower().replace("×", "x").split("x")
    # ASCII digits only: int() would also take "1_0", " 28" and full-width "２８"
    dims = tuple(int(part) for part in parts) if all(p.isascii() and p.isdigit() for p in parts) else ()
    if not 1 <= len(dims) <= 4 or min(dims, default=0) < 1:
        raise ConvcalcError(
            f"--input {value!r}: give CxHxW (e.g. 1x28x28) or HxW, positive integers "
            "(CxL or CxDxHxW for 1-D and 3-D specs)"
        )
    return dims


def _load(spec_path: str, input_override: tuple[int, ...] | None = None, plain: bool = False):
    """The spec at SPEC_PATH, or read from standard input when it is ``-``.

    ``plain``: a plainly valid spec is not handed to Pydantic (``specfile.plain_network``, for
    ``shape``, which needs no model class); anything else is, and its messages are Pydantic's.
    """
    from convcalc import specfile

    if ":" in spec_path and not os.path.exists(spec_path):  # a model TARGET, not a file (convcalc import)
        from convcalc.importer import import_target

        return import_target(spec_path, input_override)
    source = "<stdin>" if spec_path == "-" else spec_path
    text = specfile.read_stdin() if spec_path == "-" else specfile.read_spec(spec_path)
    data, layer_lines = specfile.parse_text(text, source)
    network = specfile.plain_network(data) if plain else None
    if network is None:
        from convcalc.spec import network_from_data

        network = network_from_data(data, source, layer_lines)
    if input_override is not None:
        rank = len(network.input)
        if len(input_override) not in (rank, rank - 1) or rank == 1 and len(input_override) != 1:
            spec_form = {1: "F", 2: "CxL or L", 3: "CxHxW or HxW", 4: "CxDxHxW or DxHxW"}[rank]
            raise ConvcalcError(
                f"--input {'x'.join(map(str, input_override))}: this spec's input is "
                f"{'x'.join(map(str, network.input))}; give {spec_form}"
            )
        shape = input_override if len(input_override) == rank else (network.input[0], *input_override)
        if hasattr(network, "model_copy"):
            network = network.model_copy(update={"input": tuple(shape)})
        else:
            network.input = tuple(shape)  # the plain namespace this call made
    return network


def _print_json(data: dict) -> None:
    import json

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
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    metavar="N",
    help="Fold blocks and groups nested deeper than N levels into one row each (e.g. 1: layer1, layer2).",
)
def shape(spec: str, input_size: str | None, as_json: bool, explain: bool, depth: int | None) -> None:
    """Output shape, params, MACs and receptive field of every layer of SPEC.

    SPEC is a .yaml or .json file, or - to read it from standard input. Exit code 1 when the
    spec is invalid or a layer is impossible (errors on stderr).
    """
    import gc

    from convcalc import render
    from convcalc.engine import analyze

    # A one-shot command over tens of thousands of small acyclic objects (YAML nodes, layers,
    # rows): the cyclic collector would only rescan them, a fifth of a 10,000-layer spec's time.
    gc.disable()
    network = _load(spec, _input_shape(input_size), plain=True)
    analysis = analyze(network)
    if as_json:
        _print_json(render.to_json(analysis))
    else:
        _print_layer_table(analysis, depth)
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


@cli.command(name="check")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--input", "input_size", metavar="CxHxW", help="Override the spec's input size (e.g. 3x32x32).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON object.")
@click.option("--memory", is_flag=True, help="Also compare training memory (saved tensors, optimizers).")
def check_command(spec: str, input_size: str | None, as_json: bool, memory: bool) -> None:
    """Prove the engine's numbers on the real torch model of SPEC.

    Compares every layer's output shape, params and buffers, MACs (FlopCounterMode), receptive
    field (gradient probe) and torchinfo's shapes and total; with --memory also what autograd
    saves (at batch 2 and 3), the gradients and each optimizer's state after one step. Exit code
    0 when all agree, 1 on any mismatch (each one named) or an invalid spec.
    """
    import dataclasses

    from convcalc import check

    network = _load(spec, _input_shape(input_size))
    report = check.check(network)
    if memory:
        from convcalc.memcheck import memory_comparisons

        extra = tuple(memory_comparisons(network))
        report = dataclasses.replace(report, comparisons=report.comparisons + extra)
    if as_json:
        _print_json(check.report_json(report))
    else:
        stdout.print(check.report_table(report))
        stdout.print(check.report_text(report), markup=False)
    if not report.ok:
        sys.exit(1)


@cli.command(name="memory")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--input", "input_size", metavar="CxHxW", help="Override the spec's input size (e.g. 3x32x32).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per batch.  [default: 128, as train]")
@click.option("--optimizer", type=click.Choice(["sgd", "sgd-momentum", "adam", "adamw"]), default="adam",
              show_default=True, help="Its state: none, 1 or 2 copies of the parameters.")  # fmt: skip
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32",
              show_default=True, help="Dtype of the parameters and activations.")  # fmt: skip
@click.option("--amp", is_flag=True, help="Autocast to bfloat16 (float32 parameters), as measured on CPU.")
@click.option("--budget", metavar="SIZE", help="Find the largest batch whose training peak fits, e.g. 8GiB.")
@click.option("-o", "--output", metavar="FILE.png", help="With --budget: draw the peak against batch size.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def memory_command(spec: str, input_size: str | None, batch_size: int | None, optimizer: str, dtype: str,
                   amp: bool, budget: str | None, output: str | None, as_json: bool) -> None:  # fmt: skip
    """Training memory of SPEC (a file, -, or package.module:name), before any model exists.

    Per layer, the bytes autograd keeps for the backward pass; for the network, parameters,
    gradients, optimizer state, saved activations, the largest transient and the training peak
    (and the inference peak apart). SPEC needs no torch unless it is a TARGET to import.
    """
    from convcalc import memory as M
    from convcalc.engine import analyze

    if output and not budget:
        raise click.UsageError("-o draws the --budget curve; give --budget too, e.g. --budget 8GiB")
    if output:
        from convcalc.files import check_writable

        check_writable(output, "-o", "curve.png")
    limit = M.parse_bytes(budget) if budget else None
    mem = M.training_memory(analyze(_load(spec, _input_shape(input_size))), optimizer, dtype, amp)
    batch = batch_size or M.DEFAULT_BATCH
    data = M.to_json(mem, batch, limit)  # raises for a budget too small, before anything is written
    if output:
        M.write_curve_png(output, mem, limit)
        stderr.print(f"wrote {output}", markup=False)
    if as_json:
        _print_json(data)
        return
    _print_table(M.table(mem, batch))
    stdout.print(M.totals_text(mem, batch), markup=False)
    if limit is not None:
        stdout.print(M.budget_text(mem, limit), markup=False)


@cli.command(name="export")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
def export_command(spec: str, output: str | None) -> None:
    """Write SPEC as standalone PyTorch source: an nn.Module subclass needing only torch."""
    from convcalc.export import export_source  # text only: no torch import
    from convcalc.files import check_writable, write_atomically

    if output is not None:
        check_writable(output, "-o", "model.py")  # before the spec is read and torch loads
    source = export_source(_load(spec))
    if output is None:
        click.echo(source, nl=False)
    else:
        write_atomically(output, source)
        stderr.print(f"wrote {output}", markup=False)


@cli.command(name="import")
@click.argument("target")
@click.option(
    "--input", "input_size", metavar="CxHxW", help="The input size, when the model does not imply one."
)
@click.option("--arg", "arguments", multiple=True, metavar="KEY=VALUE",
              help="A keyword argument for TARGET (a YAML scalar: 10, true, 0.5); repeatable.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=str), metavar="FILE", help="Write it to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON instead of YAML.")
def import_command(target: str, input_size: str | None, arguments: tuple[str, ...], output: str | None,
                   as_json: bool) -> None:  # fmt: skip
    """Write the spec of an existing PyTorch model.

    TARGET is package.module:name (a class or a function returning an nn.Module, called with
    no arguments but --arg), e.g. torchvision.models:resnet50, or path/to/file.py:Net.
    Importing TARGET runs its code, as Python's import does. The spec keeps the model's module
    names, so its generated model has the same state_dict keys and shapes.
    """
    import json

    import yaml

    from convcalc.files import check_writable, write_atomically
    from convcalc.importer import import_target
    from convcalc.spec import dump_spec, spec_to_data

    if output:
        check_writable(output, "-o", "spec.yaml")  # before the model is imported and traced

    kwargs = {}
    for item in arguments:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(
                f"{item!r}: give KEY=VALUE, e.g. --arg num_classes=10", param_hint="--arg"
            )
        try:
            kwargs[key] = yaml.safe_load(value) if value else ""
        except (yaml.YAMLError, ValueError) as error:  # ValueError: an int past Python's 4,300 digits
            raise click.BadParameter(
                f"{item[:80]!r}: VALUE is not a YAML value ({str(error).splitlines()[0]}); "
                "e.g. --arg num_classes=10 or --arg name='a b'",
                param_hint="--arg",
            ) from None
    network = import_target(target, _input_shape(input_size), kwargs)
    text = json.dumps(spec_to_data(network), indent=2) + "\n" if as_json else dump_spec(network)
    if output:
        write_atomically(output, text)
        stderr.print(f"wrote {output}", markup=False)
    else:
        click.echo(text, nl=False)


@cli.command(name="draw")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, metavar="FILE",
              help="FILE.svg, .png, .pdf (these two: draw extra), .dot; - for SVG on stdout.")  # fmt: skip
@click.option("--style", type=click.Choice(["blocks", "graph"]),
              help="blocks: feature maps in perspective; graph: one node per layer. "
              "[default: blocks for a plain stack, graph for a graph]")  # fmt: skip
@click.option("--depth", type=click.IntRange(min=1), metavar="N",
              help="Fold blocks nested deeper than N levels into one node each (shape --depth).")  # fmt: skip
@click.option("--title", help="The heading (default: the spec's name).")
@click.option("--no-params", is_flag=True, help="Leave out params and MACs.")
@click.option("--theme", type=click.Choice(["light", "dark"]), default="light", show_default=True)
@click.option("--input", "input_size", metavar="CxHxW", help="Override the spec's input size (e.g. 3x32x32).")
def draw_command(spec: str, output: str, style: str | None, depth: int | None, title: str | None,
                 no_params: bool, theme: str, input_size: str | None) -> None:  # fmt: skip
    """Draw SPEC (a spec file, - for standard input, or a model TARGET) as SVG, PNG, PDF or
    Graphviz source. Every number is the engine's; a spec file needs no torch."""
    from convcalc import draw
    from convcalc.engine import analyze
    from convcalc.files import check_writable, write_atomically

    kind = draw.output_kind(output)  # a wrong suffix fails before any work
    if output != "-":
        check_writable(output, "-o", "network.svg")
    analysis = analyze(_load(spec, _input_shape(input_size), plain=True))
    if kind == "dot":
        data = draw.dot_text(analysis, depth, title, not no_params).encode("utf-8")
    else:
        style = style or draw.default_style(analysis)
        svg = draw.svg_text(analysis, style, depth, title, not no_params, theme)
        data = svg.encode("utf-8") if kind == "svg" else draw.convert(svg, kind)
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        write_atomically(output, data)
        stderr.print(f"wrote {output}", markup=False)
    if analysis.warnings:
        from convcalc.render import problems_text

        stderr.print(problems_text(analysis.warnings, "warning"), style="yellow", markup=False)


@cli.command(name="summary")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--input", "input_size", metavar="CxHxW", help="Override the spec's input size (e.g. 3x32x32).")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    metavar="N",
    help="Nesting levels of blocks and groups shown (torchinfo's depth).",
)
def summary_command(spec: str, input_size: str | None, depth: int) -> None:
    """torchinfo's own summary of the model built from SPEC (batch of 1)."""
    from convcalc.check import torchinfo_summary, torchinfo_text

    click.echo(torchinfo_text(torchinfo_summary(_load(spec, _input_shape(input_size)), depth=depth)))


@cli.command(name="solve")
@click.option("--in", "in_size", required=True, metavar="N|HxW", help="Input size: 28 (one axis) or 28x32.")
@click.option("--out", "out_size", metavar="N|HxW", help="Wanted output size: list the layers that give it.")
@click.option("--rf", type=int, metavar="N", help="Wanted receptive field: propose stacks.")
@click.option("--kernel", metavar="K|KHxKW", help="Fix kernel_size (default: search 1 to max(11, r)).")
@click.option("--stride", metavar="S|SHxSW", help="Fix stride (default: search 1 to max(4, r)).")
@click.option("--dilation", metavar="D|DHxDW", help="Fix dilation (default: 1).")
@click.option("--transposed", is_flag=True, help="ConvTranspose2d (upsampling) settings.")
@click.option("--pool", type=click.Choice(["max", "avg"]), help="Pool settings instead of Conv2d.")
@click.option("--channels", type=int, help="With --rf: channels of stage 1, doubled per stage. [default: 64]")
@click.option(
    "--limit",
    type=int,
    help="How many settings (--out; default 40) or stacks (--rf; default 10) to show; 0: all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def solve_command(in_size: str, out_size: str | None, rf: int | None, kernel: str | None, stride: str | None,
                  dilation: str | None, transposed: bool, pool: str | None, channels: int | None,
                  limit: int | None, as_json: bool) -> None:  # fmt: skip
    """Inverse questions: which layers map a size to another, which stacks reach a receptive field.

    \b
    convcalc solve --in 28 --out 14               every Conv2d that halves 28, exact ones first
    convcalc solve --in 28x32 --out 14x16 --pool max
    convcalc solve --in 7 --out 14 --transposed    ConvTranspose2d, output_padding included
    convcalc solve --in 224 --rf 100              short stacks with that receptive field

    r = ⌈larger / smaller⌉ of the --in and --out sizes.
    """
    from convcalc import solve

    result = solve.answer(in_size, out_size, rf, kernel, stride, dilation, transposed, pool, channels, limit)
    if as_json:
        _print_json(result.to_json())
    else:
        stdout.print(result.render(), markup=False)


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=str))
def tui(spec: str | None) -> None:
    """Design SPEC interactively (live shapes, params, formulas) and train it.

    Without SPEC, starts a new spec on a 1x28x28 input; a SPEC that does not exist yet is
    created on the first save. Ctrl+Q quits (asking first about unsaved changes).
    """
    from convcalc import interrupts
    from convcalc.tui.app import ConvcalcApp, open_spec

    network, path = open_spec(spec)
    interrupts.python_default()  # a SIGINT must let the app put the terminal back (Ctrl-C is a key there)
    ConvcalcApp(network, path).run()


# ---------------------------------------------------------------------------------------------
# Training and data (convcalc.train, convcalc.data); torch is imported inside each command.

_RECIPE_OPTIONS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "limit",
                   "val_fraction", "resize", "augment")  # fmt: skip


class _Downloads:
    """Download progress on stderr: a transient rich bar on a terminal (started at the first
    byte, so nothing shows when nothing is downloaded), else one line per finished file."""

    def __init__(self) -> None:
        self.bar = None
        self.tasks: dict[str, int] = {}

    def update(self, file: str, done: int, total: int | None) -> None:
        if not stderr.is_terminal:
            if total is not None and done == total:
                stderr.print(f"downloaded {file} ({total:,} bytes)", markup=False)
            return
        if self.bar is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self.bar = Progress(*columns, console=stderr, transient=True)
            self.bar.start()
        if file not in self.tasks:
            self.tasks[file] = self.bar.add_task(f"downloading {file}", total=total)
        self.bar.update(self.tasks[file], completed=done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> _Downloads:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None  # NaN -> null in JSON


def _epoch_line(metrics, total: int) -> str:
    return (
        f"epoch {metrics.epoch}/{total}  train loss {metrics.train_loss:.4f}  "
        f"test loss {metrics.test_loss:.4f}  test accuracy {metrics.test_accuracy:.2%}  "
        f"{metrics.images_per_second:,.0f} img/s  {metrics.seconds:.1f} s"
    )


def _result_line(result) -> str:
    """The closing line of a training run: accuracy after the last completed epoch (singular for one)."""
    epochs = result.epochs[-1].epoch
    return (
        f"test accuracy {result.test_accuracy:.2%} (loss {result.test_loss:.4f}) after "
        f"{epochs} epoch{'' if epochs == 1 else 's'}, {result.seconds:.1f} s, "
        f"{result.images_per_second:,.0f} img/s"
    )


def _without_nproc(args: list[str]) -> list[str]:
    """The command line minus ``--nproc N``: what each of the N processes runs."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


@cli.command(name="train")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--dataset",
    type=click.Choice(["mnist", "fashion-mnist", "kmnist", "cifar10", "folder"]),
    default="mnist",
    show_default=True,
    help="The data set to train and test on; folder: --data-dir DIR with one subfolder per class.",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="The data set's folder (default: $CONVCALC_DATA/<dataset>, then "
    "~/.cache/convcalc/<dataset>); missing files are downloaded into it. With --dataset folder: "
    "the folder of class subfolders (or of train/ and val/ holding them).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Total epochs of the run.  [default: 8]")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per batch.  [default: 128]")
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    help="Peak learning rate of the schedule.  [default: 0.005]",
)
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), help="[default: adam]")
@click.option(
    "--schedule",
    type=click.Choice(["onecycle", "cosine", "constant"]),
    help="Learning-rate schedule over the run.  [default: onecycle]",
)
@click.option("--seed", type=int, help="Seeds weights, batch order and dropout.  [default: 0]")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True
)
@click.option("--threads", type=click.IntRange(min=1),
              help="Torch CPU threads  [default: the fastest of 1, the free cores and all, "
              "timed on the run's own steps, again when they slow down].")  # fmt: skip
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="Train on the first N training images only."
)
@click.option(
    "--out",
    metavar="PATH",
    help="Checkpoint path  [default: runs/<spec name>-<dataset>.pt; with --resume, the resumed file].",
)
@click.option(
    "--resume",
    metavar="CKPT",
    type=click.Path(dir_okay=False, path_type=str),
    help="Continue this checkpoint's run where it stopped (its recipe is kept).",
)
@click.option("--no-download", is_flag=True, help="Never download; fail if the data files are missing.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), metavar="F",
              help="--dataset folder without train/ and val/: the share of each class tested on.  "
              "[default: 0.1]")  # fmt: skip
@click.option("--resize", is_flag=True, help="--dataset folder: resize images to the spec's input size.")
@click.option("--augment", metavar="flip,crop",
              help="Random horizontal flips and/or crops (4-pixel padding) of training images.")  # fmt: skip
@click.option("--amp", type=click.Choice(["bf16", "fp16"]),
              help="Mixed precision: autocast (fp16 also scales the loss).")  # fmt: skip
@click.option("--compile", "compile_model", is_flag=True,
              help="torch.compile the model (the first batches are slow).")  # fmt: skip
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="NHWC memory for 2-D inputs (NDHWC for 3-D).")  # fmt: skip
@click.option("--nproc", type=click.IntRange(min=1), metavar="N",
              help="Train in N processes on this machine (DDP via torchrun's elastic agent).")  # fmt: skip
@click.option("--plot", "plot_file", metavar="FILE",
              help="At the end, write the run's curves to FILE (.png, .pdf, .svg), as plot.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the results.")
@click.pass_context
def train_command(
    ctx: click.Context,
    spec: str,
    data_dir: str | None,
    device: str,
    threads: int | None,
    out: str | None,
    resume: str | None,
    no_download: bool,
    amp: str | None,
    compile_model: bool,
    channels_last: bool,
    nproc: int | None,
    as_json: bool,
    **recipe,
) -> None:
    """Train SPEC on MNIST (or --dataset) and save a checkpoint.

    Prints a progress bar per epoch and a line per epoch, then the test accuracy and the
    checkpoint path. Ctrl-C (or SIGTERM) stops after the current batch, saves the checkpoint
    (continue with --resume) and exits 1. Under torchrun (or with --nproc N) the processes share
    each batch; rank 0 prints and writes the checkpoint.
    """
    import json
    from dataclasses import asdict

    from click.core import ParameterSource
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from convcalc import interrupts, preflight

    given = [
        name for name in _RECIPE_OPTIONS if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    ]
    if resume and given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(
            f"{options} cannot be combined with --resume: a resumed run keeps its checkpoint's "
            "recipe; start a new run to change it"
        )
    plot_file = recipe.pop("plot_file")
    if plot_file:
        from convcalc import plot
        from convcalc.files import check_writable

        plot.check_output(plot_file)  # a wrong suffix or no matplotlib fails now, not after training
        check_writable(plot_file, "--plot", "curves.png")
    network = _load(spec)
    if recipe["augment"] is not None:
        recipe["augment"] = tuple(name.strip() for name in recipe["augment"].split(",") if name.strip())
    # every check that needs no torch, before torch loads (seconds); rank 0 alone probes --out
    checkpoint = preflight.check_request(
        network, recipe["dataset"], data_dir, not no_download, out, resume, os.environ.get("RANK", "0") == "0"
    )
    stopped = (
        f"interrupted twice: stopped at once; {checkpoint}, if there, is the checkpoint saved last, whole "
        f"(continue with: convcalc train {spec} --resume {checkpoint})"
    )
    from convcalc import distributed
    from convcalc import train as training

    config = training.TrainConfig(
        **{name: value for name, value in recipe.items() if value is not None},
        data_dir=data_dir,
        device=device,
        threads=threads,
        out=out,
        resume=resume,
        download=not no_download,
        amp=amp,
        compile=compile_model,
        channels_last=channels_last,
    )
    if not resume:  # a resumed run is checked against its checkpoint's data set, in train()
        training.check_network(network, config.dataset)  # a clear error before any data is loaded
    training._check_config(config)
    if nproc is not None and nproc > 1:  # once here, not in every process: the same checks and errors
        sys.exit(distributed.launch(nproc, _without_nproc(sys.argv[1:])))
    world = distributed.init(device)
    if world.rank != 0:  # the others train silently; their errors are named by rank
        try:
            with interrupts.graceful(stopped) as cancel:
                result = training.train(network, config, cancel=cancel)
        except ConvcalcError as error:
            raise ConvcalcError(f"rank {world.rank}: {error}") from None
        finally:
            distributed.finish()
        sys.exit(1 if result.cancelled else 0)

    lines = stderr if as_json else stdout
    downloads = _Downloads()
    # a transient bar per epoch on a terminal; piped output gets the epoch lines only
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    state: dict = {"task": None, "epochs": 0, "batches": 0}

    def on_start(epochs: int, batches: int) -> None:
        downloads.stop()
        state.update(epochs=epochs, batches=batches)

    def on_batch(epoch: int, index: int, loss: float) -> None:
        if state["task"] is None:
            bar.start()
            state["task"] = bar.add_task(f"epoch {epoch}/{state['epochs']}", total=state["batches"], loss="")
        bar.update(state["task"], completed=index + 1, loss=f"{loss:.4f}")

    def on_epoch(metrics) -> None:
        if state["task"] is not None:
            bar.remove_task(state["task"])
            bar.stop()
            state["task"] = None
        lines.print(_epoch_line(metrics, state["epochs"]), markup=False)

    def on_message(text: str) -> None:
        stderr.print(text, markup=False)

    callbacks = training.TrainCallbacks(on_start, on_batch, on_epoch, downloads.update, on_message)
    try:
        ended = f"interrupted: training had ended; {checkpoint} is as the run left it, whole"
        with interrupts.graceful(stopped, after=ended) as cancel:
            result = training.train(network, config, callbacks, cancel)
    finally:
        downloads.stop()
        bar.stop()
        distributed.finish()
    if result.epochs:
        lines.print(_result_line(result), markup=False)
    if result.checkpoint:
        lines.print(f"checkpoint: {result.checkpoint}", markup=False)
    if plot_file and result.checkpoint and result.epochs:
        plot.plot([result.checkpoint], plot_file)
        lines.print(f"plot: {plot_file}", markup=False)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "test_accuracy": _finite(result.test_accuracy),
                    "test_loss": _finite(result.test_loss),
                    "epochs": [asdict(m) for m in result.epochs],
                    "images_per_second": result.images_per_second,
                    "seconds": result.seconds,
                    "checkpoint": result.checkpoint,
                    "cancelled": result.cancelled,
                }
            )
        )
    if result.cancelled:
        message = (
            f"interrupted: stopped after the current batch; checkpoint saved to {result.checkpoint}; "
            f"continue with: convcalc train {spec} --resume {result.checkpoint}"
            if result.checkpoint
            else "interrupted before the first batch: nothing trained, no checkpoint written"
        )
        stderr.print(message, style="red", markup=False)
        sys.exit(1)
    if cancel.is_set():  # Ctrl-C during the last epoch's test or save: the run is complete, and said so
        stderr.print(
            f"interrupted after the last epoch: {result.checkpoint} is complete", style="red", markup=False
        )
        sys.exit(1)


@cli.command(name="plot")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, metavar="FILE", help="FILE.png, .pdf or .svg (plot extra).")
@click.option("--title", help="The figure's heading (default: training curves).")
def plot_command(checkpoints: tuple[str, ...], output: str, title: str | None) -> None:
    """Train and test loss and test accuracy per epoch of CHECKPOINTS, one colour per run."""
    from convcalc import plot
    from convcalc.files import check_writable

    plot.check_output(output)
    check_writable(output, "-o", "curves.png")  # before the checkpoints load (torch)
    plot.plot(list(checkpoints), output, title)
    stderr.print(f"wrote {output}", markup=False)


@cli.command(name="rf")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--layer", required=True, metavar="NAME", help="The layer whose unit is drawn (e.g. c3).")
@click.option("--unit", metavar="ROW,COL",
              help="The unit (I in 1-D, D,ROW,COL in 3-D).  [default: the centre]")  # fmt: skip
@click.option("--image", type=click.Path(dir_okay=False, path_type=str),
              help="Draw on this image (PNG, JPEG).")  # fmt: skip
@click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist", "kmnist"]),
              help="Draw on a test image.")  # fmt: skip
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which --dataset image.")  # fmt: skip
@click.option("--data-dir", metavar="DIR", help="The data set's folder (default: as for `convcalc train`).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=str),
              help="Trained weights (default: random weights, seeded).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random weights and noise.")
@click.option("-o", "--output", required=True, metavar="FILE", help="FILE.png, .pdf or .svg (plot extra).")
def rf_command(spec: str, layer: str, unit: str | None, image: str | None, dataset: str | None, index: int,
               data_dir: str | None, checkpoint: str | None, seed: int, output: str) -> None:  # fmt: skip
    """A unit's theoretical receptive field (the engine's) and effective one (a gradient heat map)."""
    from convcalc import plot, rf
    from convcalc.files import check_writable

    plot.check_output(output)
    check_writable(output, "-o", "field.png")  # before the model is built and probed
    if image and dataset:
        raise click.UsageError("give --image or --dataset, not both")
    network = _load(spec)
    ckpt = None
    if checkpoint:
        from convcalc.train import load_checkpoint

        ckpt = (checkpoint, load_checkpoint(checkpoint))
    picture = rf.input_image(tuple(network.input), image, dataset, index, data_dir)
    field = rf.receptive_field(network, layer, unit, picture, ckpt, seed)
    rf.write(field, output)
    click.echo(rf.caption(field))
    stderr.print(f"wrote {output}", markup=False)


@cli.command(name="evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("--data-dir", metavar="DIR", help="The data set's folder (default: as for `convcalc train`).")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True
)
@click.option("--no-download", is_flag=True, help="Never download; fail if the test files are missing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_command(
    checkpoint: str, data_dir: str | None, device: str, no_download: bool, as_json: bool
) -> None:
    """Test accuracy of the model in CHECKPOINT, rebuilt from the spec saved inside it."""
    from dataclasses import asdict

    from convcalc.train import evaluate_checkpoint

    with _Downloads() as downloads:
        result = evaluate_checkpoint(
            checkpoint, data_dir, device, download=not no_download, progress=downloads.update
        )
    if as_json:
        _print_json(asdict(result))
    else:
        stdout.print(
            f"test accuracy {result.test_accuracy:.2%} (loss {result.test_loss:.4f}) on {result.images:,} "
            f"{result.dataset} test images",
            markup=False,
        )


@cli.group(name="data")
def data_group() -> None:
    """Data sets for `convcalc train`: where they are, and fetching them."""


@data_group.command(name="fetch")
@click.argument("dataset", type=click.Choice(["mnist", "fashion-mnist", "kmnist", "cifar10"]))
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Download into this folder (default: $CONVCALC_DATA/<dataset>, then ~/.cache/convcalc/<dataset>).",
)
@click.option(
    "--mirror",
    "mirrors",
    metavar="URL",
    multiple=True,
    help="Base URL to fetch <file>.gz (cifar10: the archive) from instead of the public mirrors "
    "(repeatable, tried in order).",
)
def data_fetch(dataset: str, data_dir: str | None, mirrors: tuple[str, ...]) -> None:
    """Download DATASET's files (each checked against its published MD5)."""
    from convcalc import data

    with _Downloads() as downloads:
        files = data.fetch(dataset, data_dir, mirrors=list(mirrors) or None, progress=downloads.update)
    stdout.print(f"{dataset}: {next(iter(files.values())).parent}", markup=False)
    for path in files.values():
        stdout.print(f"  {path.name}  {path.stat().st_size:,} bytes", markup=False)


@data_group.command(name="info")
@click.argument("dataset", required=False, type=click.Choice(["mnist", "fashion-mnist", "kmnist", "cifar10"]))
@click.option(
    "--data-dir", metavar="DIR", help="Look in this folder first (the data set's own; needs DATASET)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_info(dataset: str | None, data_dir: str | None, as_json: bool) -> None:
    """Where each data set is, its files' sizes, and whether their checksums are the published ones.

    A file is ok (MD5 as published), unverified (parses with the right size, but repacked or
    uncompressed, so the published MD5 does not apply), corrupt, or missing. Exit 1 when a file
    is corrupt.
    """
    from rich.table import Table
    from rich.text import Text

    from convcalc import data

    if data_dir and not dataset:
        raise click.UsageError("--data-dir names one data set's folder: give the DATASET too")
    report = {}
    for name in [dataset] if dataset else list(data.DATASETS):
        folder, statuses = data.inspect(name, data_dir)
        report[name] = {
            "folder": str(folder),
            "complete": all(s.status != "missing" for s in statuses),
            "files": [
                {
                    "file": s.file,
                    "path": str(s.path) if s.path else None,
                    "size": s.size,
                    "status": s.status,
                    "detail": s.detail,
                }
                for s in statuses
            ],
        }
    if as_json:
        _print_json(report)
    else:
        table = Table("dataset", "file", "status", "size", "where / why")
        for name, entry in report.items():
            for f in entry["files"]:
                where = f["path"] if f["status"] in ("ok", "unverified") else f["detail"] or ""
                table.add_row(
                    name,
                    f["file"],
                    f["status"],
                    f"{f['size']:,}" if f["size"] is not None else "",
                    Text("" if f["status"] == "missing" else where),  # a path is text, not markup
                )
        _print_table(table)  # piped: a path is never cut
        for name, entry in report.items():
            if not entry["complete"]:
                stdout.print(
                    f"{name}: not complete; `convcalc data fetch {name}` downloads into {entry['folder']}",
                    markup=False,
                )
    if any(f["status"] == "corrupt" for entry in report.values() for f in entry["files"]):
        sys.exit(1)


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
