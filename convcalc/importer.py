"""An existing ``nn.Module`` as a spec (``convcalc import``).

The model is traced with ``torch.fx`` (the ``torch.nn`` layers are leaves), on the meta device
when it is built here, so no real weights are allocated and no kernel runs. Every traced op
becomes a spec layer: ``torch.nn`` modules by their class and constructor values (read back from
the module), and the functional calls models use (``+``, ``torch.cat``, ``torch.flatten``,
``x.view(x.size(0), -1)``, ``F.relu``, ``F.adaptive_avg_pool2d``, ``x * gate``, the pieces of
``x.chunk``, ...); two patterns are rewritten first: ShuffleNet's channel shuffle (one
``ChannelShuffle``) and DenseNet's concatenations of all earlier features (a chain). Every
submodule that holds layers becomes a ``Sequential`` group of the same name, its members named
as the module's attributes, so the spec's generated model has the original's ``state_dict()``
keys and shapes. Nothing is dropped silently: an op convcalc cannot represent stops the import
with a message naming it, its module path and the fix.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import operator
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from convcalc.errors import ConvcalcError
from convcalc.spec import LAYER_CLASSES, NORM_ACTS, Network, network_from_data
from convcalc.specfile import LAYER_NAME

SPEC_ONLY = {"type", "name", "inputs", "repeat", "output_shape"}


class ImportFailed(ConvcalcError):
    """The target could not be loaded, or the model holds something a spec cannot say."""


# --------------------------------------------------------------------------------------
# Targets: package.module:name, path/to/file.py:name


def load_target(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The ``nn.Module`` that ``target`` names (a class or a function, called with ``kwargs``).
    Importing runs the target's code, as Python's import does."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise ImportFailed(f"{target}: give module:name, e.g. torchvision.models:resnet50 or nets.py:Net")
    try:
        if where.endswith(".py") or "/" in where:
            path = Path(where)
            if not path.is_file():
                raise ImportFailed(f"{target}: no file {path}; fix: check the path")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules.setdefault(path.stem, module)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(where)
    except ImportFailed:
        raise
    except SyntaxError as error:
        raise ImportFailed(f"{target}: {error.filename}:{error.lineno}: syntax error: {error.msg}") from None
    except Exception as error:  # noqa: BLE001 - any failure of the user's module is reported
        raise ImportFailed(f"{target}: cannot import {where} ({type(error).__name__}: {error}); "
                           "fix: check the module name and that it imports") from None  # fmt: skip
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")][:12]
        raise ImportFailed(f"{target}: {where} has no {name!r}; it has: {', '.join(public)}")
    thing = getattr(module, name)
    if isinstance(thing, nn.Module):
        return thing
    if not callable(thing):
        raise ImportFailed(f"{target}: {name} is a {type(thing).__name__}, not an nn.Module or a function")
    try:
        model = thing(**(kwargs or {}))
    except TypeError as error:
        raise ImportFailed(f"{target}: calling {name} failed ({error}); fix: pass its arguments with "
                           "--arg key=value") from None  # fmt: skip
    if not isinstance(model, nn.Module):
        raise ImportFailed(f"{target}: {name}() returned a {type(model).__name__}, not an nn.Module")
    return model


# --------------------------------------------------------------------------------------
# Modules and functions as spec layers


def _value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    if isinstance(value, torch.Size):
        return list(value)
    return value


_PER_AXIS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}


def module_layer(module: nn.Module, path: str) -> dict[str, Any]:
    """``{type: Conv2d, out_channels: 64, ...}``: the spec layer of a ``torch.nn`` module, its
    fields read back from the module; an attribute the spec cannot hold is an error."""
    base = _torch_layer(module)
    kind = base.__name__ if base is not None else _foreign_layer(module) or type(module).__name__
    if (base is None and _foreign_layer(module) is None) or kind not in LAYER_CLASSES:
        raise ImportFailed(f"{path} ({type(module).__module__}.{kind}): not a layer convcalc knows; "
                           "fix: write it as layers convcalc has, or out of the traced model")  # fmt: skip
    model = LAYER_CLASSES[kind]
    layer: dict[str, Any] = {"type": kind}
    for name in model.model_fields:
        if name in SPEC_ONLY:
            continue
        if name == "bias" and "bias" in model.model_fields:
            layer["bias"] = getattr(module, "bias", None) is not None
            continue
        if name in ("in_channels", "in_features", "num_features", "num_channels"):
            continue  # inferred by the engine, and checked against the module by the tests
        if name == "dim" and kind == "Cat":
            continue
        if hasattr(module, name):
            layer[name] = _value(getattr(module, name))
    if kind in ("LayerNorm", "LayerNorm2d"):
        layer["elementwise_affine"] = module.elementwise_affine
        layer["bias"] = module.bias is not None
    if kind == "LayerNorm2d":  # over the channels: one size (torchvision keeps it as a 1-tuple)
        layer["normalized_shape"] = module.normalized_shape[0]
    if kind == "BatchNormAct2d":
        layer["act"] = _norm_act(module, path)
    if getattr(module, "padding_mode", "zeros") != "zeros":
        raise ImportFailed(f"{path} ({kind}): padding_mode={module.padding_mode!r} is not in the spec; "
                           "fix: pad with a ReflectionPad/ReplicationPad layer before it")  # fmt: skip
    for key, value in list(layer.items()):  # as a person writes it: 3, not [3, 3]; defaults left out
        if key in _PER_AXIS and isinstance(value, list) and value and all(v == value[0] for v in value):
            layer[key] = value = value[0]
        default = model.model_fields[key].default if key in model.model_fields else None
        if key != "type" and type(default) is type(value) and default == value:
            del layer[key]
    if getattr(module, "return_indices", False):
        raise ImportFailed(f"{path} ({kind}): return_indices=True is not in the spec language")
    if getattr(module, "divisor_override", None) is not None:
        raise ImportFailed(f"{path} ({kind}): divisor_override is not in the spec language")
    return layer


def _norm_act(module: nn.Module, path: str) -> str | None:
    """timm's BatchNormAct2d: its activation (``act``) by torch.nn name, with torch's defaults,
    and no dropout between (``drop``)."""
    if not isinstance(getattr(module, "drop", nn.Identity()), nn.Identity):
        raise ImportFailed(f"{path} (BatchNormAct2d): a dropout between the norm and the activation is "
                           "not in the spec language")  # fmt: skip
    act = getattr(module, "act", nn.Identity())
    if isinstance(act, nn.Identity):
        return None
    base = _torch_layer(act)
    if base is None or base.__name__ not in NORM_ACTS or len(module_layer(act, f"{path}.act")) > 1:
        raise ImportFailed(f"{path} (BatchNormAct2d): its activation {type(act).__name__} (with these "
                           f"settings) is not one of {', '.join(NORM_ACTS)}, as torch makes it")  # fmt: skip
    return base.__name__


_ACTIVATIONS = {
    F.relu: "ReLU", torch.relu: "ReLU", F.relu6: "ReLU6", F.hardswish: "Hardswish",
    F.hardsigmoid: "Hardsigmoid", F.silu: "SiLU", torch.sigmoid: "Sigmoid", F.sigmoid: "Sigmoid",
    torch.tanh: "Tanh", F.tanh: "Tanh", F.gelu: "GELU", F.elu: "ELU", F.mish: "Mish", F.selu: "SELU",
}  # fmt: skip
_METHOD_ACTIVATIONS = {
    "relu": "ReLU",
    "relu_": "ReLU",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "sigmoid_": "Sigmoid",
}


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def function_layer(node: fx.Node, where: str) -> tuple[dict[str, Any], list[fx.Node]] | None:
    """The spec layer of a functional call and the tensors it reads; None: no layer (a
    ``size()`` feeding a view, read by the view's pattern)."""
    target = node.target
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    if node.op == "call_function":
        if target in (operator.add, operator.iadd, torch.add):
            return _merge(node, "Add", where)
        if target in (operator.mul, operator.imul, torch.mul):
            return _merge(node, "Mul", where)
        if target is torch.cat:
            parts = _arg(node, 0, "tensors")
            dim = _arg(node, 1, "dim", 0)
            if not isinstance(parts, (list, tuple)) or not all(isinstance(p, fx.Node) for p in parts):
                raise _unsupported(node, where, "torch.cat of something other than traced tensors")
            return {"type": "Cat", "dim": dim}, list(parts)
        if target is torch.flatten:
            return {"type": "Flatten", "start_dim": _arg(node, 1, "start_dim", 0),
                    "end_dim": _arg(node, 2, "end_dim", -1)}, tensors[:1]  # fmt: skip
        if target in _ACTIVATIONS:
            return {"type": _ACTIVATIONS[target]}, tensors[:1]
        if target in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d):
            nd = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}[target]
            return {
                "type": f"AdaptiveAvgPool{nd}d",
                "output_size": _value(_arg(node, 1, "output_size")),
            }, tensors[:1]
        pools = {F.max_pool1d: "MaxPool1d", F.max_pool2d: "MaxPool2d", F.max_pool3d: "MaxPool3d",
                 F.avg_pool1d: "AvgPool1d", F.avg_pool2d: "AvgPool2d", F.avg_pool3d: "AvgPool3d"}  # fmt: skip
        if target in pools:
            kernel = _arg(node, 1, "kernel_size")
            stride = _arg(node, 2, "stride")
            layer = {
                "type": pools[target],
                "kernel_size": _value(kernel),
                "padding": _value(_arg(node, 3, "padding", 0)),
            }
            if stride is not None and stride != []:
                layer["stride"] = _value(stride)
            if _arg(node, 5 if "Max" in pools[target] else 4, "ceil_mode", False):
                layer["ceil_mode"] = True
            return layer, tensors[:1]
        if target is torch.permute:
            return {"type": "Permute", "dims": list(_arg(node, 1, "dims"))}, tensors[:1]
        if target in (torch.channel_shuffle, F.channel_shuffle, torch.native_channel_shuffle):
            return {"type": "ChannelShuffle", "groups": _arg(node, 1, "groups")}, tensors[:1]
        if target is operator.getitem and _is_chunk(node.args[0]):
            if not node.users:  # `a, unused = x.chunk(2, 1)`: a view nobody reads computes nothing
                return None
            chunk = node.args[0]
            chunks, dim = _arg(chunk, 1, "chunks"), _arg(chunk, 2, "dim", 0)
            return {"type": "Chunk", "chunks": chunks, "index": node.args[1], "dim": dim}, [chunk.args[0]]
        if target is torch.chunk and all(u.target is operator.getitem for u in node.users):
            return None  # each piece read is a Chunk layer (above)
        if target is torch.mean and _is_global_mean(node):  # s3d's torch.mean(x, dim=(2, 3, 4))
            return {"type": "mean", "nd": len(_mean_dims(node))}, tensors[:1]
        if target is torch.mean and _is_global_mean(node, keepdim=True):
            return {"type": f"AdaptiveAvgPool{len(_mean_dims(node))}d", "output_size": 1}, tensors[:1]
        if target is F.dropout:
            return {"type": "Dropout", "p": float(_arg(node, 1, "p", 0.5))}, tensors[:1]
        if target is F.interpolate:
            layer = {"type": "Upsample", "mode": _arg(node, 3, "mode", "nearest")}
            size, scale = _arg(node, 1, "size"), _arg(node, 2, "scale_factor")
            layer |= {"size": _value(size)} if size is not None else {"scale_factor": float(scale)}
            if _arg(node, 4, "align_corners") is not None:
                layer["align_corners"] = _arg(node, 4, "align_corners")
            return layer, tensors[:1]
    if node.op == "call_method":
        if target == "size" and all(user.op == "call_method" and user.target in ("view", "reshape")
                                    for user in node.users):  # fmt: skip
            return None
        if target == "chunk" and all(u.target is operator.getitem for u in node.users):
            return None  # each piece read is a Chunk layer
        if target in ("view", "reshape") and _is_flatten_view(node):
            return {"type": "Flatten"}, tensors[:1]
        if target == "flatten":
            return {"type": "Flatten", "start_dim": _arg(node, 1, "start_dim", 0),
                    "end_dim": _arg(node, 2, "end_dim", -1)}, tensors[:1]  # fmt: skip
        if target in _METHOD_ACTIVATIONS:
            return {"type": _METHOD_ACTIVATIONS[target]}, tensors[:1]
        if target == "mean" and _is_global_mean(node):
            return {"type": "mean", "nd": len(_mean_dims(node))}, tensors[:1]
        if target == "mean" and _is_global_mean(node, keepdim=True):  # (N, C, 1, 1): no flatten
            return {"type": f"AdaptiveAvgPool{len(_mean_dims(node))}d", "output_size": 1}, tensors[:1]
        if target == "permute":  # x.permute(0, 2, 3, 1), x.permute([0, 2, 3, 1]), x.permute(dims=...)
            dims = node.kwargs.get("dims", node.args[1] if len(node.args) == 2 else node.args[1:])
            return {"type": "Permute", "dims": list(dims)}, tensors[:1]
        if target in ("add", "add_"):
            return _merge(node, "Add", where)
        if target in ("mul", "mul_"):
            return _merge(node, "Mul", where)
    raise _unsupported(node, where)


