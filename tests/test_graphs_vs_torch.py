"""Random graphs, engine vs torch: hypothesis draws DAGs in 1-D, 2-D and 3-D (convolutions,
pools, norms, branches read with ``inputs:``, Add / Mul / Cat merges, a parametrised residual
block used with ``repeat``), and ``convcalc.check`` compares every node of the engine's analysis
with the real model: output shape (forward hooks), params and buffers, MACs (FlopCounterMode),
the receptive field (gradient probe through every branch) and torchinfo.

The graph is drawn node by node; each node reads earlier nodes whose shapes the engine has just
computed, so merges are drawn between tensors that can merge (and the engine's own errors on
the ones that cannot are tested in tests/test_graph_errors.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from convcalc import spec as S
from convcalc.check import check
from convcalc.engine import analyze

SIZES = {1: st.integers(12, 40), 2: st.integers(6, 18), 3: st.integers(4, 8)}
RES_BLOCK = {
    "params": {"channels": None, "k": 3},
    "layers": [
        {"type": "Conv{nd}d", "name": "conv1", "out_channels": "$channels", "kernel_size": "$k",
         "padding": "${k // 2}", "bias": False},
        {"type": "BatchNorm{nd}d", "name": "bn1"},
        {"type": "ReLU", "name": "relu"},
        {"type": "Conv{nd}d", "name": "conv2", "out_channels": "$channels", "kernel_size": "$k",
         "padding": "${k // 2}"},
        {"type": "Add", "name": "add", "inputs": ["conv2", "input"]},
    ],
}  # fmt: skip


def _with_nd(value, nd):
    if isinstance(value, dict):
        return {k: _with_nd(v, nd) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_nd(v, nd) for v in value]
    return value.replace("{nd}", str(nd)) if isinstance(value, str) else value


@st.composite
def graphs(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    size = [draw(st.integers(1, 3)), *(draw(SIZES[nd]) for _ in range(nd))]
    data = {"name": "g", "input": size, "blocks": {"Res": _with_nd(RES_BLOCK, nd)}, "layers": []}
    shapes = {"input": tuple(size)}  # node name -> output shape (per sample)
    for i in range(draw(st.integers(2, 9))):
        name = f"n{i}"
        source = draw(st.sampled_from(sorted(shapes)))
        shape = shapes[source]
        kind = draw(st.sampled_from(["conv", "conv", "pool", "norm", "act", "res", "add", "cat", "mul"]))
        layer: dict = {"name": name, "inputs": source}
        if kind == "conv":
            k = draw(st.integers(1, min(5, *shape[1:])))
            layer |= {"type": f"Conv{nd}d", "out_channels": draw(st.integers(1, 4)), "kernel_size": k,
                      "stride": draw(st.sampled_from([1, 1, 2])), "padding": draw(st.integers(0, k // 2)),
                      "dilation": 1, "bias": draw(st.booleans())}  # fmt: skip
        elif kind == "pool":
            k = draw(st.integers(1, min(3, *shape[1:])))
            kind_pool = draw(st.sampled_from([f"MaxPool{nd}d", f"AvgPool{nd}d"]))
            layer |= {"type": kind_pool, "kernel_size": k, "stride": draw(st.sampled_from([1, k])),
                      "padding": draw(st.integers(0, k // 2))}  # fmt: skip
        elif kind == "norm":
            layer |= {"type": draw(st.sampled_from([f"BatchNorm{nd}d", f"InstanceNorm{nd}d"])),
                      "track_running_stats": draw(st.booleans())}  # fmt: skip
        elif kind == "act":
            layer |= {"type": draw(st.sampled_from(["ReLU", "Sigmoid", "Hardswish", "Tanh"]))}
        elif kind == "res":
            layer |= {"type": "Res", "channels": shape[0], "k": draw(st.sampled_from([1, 3])),
                      "repeat": draw(st.integers(1, 2))}  # fmt: skip
        else:
            if kind == "add":
                partners = [n for n, s in shapes.items() if s == shape]
                merge = {"type": "Add"}
            elif kind == "cat":
                partners = [n for n, s in shapes.items() if s[1:] == shape[1:]]
                merge = {"type": "Cat"}
            else:  # a channel gate: global average pool of a node with the same channels
                partners = [n for n, s in shapes.items() if s[0] == shape[0] and n != "input"]
                merge = {"type": "Mul"}
            if not partners:
                continue
            event(f"{nd}-D {kind}")
            other = draw(st.sampled_from(partners))
            if kind == "mul":
                gate = f"{name}_gate"
                pool = {
                    "type": f"AdaptiveAvgPool{nd}d",
                    "name": f"{gate}_pool",
                    "inputs": other,
                    "output_size": 1,
                }
                data["layers"].append(pool)
                data["layers"].append({"type": "Sigmoid", "name": gate})
                other = gate
            layer |= merge | {"inputs": [source, other]}
        data["layers"].append(layer)
        try:
            analysis = analyze(S.network_from_data(data))
        except S.SpecError:
            data["layers"].pop()
            continue
        if not analysis.ok:
            data["layers"].pop()
            continue
        rows = {row.name: row for row in analysis.rows}
        final = analysis.bounds.get((name,), (0, rows[name].index if name in rows else -1))[1]
        shapes[name] = analysis.rows[final].output_shape
        if kind == "mul":
            shapes[f"{name}_gate"] = rows[f"{name}_gate"].output_shape
    last = sorted(shapes, key=lambda n: -1 if n == "input" else int(n[1:].split("_")[0]))[-1]
    assume(last != "input")
    data["output"] = last
    if draw(st.booleans()):  # sometimes a classifier head: the union rules after a Flatten
        data["layers"] += [{"type": "Flatten", "name": "flat", "inputs": last},
                           {"type": "Linear", "name": "fc", "out_features": 3}]  # fmt: skip
        data["output"] = "fc"
    return data


@pytest.mark.slow
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(graphs())
def test_random_graphs_agree_with_torch(data):
    network = S.network_from_data(data)
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
    quantities = {c.quantity.split(" (")[0] for c in report.comparisons}
    axes = {1: ["RF L"], 2: ["RF H", "RF W"], 3: ["RF D", "RF H", "RF W"]}[len(network.input) - 1]
    assert {"output shape", "params", "MACs", "torchinfo output shape", *axes} <= quantities


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(graphs())
def test_random_graphs_agree_with_torch_quick(data):
    """A few examples in the quick run too (the slow test draws more)."""
    report = check(S.network_from_data(data))
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