def _mean_dims(node: fx.Node) -> list[Any]:
    dims = _arg(node, 1, "dim")
    return [dims] if isinstance(dims, int) else list(dims or [])


def _is_global_mean(node: fx.Node, keepdim: bool = False) -> bool:
    """``x.mean((2, 3))`` on (N, C, H, W): a global average pool, flattened (with ``keepdim``
    not flattened: timm's squeeze-excite, ``x.mean((2, 3), keepdim=True)``)."""
    dims = _mean_dims(node)
    rank = len(dims) + 2
    return (
        bool(_arg(node, 2, "keepdim", False)) == keepdim
        and 1 <= len(dims) <= 3
        and all(type(d) is int for d in dims)
        and sorted(d % rank for d in dims) == list(range(2, rank))
    )


def _is_chunk(node: Any) -> bool:
    return isinstance(node, fx.Node) and (
        _is_method(node, "chunk") or (node.op == "call_function" and node.target is torch.chunk)
    )


def _merge(node: fx.Node, kind: str, where: str) -> tuple[dict[str, Any], list[fx.Node]]:
    inputs = [a for a in node.args if isinstance(a, fx.Node)]
    if len(inputs) != len(node.args) or node.kwargs.get("alpha", 1) != 1:
        raise _unsupported(node, where, f"{kind} with a constant (the spec's {kind} merges tensors)")
    return {"type": kind}, inputs


def _is_flatten_view(node: fx.Node) -> bool:
    """``x.view(x.size(0), -1)`` (or ``reshape``): a Flatten."""
    args = node.args[1:]
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    if len(args) != 2 or args[1] != -1:
        return False
    size = args[0]
    return (
        isinstance(size, fx.Node) and size.op == "call_method" and size.target == "size"
        and size.args[1:] in ((0,),) and size.args[0] is node.args[0]
    )  # fmt: skip


def _unsupported(node: fx.Node, where: str, what: str | None = None) -> ImportFailed:
    op = what or (f"{node.op} {getattr(node.target, '__qualname__', node.target)}")
    trace = node.meta.get("stack_trace")
    line = ""
    if trace:
        last = [entry.strip() for entry in trace.strip().splitlines()
                if entry.strip().startswith("File ") and "/torch/" not in entry]  # fmt: skip
        line = f" ({last[-1]})" if last else ""
    return ImportFailed(f"{where or 'forward'}: {op} has no spec layer{line}; convcalc would have to drop "
                        "it, so the import stops. fix: write it with layers convcalc has (README, "
                        "'convcalc import')")  # fmt: skip


# --------------------------------------------------------------------------------------
# The graph as nested groups


@dataclass
class _Group:
    path: tuple[str, ...]
    items: list[dict[str, Any]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    input: fx.Node | None = None  # the one outside value it reads
    output: fx.Node | None = None  # the value read from outside it (its last layer's, it must be)


class _Tracer(fx.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """torch.nn's layers, and subclasses of them that keep their forward (torchvision's
        ``Conv3DSimple`` is an ``nn.Conv3d``), are leaves; so are the modules of other
        libraries the spec language has (``_FOREIGN``)."""
        return (
            _torch_layer(m) is not None
            or _foreign_layer(m) is not None
            or super().is_leaf_module(m, module_qualified_name)
        )


# Layers of other libraries that the spec has a type for: (module, class) -> spec type. Their
# fields are read back by name, as for torch.nn's.
_FOREIGN = {
    ("torchvision.ops.stochastic_depth", "StochasticDepth"): "StochasticDepth",
    ("timm.layers.norm_act", "BatchNormAct2d"): "BatchNormAct2d",  # a BatchNorm2d that runs its act too
    ("timm.layers.linear", "Linear"): "Linear",  # nn.Linear, its forward rewritten for TorchScript only
    ("torchvision.ops.misc", "Permute"): "Permute",
    # an nn.LayerNorm subclass with its own forward (channels last and back): not torch.nn's rule
    ("torchvision.models.convnext", "LayerNorm2d"): "LayerNorm2d",
    ("timm.layers.norm", "LayerNorm2d"): "LayerNorm2d",  # the same rule (its fast-norm path too)
    ("timm.layers.norm", "LayerNorm"): "LayerNorm",  # nn.LayerNorm with an optional fused kernel
}


def _foreign_layer(module: nn.Module) -> str | None:
    cls = type(module)
    return _FOREIGN.get((cls.__module__, cls.__name__))


def _torch_layer(module: nn.Module) -> type[nn.Module] | None:
    """The ``torch.nn`` layer class ``module`` is (or subclasses without changing forward)."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ in LAYER_CLASSES:
            return cls if type(module).forward is cls.forward else None
    return None


def import_model(
    model: nn.Module, input_shape: tuple[int, ...] | None = None, name: str = "model"
) -> Network:
    """The spec's network of ``model`` (see the module's docstring); ``ImportFailed`` names
    what cannot be said in a spec."""
    layer = _torch_layer(model) or _foreign_layer(model)
    if layer is not None:  # its keys are `weight`, `bias`: a spec's layers are named modules
        kind = layer if isinstance(layer, str) else layer.__name__
        raise ImportFailed(f"{name}: one {kind} layer, not a model holding layers; fix: write it in a spec "
                           f"(layers: [{{type: {kind}, ...}}]) or import the model holding it")  # fmt: skip
    training = model.training
    model.eval()  # the inference graph: auxiliary heads (GoogLeNet's) and training-only branches drop out
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # noqa: BLE001 - tracing fails in many ways (control flow on values)
        raise ImportFailed(f"{name}: torch.fx cannot trace it ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}); fix: keep forward free of "
                           "Python control flow on tensor values") from None  # fmt: skip
    finally:
        model.train(training)
    modules = dict(model.named_modules())
    _chain_cats(graph)
    _fold_channel_shuffles(graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ImportFailed(f"{name}: forward takes {len(placeholders)} inputs; a spec has one")
    start = placeholders[0]
    first = next((n for n in graph.nodes if n.op == "call_module"), None)
    first_module = modules.get(str(first.target)) if first is not None else None
    channels = getattr(first_module, "in_channels", None)
    rank = {nn.Conv1d: 2, nn.Conv2d: 3, nn.Conv3d: 4}.get(type(first_module))
    if input_shape is None:
        input_shape = _implied_input(graph, modules, name)
    elif channels and rank and len(input_shape) == rank - 1:  # --input HxW: the channels are the model's
        input_shape = (channels, *input_shape)
    _fold_shape_reads(graph, model, input_shape)
    views = _fold_parameter_views(graph, model)
    # producer node -> (scope path, name in that scope); scope -> group
    home: dict[fx.Node, tuple[tuple[str, ...], str]] = {}
    groups: dict[tuple[str, ...], _Group] = {(): _Group(())}
    output_node = None
    called: set[str] = set()
    owners: set[str] = set()  # modules whose own parameters forward reads directly
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            output_node = _one_output(node.args[0], name)
            break
        stack = list((node.meta.get("nn_module_stack") or {}).keys())
        if node.op == "get_attr":  # a parameter the module's forward reads itself (CNBlock's layer_scale)
            target = str(node.target)
            scope, own = tuple(target.split(".")[:-1]), target.split(".")[-1]
            layer, reads = parameter_layer(model, target), []
            if node in views:
                layer["view"] = views[node]
            owners.add(".".join(scope))
        elif node.op == "call_module":
            target = str(node.target)
            scope = tuple(target.split(".")[:-1])
            own = target.split(".")[-1]
            layer = module_layer(modules[target], target)
            reads = [a for a in node.args if isinstance(a, fx.Node)]
            if len(reads) != 1 or node.kwargs:
                raise _unsupported(node, target, f"a call of {target} with {len(node.args)} arguments")
        else:
            scope = tuple(stack[-1].split(".")) if stack else ()
            where = ".".join(scope)
            made = function_layer(node, where)
            if made is None:
                continue
            layer, reads = made
            own = re.sub(r"_\d+$", "", node.name)  # fx numbers names globally; a scope numbers its own
            if layer["type"] == "mean":  # two layers: the pool, then the flatten reading it
                pool = {"type": f"AdaptiveAvgPool{layer['nd']}d", "output_size": 1}
                _place(groups, scope, start)
                pool["name"] = _unique(f"{own}_pool", groups[scope].names)
                pool["inputs"] = [_reference(r, scope, home, groups, start, node) for r in reads]
                groups[scope].items.append(pool)
                layer = {"type": "Flatten", "inputs": [pool["name"]]}
                reads = []
        if any(not isinstance(r, fx.Node) for r in reads):
            raise _unsupported(node, ".".join(scope), "an op on a constant")
        if node.op == "call_module" and target in called and any(True for _ in modules[target].parameters()):
            raise ImportFailed(f"{target}: called twice with the same weights (weight sharing); a spec layer "
                               "has its own weights")  # fmt: skip
        if node.op == "call_module":
            called.add(target)
        if not scope and own.isdigit():  # a spec's top level has no positional names
            own = f"layer{own}"
        _place(groups, scope, start)
        group = groups[scope]
        own = _unique(own, group.names) if not own.isdigit() else own
        layer["name"] = own
        if reads or ("inputs" not in layer and layer["type"] != "Parameter"):  # a Parameter reads nothing
            layer["inputs"] = [_reference(r, scope, home, groups, start, node) for r in reads]
        group.items.append(layer)
        home[node] = (scope, own)
    unused = [
        path
        for path, module in modules.items()
        if path and path not in called and path not in owners and _holds_state(module)
    ]
    if unused:
        raise ImportFailed(f"{name}: {unused[0]} ({type(modules[unused[0]]).__name__}) holds weights that "
                           f"forward does not use in eval mode ({len(unused)} such modules; an auxiliary "
                           "head?); a spec of the rest would miss them. fix: build the model without them "
                           "(e.g. --arg aux_logits=false)")  # fmt: skip
    if not isinstance(output_node, fx.Node) or output_node not in home:
        raise ImportFailed(f"{name}: forward must return one tensor computed from its input")
    _set_outputs(groups, home, output_node)
    data = {"name": _identifier(name), "input": list(input_shape), "layers": groups[()].items}
    data["output"] = _reference(output_node, (), home, groups, start, output_node)
    data = _blocks(_simplify(data), modules)
    return network_from_data(data, f"<import {name}>")


def _fold_parameter_views(graph: fx.Graph, model: nn.Module) -> dict[fx.Node, list[int]]:
    """A parameter read through ``reshape``/``view`` to constant sizes (timm's ConvNeXt:
    ``self.gamma.reshape(1, -1, 1, 1)``, gamma stored as ``(C,)``): the reshape is taken out of
    the graph and becomes the Parameter's ``view``, its leading 1s dropped (broadcasting puts
    them back: ``(C, 1, 1)`` and ``(1, C, 1, 1)`` multiply a ``(N, C, H, W)`` map alike)."""
    views: dict[fx.Node, list[int]] = {}
    for node in list(graph.nodes):
        if node.op != "get_attr" or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op != "call_method" or user.target not in ("view", "reshape") or user.kwargs:
            continue
        sizes = (
            user.args[1] if len(user.args) == 2 and isinstance(user.args[1], (list, tuple)) else user.args[1:]
        )
        try:
            tensor = model.get_parameter(str(node.target))
        except AttributeError:
            continue  # a buffer: refused where it is read (parameter_layer)
        if not sizes or not all(type(v) is int for v in sizes) or sum(v == -1 for v in sizes) > 1:
            continue
        known = math.prod(v for v in sizes if v != -1)
        if known <= 0 or tensor.numel() % known:
            continue
        shape = [tensor.numel() // known if v == -1 else v for v in sizes]
        while len(shape) > 1 and shape[0] == 1:
            shape = shape[1:]
        if math.prod(shape) != tensor.numel() or len(shape) > 4:
            continue
        user.replace_all_uses_with(node)
        graph.erase_node(user)
        views[node] = shape
    return views


def parameter_layer(model: nn.Module, target: str) -> dict[str, Any]:
    """``{type: Parameter, shape: [96, 1, 1], value: 1e-06}``: a parameter read by forward. Its
    value is kept when it is one constant that can be read (not on the meta device, where a
    model built by ``convcalc import`` lives: then the spec's default 0.0); a buffer, or a
    parameter not trained, has no spec layer."""
    try:
        tensor = model.get_parameter(target)
    except AttributeError:
        raise ImportFailed(f"{target}: forward reads a tensor attribute that is not a parameter (a buffer "
                           "or a constant); a spec has no layer for it") from None  # fmt: skip
    if not tensor.requires_grad:
        raise ImportFailed(f"{target}: a parameter with requires_grad=False; a spec's Parameter is trained")
    layer: dict[str, Any] = {"type": "Parameter", "shape": list(tensor.shape)}
    values = tensor.detach().flatten()
    if not tensor.is_meta and values.numel() and bool((values == values[0]).all()):
        layer["value"] = float(values[0])
    return layer


def _one_output(value: Any, name: str) -> Any:
    """What forward returns: one tensor, or a dict holding one (torchvision's segmentation
    models return ``{"out": x}``, with ``"aux"`` beside it when built with the aux head)."""
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ImportFailed(f"{name}: forward returns {len(value)} outputs ({', '.join(map(str, value))}); "
                           "a spec has one. fix: build it with one (e.g. --arg aux_loss=false)")  # fmt: skip
    return next(iter(value.values()))


def _fold_shape_reads(graph: fx.Graph, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """``x.shape[-2:]`` read in forward (torchvision's segmentation heads size their upsampling
    with it) becomes the sizes it has for this input, when they do not depend on the batch:
    the graph is run on meta tensors at batches 2 and 3 and a slice of a shape that is the
    same in both is a constant. What reads the batch size stays a node (``x.view(x.size(0), -1)``
    is a pattern; anything else is refused as before)."""
    reads = [n for n in graph.nodes
             if n.op == "call_function" and n.target is getattr and n.args[1] == "shape"]  # fmt: skip
    slices = [user for read in reads for user in read.users if user.target is operator.getitem]
    if not slices:
        return
    runs = [_run_on_meta(graph, model, (batch, *input_shape), slices) for batch in (2, 3)]
    for node in slices:
        value = runs[0].get(node)
        if isinstance(value, torch.Size) and value == runs[1].get(node):
            sizes = tuple(value)
            for user in list(node.users):
                user.args = fx.node.map_arg(user.args, lambda a, n=node, v=sizes: v if a is n else a)
                user.kwargs = fx.node.map_arg(user.kwargs, lambda a, n=node, v=sizes: v if a is n else a)
            graph.erase_node(node)
    for read in reads:
        if not read.users:
            graph.erase_node(read)


def _run_on_meta(graph: fx.Graph, model: nn.Module, shape: tuple[int, ...], wanted: list[fx.Node]) -> dict:
    """The values of the ``wanted`` nodes when the traced graph runs on a meta input of ``shape``
    (no kernel runs; a model with real weights runs under a fake-tensor mode); none when the
    graph does not run."""
    values: dict[fx.Node, Any] = {}
    keep = set(wanted)

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            if n in keep:
                values[n] = result
            return result

    from torch._subclasses.fake_tensor import FakeTensorMode  # only for models with real weights

    on_meta = all(t.is_meta for t in (*model.parameters(), *model.buffers()))
    try:
        with contextlib.nullcontext() if on_meta else FakeTensorMode(allow_non_fake_inputs=True):
            # made inside the mode, a CPU input is fake too: no memory, no kernel
            x = torch.empty(shape, device="meta" if on_meta else "cpu")
            Recorder(fx.GraphModule(model, graph)).run(x)
    except Exception:  # noqa: BLE001 - the traced graph does not run as traced (swin3d's list edits)
        return {}  # nothing folded: the shape reads stay, and the import refuses the first one by name
    return values


def _chain_cats(graph: fx.Graph) -> None:
    """DenseNet's concatenations as a chain, so that every module reads one tensor.

    torchvision's ``_DenseLayer`` k concatenates the list of all earlier features,
    ``cat([x, f1, ..., f(k-1)])``, and its ``_DenseBlock`` ends with ``cat([x, f1, ..., fN])``.
    A cat whose parts are an earlier cat's parts plus one tensor is that cat with the tensor
    appended (the same values, in the same channel order), so it becomes ``cat([earlier, f])``,
    placed right after ``f`` in ``f``'s module: each dense layer then ends by appending its new
    features to its input, as specs/densenet121.yaml writes it. A cat of one tensor is that
    tensor; a cat of the same parts as an earlier one is that one. Cats carry no weights and
    no MACs, so keys, params and MACs are unchanged."""
    cats = []
    for node in graph.nodes:
        parts, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
        if node.op == "call_function" and node.target is torch.cat and not node.kwargs and parts and \
                isinstance(parts, (list, tuple)) and all(isinstance(p, fx.Node) for p in parts):  # fmt: skip
            cats.append((node, (dim, *parts)))
    prefixes = {key[:n] for _, key in cats for n in range(2, len(key))}  # (dim, x), (dim, x, f1), ...
    made: dict[tuple[Any, ...], fx.Node] = {}  # (dim, *parts) -> the node computing that cat
    position = {node: i for i, node in enumerate(graph.nodes)}
    for node, key in cats:
        dim, parts = key[0], key[1:]
        same = parts[0] if len(parts) == 1 else made.get(key)
        if same is not None:
            node.replace_all_uses_with(same)
            graph.erase_node(node)
            continue
        made[key] = node
        earlier = parts[0] if len(parts) == 2 else made.get(key[:-1])
        if earlier is not None and (len(parts) > 2 or key in prefixes):  # a link of a chain
            last = parts[-1]
            node.args = ([earlier, last], dim)
            if position[earlier] < position[last]:  # else it stays where it is, reading both
                last.append(node)  # right after the tensor it appends, in that tensor's module
                position[node] = position[last] + 0.5
                node.meta["nn_module_stack"] = {".".join(_scope(last)): None} if _scope(last) else {}


def _fold_channel_shuffles(graph: fx.Graph) -> None:
    """ShuffleNet's ``channel_shuffle`` as one ``torch.channel_shuffle(x, g)`` node:

        n, c, h, w = x.size(); x = x.view(n, g, c // g, h, w)
        x = torch.transpose(x, 1, 2).contiguous(); x = x.view(n, c, h, w)

    matched exactly (the sizes must be x's own, the transpose of dims 1 and 2), so a view
    that is anything else is still refused by name."""
    for node in list(graph.nodes):
        found = _channel_shuffle(node)
        if found is None:
            continue
        x, groups, chain = found
        with graph.inserting_before(node):
            shuffle = graph.call_function(torch.channel_shuffle, (x, groups))
        shuffle.meta = dict(node.meta)
        node.replace_all_uses_with(shuffle)
        for dead in chain:  # the views, the transpose, then the sizes they read
            if not dead.users:
                graph.erase_node(dead)


def _channel_shuffle(node: fx.Node) -> tuple[fx.Node, int, list[fx.Node]] | None:
    """(x, groups, the nodes that only served the shuffle) if ``node`` ends one."""
    if not _is_view(node):
        return None
    transposed = node.args[0]
    if _is_method(transposed, "contiguous"):
        transposed = transposed.args[0]
    is_transpose = _is_method(transposed, "transpose") or (
        isinstance(transposed, fx.Node)
        and transposed.op == "call_function"
        and transposed.target is torch.transpose
    )
    if not is_transpose or sorted(transposed.args[1:]) != [1, 2] or not _is_view(transposed.args[0]):
        return None
    split = transposed.args[0]
    x = split.args[0]
    sizes, split_sizes = _view_sizes(node), _view_sizes(split)
    if len(sizes) < 3 or len(split_sizes) != len(sizes) + 1 or not isinstance(split_sizes[1], int):
        return None
    groups, per_group = split_sizes[1], split_sizes[2]
    per_group_ok = (
        isinstance(per_group, fx.Node) and per_group.target is operator.floordiv
        and per_group.args[1] == groups and _size_index(per_group.args[0], x) == 1
    )  # fmt: skip
    own = all(_size_index(v, x) == i for i, v in enumerate(sizes))
    rest = all(
        _size_index(v, x) == i
        for i, v in zip((0, *range(2, len(sizes))), (split_sizes[0], *split_sizes[3:]), strict=True)
    )
    if not (per_group_ok and own and rest):
        return None
    reads = [v for v in (*sizes, per_group) if isinstance(v, fx.Node)]
    sources = {v.args[0] for v in reads if v.target is operator.getitem}
    chain = [node, *([node.args[0]] if node.args[0] is not transposed else []), transposed, split, per_group]
    return x, groups, list(dict.fromkeys([*chain, *reads, *sources]))


def _is_method(node: Any, name: str) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_method" and node.target == name


def _is_view(node: Any) -> bool:
    return _is_method(node, "view") or _is_method(node, "reshape")


def _view_sizes(node: fx.Node) -> list[Any]:
    sizes = list(node.args[1:])
    return list(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)) else sizes


def _size_index(value: Any, x: Any) -> int | None:
    """``i`` if ``value`` is ``x.size(i)`` or ``x.size()[i]``, else None."""
    if _is_method(value, "size") and value.args[0] is x and len(value.args) == 2:
        return value.args[1]
    if isinstance(value, fx.Node) and value.op == "call_function" and value.target is operator.getitem:
        size, index = value.args
        if _is_method(size, "size") and size.args[0] is x and len(size.args) == 1 and isinstance(index, int):
            return index
    return None


def _scope(node: fx.Node) -> tuple[str, ...]:
    """The module path ``node`` runs in: a call_module's parent, else the innermost module."""
    if node.op == "call_module":
        return tuple(str(node.target).split(".")[:-1])
    stack = list((node.meta.get("nn_module_stack") or {}).keys())
    return tuple(stack[-1].split(".")) if stack else ()


def _holds_state(module: nn.Module) -> bool:
    """Weights or buffers of its own (a container's are its children's)."""
    return any(True for _ in (*module.parameters(recurse=False), *module.buffers(recurse=False)))


def _place(groups: dict[tuple[str, ...], _Group], scope: tuple[str, ...], start: fx.Node) -> None:
    """Open the groups down to ``scope``, each as a Sequential item of its parent."""
    for depth in range(1, len(scope) + 1):
        path = scope[:depth]
        if not (LAYER_NAME.match(path[-1]) or path[-1].isdigit()):
            raise ImportFailed(f"{'.'.join(path)}: the module name {path[-1]!r} is not a Python identifier "
                               "(nor identifiers joined by '-'); a spec's layer names are (rename it in the "
                               "model)")  # fmt: skip
        if path not in groups:
            group = _Group(path)
            groups[path] = group
            parent = groups[path[:-1]]
            if path[-1] in parent.names:
                raise ImportFailed(f"{'.'.join(path)}: the module runs in two separate stretches of forward; "
                                   "a spec group is one stretch")  # fmt: skip
            parent.names.add(path[-1])
            parent.items.append(
                {"type": "Sequential", "name": path[-1], "layers": group.items, "_group": group}
            )


def _reference(value: fx.Node, scope: tuple[str, ...], home, groups, start: fx.Node, reader: fx.Node) -> str:
    """How a layer in ``scope`` names ``value``: a sibling, a sibling group (its output), or
    ``input`` (what the scope reads from outside)."""
    group = groups[scope]
    if value is start and scope == ():
        return "input"
    if value in home:
        where, name = home[value]
        if where == scope:
            return name
        if where[: len(scope)] == scope and len(where) > len(scope):  # inside a child group
            child = where[: len(scope) + 1]
            groups[child].output = value
            return child[-1]
    # from outside this scope: the scope's one input
    if group.input is None:
        group.input = value
        if scope:
            parent = groups[scope[:-1]]
            for item in parent.items:
                if item.get("_group") is group:
                    item["inputs"] = [_reference(value, scope[:-1], home, groups, start, reader)]
    if group.input is not value:
        raise ImportFailed(f"{'.'.join(scope)}: reads two tensors from outside the module ({reader.name}); "
                           "a spec group reads one (its input)")  # fmt: skip
    return "input"


def _set_outputs(groups, home, network_output: fx.Node) -> None:
    """A group whose output is not its last layer says ``output:`` (nested Sequential only)."""
    for path, group in groups.items():
        if not path:
            continue
        wanted = group.output
        if wanted is not None and home[wanted][1] != group.items[-1]["name"] and home[wanted][0] == path:
            raise ImportFailed(f"{'.'.join(path)}: its output is not its last layer; a spec group "
                               "ends with its output")  # fmt: skip


def _simplify(data: dict[str, Any]) -> dict[str, Any]:
    """Drop ``inputs`` that say the layer above, and the builder's bookkeeping."""

    def items(layers: list[dict[str, Any]], positional: bool) -> list[dict[str, Any]]:
        out, above = [], "input"
        for position, item in enumerate(layers):
            group = item.get("_group")
            item = {k: v for k, v in item.items() if k != "_group"}
            if group is not None:
                item["_path"] = group.path
            if item["name"].isdigit():  # an nn.Sequential's child: named by its position in a group
                if not positional or int(item["name"]) != position:
                    raise ImportFailed(f"module {item['name']!r} ({item['type']}) is not at its position "
                                       "in its group; a spec names such members by position")  # fmt: skip
                reference = item.pop("name")
            else:
                reference = item["name"]
            if item.get("inputs") == [above]:
                del item["inputs"]
            elif isinstance(item.get("inputs"), list) and len(item["inputs"]) == 1:
                item["inputs"] = item["inputs"][0]
            if item.get("type") == "Sequential":
                item["layers"] = items(item["layers"], True)
            out.append(item)
            above = reference
        return out

    data["layers"] = items(data["layers"], False)
    if data["layers"] and data.get("output") == data["layers"][-1]["name"]:
        del data["output"]
    return data


def _implied_input(graph: fx.Graph, modules: dict[str, nn.Module], name: str) -> tuple[int, ...]:
    first = next((n for n in graph.nodes if n.op == "call_module"), None)
    module = modules.get(str(first.target)) if first is not None else None
    if isinstance(module, nn.Linear):
        return (module.in_features,)
    channels = getattr(module, "in_channels", None) or getattr(module, "num_features", None)
    example = f"{channels}x224x224" if channels else "3x224x224"
    raise ImportFailed(f"{name}: the model does not imply its input size; fix: give --input, e.g. {example}")


def _unique(name: str, taken: set[str]) -> str:
    name = _identifier(name)
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _identifier(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "model"
    return out if not out[0].isdigit() or out.isdigit() else f"m_{out}"


def build_on_meta(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The target's model built on the meta device (no memory, no initialisation kernels); a
    model whose constructor computes with tensors (RegNet's widths) is built on the CPU."""
    try:
        with torch.device("meta"):
            return load_target(target, kwargs)
    except ImportFailed:
        raise
    except Exception:  # noqa: BLE001 - e.g. "Cannot copy out of meta tensor": build it for real
        try:
            return load_target(target, kwargs)
        except ImportFailed:
            raise
        except Exception as error:  # noqa: BLE001 - the user's constructor failed
            raise ImportFailed(
                f"{target}: building the model failed ({type(error).__name__}: {error})"
            ) from None


def import_target(
    target: str, input_shape: tuple[int, ...] | None = None, kwargs: dict[str, Any] | None = None
) -> Network:
    """``convcalc import``: the spec's network of the model ``target`` names."""
    try:
        model = build_on_meta(target, kwargs)
    except SystemExit as exit:  # e.g. a script's argparse run at import time: not convcalc's exit
        raise ImportFailed(
            f"{target}: its code called sys.exit({exit.code!r}) while being imported or called; fix: put "
            'the script part of the file under `if __name__ == "__main__":`'
        ) from None
    return import_model(model, input_shape, target_name(target))


def target_name(target: str) -> str:
    return target.rpartition(":")[2] or "model"


# --------------------------------------------------------------------------------------
# Repeated submodule classes as blocks


def _blocks(data: dict[str, Any], modules: dict[str, nn.Module]) -> dict[str, Any]:
    """Every submodule class used more than once (torchvision's ``Bottleneck``) becomes one block
    used many times instead of one group per instance: what differs between the instances
    becomes a block parameter, named after its field (``out_channels``), a multiple of another
    (``${out_channels * 4}``), or ``<layer>_<field>``. Instances whose layers differ (one with a
    ``downsample``, one without) are two blocks (``Bottleneck``, ``Bottleneck2``). A class whose
    members are named by position (an ``nn.Sequential`` subclass) stays a group."""
    blocks: dict[str, dict[str, Any]] = {}
    candidates: dict[type, list[dict[str, Any]]] = {}

    def visit(items: list[dict[str, Any]], depth: int) -> None:
        for item in items:
            if item.get("type") == "Sequential":
                visit(item["layers"], depth + 1)
                cls = type(modules.get(".".join(item.get("_path", ())), nn.Sequential()))
                named = all("name" in member for member in item["layers"])
                if cls.__module__.split(".")[0] != "torch" and named:
                    candidates.setdefault(cls, []).append((depth, item))  # type: ignore[arg-type]

    visit(data["layers"], 0)
    # innermost first: a block's body may use the blocks made below it
    for cls, found in sorted(candidates.items(), key=lambda kv: -max(d for d, _ in kv[1])):
        instances = [item for _, item in found]
        if len(instances) < 2:
            continue
        variants: dict[Any, list[dict[str, Any]]] = {}
        for item in instances:
            variants.setdefault(_signature(item["layers"]), []).append(item)
        for group in variants.values():
            name = cls.__name__ if cls.__name__ not in blocks else _next_name(cls.__name__, blocks)
            if not name.isidentifier() or name in LAYER_CLASSES or name == "Sequential":
                name = _next_name(f"{name}Block", blocks)
            blocks[name] = _make_block(name, group)
    for item in _walk(data["layers"]):
        item.pop("_path", None)
    if blocks:
        data = {"name": data["name"], "input": data["input"], "blocks": blocks,
                **{k: v for k, v in data.items() if k not in ("name", "input")}}  # fmt: skip
    return data


def _walk(items: list[dict[str, Any]]):
    for item in items:
        yield item
        if isinstance(item.get("layers"), list):
            yield from _walk(item["layers"])


def _next_name(base: str, taken: dict[str, Any]) -> str:
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """An item's values, torch's defaults filled in, so that instances compare field by field."""
    out = {k: v for k, v in item.items() if k not in ("type", "name", "inputs", "layers", "_path")}
    model = LAYER_CLASSES.get(item["type"])
    inferred = ("in_channels", "in_features", "num_features", "num_channels")
    if model is not None:
        for key, info in model.model_fields.items():
            default = info.default
            if key in SPEC_ONLY or key in out or key in inferred or info.is_required() or default is None:
                continue
            out[key] = default
    return dict(sorted(out.items()))  # one order for every instance: slots line up by position


def _signature(items: list[dict[str, Any]]) -> Any:
    """What instances of one block share. A field that is null in some of them (timm's
    ``act: null`` where others have ReLU) splits them: a use cannot pass null to a parameter
    (null declares it required)."""
    return tuple(
        (item.get("name"), item["type"], repr(item.get("inputs")),
         tuple(sorted((key, value is None) for key, value in _fields(item).items())),
         _signature(item["layers"]) if isinstance(item.get("layers"), list) else None)
        for item in items
    )  # fmt: skip


def _make_block(name: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
    """The block of these instances (same layers, values may differ); each instance becomes a
    use of it, in place."""
    bodies = [inst["layers"] for inst in instances]
    params: dict[str, list[Any]] = {}  # parameter -> its value in each instance
    texts: dict[tuple, str] = {}

    def slots(items: list[dict[str, Any]], prefix: str = "") -> list[tuple[str, str, Any]]:
        out = []
        for index, item in enumerate(items):
            layer = prefix + _member(item, index)
            for key, value in _fields(item).items():
                out.append((layer, key, value))
            if isinstance(item.get("layers"), list):
                out += slots(item["layers"], layer + ".")
        return out

    per_instance = [slots(body) for body in bodies]
    for position, (layer, key, _) in enumerate(per_instance[0]):
        values = [inst[position][2] for inst in per_instance]
        if all(v == values[0] and type(v) is type(values[0]) for v in values):
            continue
        texts[(layer, key)] = _parameter(layer, key, values, params)
    body = _fill(bodies[0], texts, "")
    for index, inst in enumerate(instances):
        keep = {key: inst[key] for key in ("name", "inputs") if key in inst}
        inst.clear()
        inst.update({"type": name, **keep, **{p: v[index] for p, v in params.items()}})
    return {"params": dict.fromkeys(params), "layers": body}


def _member(item: dict[str, Any], index: int) -> str:
    """A member's key within its body: its name, or its position (a Sequential's 0, 1, ...)."""
    return str(item["name"]) if "name" in item else str(index)


def _parameter(layer: str, key: str, values: list[Any], params: dict[str, list[Any]]) -> str:
    for name, known in params.items():
        if known == values:
            return f"${name}"
    if all(type(v) is int for v in values):
        for name, known in params.items():
            if all(type(k) is int and k > 0 for k in known):
                for factor in range(2, 9):
                    if all(v == k * factor for v, k in zip(values, known, strict=True)):
                        return f"${{{name} * {factor}}}"
                    if all(k % factor == 0 and v == k // factor for v, k in zip(values, known, strict=True)):
                        return f"${{{name} // {factor}}}"
    name = (
        key if key not in params and key.isidentifier() else _identifier(f"{layer}_{key}".replace(".", "_"))
    )
    while name in params:
        name += "_"
    params[name] = values
    return f"${name}"


def _fill(items: list[dict[str, Any]], texts: dict[tuple, str], prefix: str) -> list[dict[str, Any]]:
    out = []
    for index, item in enumerate(items):
        layer = prefix + _member(item, index)
        new = {}
        for key, value in item.items():
            if key == "_path":
                continue
            if key == "layers" and isinstance(value, list):
                new[key] = _fill(value, texts, layer + ".")
            else:
                new[key] = texts.get((layer, key), value)
        for (where, key), text in texts.items():  # a default in this instance, a parameter in others
            if where == layer and key not in new:
                new[key] = text
        first = [key for key in ("type", "name", "inputs") if key in new]
        out.append({**{key: new[key] for key in first}, **{k: v for k, v in new.items() if k not in first}})
    return out
