"""`convcalc import` of the torchvision families added in the second round: RegNet (module names
with "-"), DenseNet (each layer reads the list of all earlier features), ShuffleNetV2 (channel
shuffle's view/transpose and ``x.chunk``), s3d (``torch.mean``); the ``Chunk`` layer type and
hyphenated names, against torch.

The issue's proof for every imported model: the same output shape, params, MACs
(FlopCounterMode on the original), state_dict keys and shapes, the same outputs with the
original's weights loaded strictly, and ``convcalc check`` of the imported spec passes.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from convcalc.build import build_model
from convcalc.check import check
from convcalc.engine import analyze
from convcalc.export import export_source
from convcalc.importer import ImportFailed, import_model
from convcalc.spec import network_from_data
from tests.conftest import torchvision_models
from tests.test_import import same_as_torchvision, torchvision


def _keys(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["regnet_y_400mf", "shufflenet_v2_x1_0"])
def test_new_families_import_exactly(name):
    same_as_torchvision(name, outputs=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "regnet_x_400mf", "shufflenet_v2_x0_5", "densenet161"])
def test_more_of_the_new_families_import_exactly(name):
    same_as_torchvision(name, outputs=False)


def test_a_small_torchvision_densenet_gives_its_outputs_and_checks():
    """torchvision's own DenseNet class (its _DenseLayer and _DenseBlock code), made small: the
    original's weights give its outputs, and check passes (receptive fields included)."""
    models = torchvision_models()
    torch.manual_seed(0)
    original = models.densenet.DenseNet(growth_rate=8, block_config=(2, 3), num_init_features=16, bn_size=2)
    network = import_model(original, (3, 32, 32), "densenet")
    ours = build_model(network, initialize=False).eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), original.eval()(x))
    report = check(network)
    assert report.ok, [str(c) for c in report.mismatches]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["regnet_y_400mf", "shufflenet_v2_x1_0"])
def test_imported_new_families_pass_check(name):
    """Receptive fields by the gradient probe included; at 32x32 (both pool adaptively at the
    end) to keep the probe small."""
    report = check(import_model(torchvision(name), (3, 32, 32), name))
    assert report.ok, [str(c) for c in report.mismatches]


def test_regnet_keeps_its_hyphenated_module_names():
    """RegNet's stages hold block1-0, block1-1, ...: the spec names them so, and its generated
    model and its exported source have exactly torchvision's keys."""
    original = torchvision("regnet_x_400mf")
    network = import_model(original, (3, 224, 224), "regnet_x_400mf")
    paths = {row.name for row in analyze(network).rows}
    assert "trunk_output.block1.block1-0.proj.0" in paths
    namespace: dict = {}
    exec(compile(export_source(network), "<export>", "exec"), namespace)  # noqa: S102 - our own export
    exported = next(v for k, v in namespace.items() if k == "RegnetX400mf")
    with torch.device("meta"):
        assert _keys(exported()) == _keys(original)


@pytest.mark.slow
def test_densenet_concatenations_become_a_chain_inside_each_layer():
    """cat([x, f1, ..., f(k-1)]) per layer becomes cat([input, conv2]) at the end of each dense
    layer (specs/densenet121.yaml's way): one block for all 58 layers' class, reading one tensor."""
    network = import_model(torchvision("densenet121"), (3, 224, 224), "densenet121")
    body = network.blocks["_DenseLayer"].layers
    assert body[-1] == {"type": "Cat", "name": "cat", "inputs": ["input", "conv2"], "dim": 1}
    rows = analyze(network).rows
    assert sum(row.type == "Cat" for row in rows) == 6 + 12 + 24 + 16
    assert rows[-1].output_shape == (1000,)


def test_shufflenet_channel_shuffle_and_chunks_are_layers():
    network = import_model(torchvision("shufflenet_v2_x1_0"), (3, 224, 224), "shufflenet_v2_x1_0")
    rows = analyze(network).rows
    shuffles = [row for row in rows if row.type == "ChannelShuffle"]
    chunks = [row for row in rows if row.type == "Chunk"]
    assert len(shuffles) == 4 + 8 + 4 and {row.layer.groups for row in shuffles} == {2}
    assert len(chunks) == 2 * (3 + 7 + 3)  # both halves of each stride-1 unit
    assert {(row.layer.index, row.layer.dim) for row in chunks} == {(0, 1), (1, 1)}


@pytest.mark.slow
def test_s3d_imports_exactly():
    """s3d ends with torch.mean(x, dim=(2, 3, 4)); its AvgPool3d(2, 7, 7) needs 224x224."""
    torchvision_models()
    import torchvision.models.video as video

    with torch.device("meta"):
        original = video.s3d(weights=None)
    network = import_model(original, (3, 16, 224, 224), "s3d")
    analysis = analyze(network)
    with torch.device("meta"):
        assert _keys(build_model(network)) == _keys(original)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = original.eval()(torch.zeros(1, 3, 16, 224, 224, device="meta"))
    assert analysis.total_macs == counter.get_total_flops() / 2
    assert analysis.total_params == sum(p.numel() for p in original.parameters())
    assert analysis.output_shape == tuple(out.shape[1:])


@pytest.mark.slow
def test_inception_v3_without_its_auxiliary_head_imports_exactly():
    models = torchvision_models()
    with torch.device("meta"):
        original = models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    network = import_model(original, (3, 299, 299), "inception_v3")
    analysis = analyze(network)
    with torch.device("meta"):
        assert _keys(build_model(network)) == _keys(original)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        original.eval()(torch.zeros(1, 3, 299, 299, device="meta"))
    assert analysis.total_macs == counter.get_total_flops() / 2


# --------------------------------------------------------------------------------------
# Own modules: what the patterns accept and what they refuse

OWN = """
import torch
from torch import nn


class Shuffle(nn.Module):
    def __init__(self, transpose=(1, 2)):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.transpose = transpose

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.size()
        x = x.view(n, 3, c // 3, h, w)
        x = torch.transpose(x, *self.transpose).contiguous()
        return x.view(n, c, h, w)


class Split(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 5, 3, padding=1)
        self.head = nn.Conv2d(3, 2, 1)
        self.tail = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)  # 5 channels: pieces of 3 and 2
        c, d = torch.chunk(a, 2, 3)  # along the width
        return torch.cat([self.head(c), self.tail(b).chunk(2, 3)[1]], dim=1)


class Whole(nn.Module):
    def forward(self, x):
        return torch.cat(x.chunk(2, 1), 1)


class NotAChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 1)
        self.b = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        b = self.b(x)  # before a: cat([x, a, b]) cannot move to after b, it reads cat([x, a])
        a = self.a(x)
        return torch.cat([torch.cat([x, a], 1), torch.cat([x, b], 1), torch.cat([x, a, b], 1)], 1)
"""


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    import importlib.util

    path = tmp_path_factory.mktemp("own") / "own_models.py"
    path.write_text(textwrap.dedent(OWN))
    spec = importlib.util.spec_from_file_location("own_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_outputs(original: torch.nn.Module, shape: tuple[int, ...]) -> None:
    network = import_model(original, shape, type(original).__name__)
    ours = build_model(network).eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.equal(ours(x), original.eval()(x))
    assert check(network).ok


def test_a_channel_shuffle_written_out_is_one_layer(own):
    network = import_model(own.Shuffle(), (4, 5, 5), "Shuffle")
    assert [row.type for row in analyze(network).rows] == ["Conv2d", "ChannelShuffle"]
    _same_outputs(own.Shuffle(), (4, 5, 5))


def test_a_transpose_that_is_no_shuffle_is_refused(own):
    with pytest.raises(ImportFailed, match=r"size has no spec layer \(File .*own_models.py\", line 14"):
        import_model(own.Shuffle(transpose=(2, 3)), (4, 5, 5), "Shuffle")


def test_chunk_pieces_of_uneven_sizes_and_along_an_axis(own):
    """5 channels in 2 chunks are 3 + 2; a piece along the width moves the field's start (the
    probe in check sees where); a piece nobody reads (d) is no layer."""
    network = import_model(own.Split(), (4, 6, 6), "Split")
    rows = analyze(network).rows
    assert [(row.layer.chunks, row.layer.index, row.layer.dim) for row in rows if row.type == "Chunk"] == [
        (2, 0, 1), (2, 1, 1), (2, 0, 3), (2, 1, 3)]  # fmt: skip
    _same_outputs(own.Split(), (4, 6, 6))


def test_a_chunk_read_as_a_whole_tuple_is_refused(own):
    with pytest.raises(ImportFailed, match="chunk has no spec layer"):
        import_model(own.Whole(), (4, 6, 6), "Whole")


def test_cats_that_are_no_chain_stay_as_they_are(own):
    network = import_model(own.NotAChain(), (2, 4, 4), "NotAChain")
    cats = [row for row in analyze(network).rows if row.type == "Cat"]
    assert [len(row.inputs) for row in cats] == [2, 2, 2, 3]  # cat([x, a], b) reused: x·a·b from x·a
    _same_outputs(own.NotAChain(), (2, 4, 4))


# --------------------------------------------------------------------------------------
# The Chunk type and hyphenated names, in hand-written specs


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 9),
    chunks=st.integers(1, 10),
    index=st.integers(0, 9),
    dim=st.sampled_from([1, 2, 3, -1]),
)
def test_chunk_is_torch_chunk(size, chunks, index, dim):
    shape = [3, 4, 5]
    shape[dim % 4 - 1] = size
    network = network_from_data(
        {
            "name": "c",
            "input": shape,
            "layers": [{"type": "Chunk", "chunks": chunks, "index": index, "dim": dim}],
        }
    )
    analysis = analyze(network)
    pieces = torch.zeros(1, *shape).chunk(chunks, dim)
    if index >= len(pieces):
        assert not analysis.ok and f"gives {len(pieces)} piece" in str(analysis.errors[0])
        return
    assert analysis.ok, analysis.errors
    assert analysis.output_shape == tuple(pieces[index].shape[1:])
    assert analysis.total_macs == 0 and analysis.total_params == 0


@pytest.mark.parametrize(("dim", "index"), [(1, 1), (3, 2), (2, 1)])
def test_chunk_receptive_fields_pass_check(dim, index):
    """Along a spatial axis the piece starts further in: the probe sees where."""
    network = network_from_data(
        {
            "name": "c",
            "input": [2, 9, 11],
            "layers": [
                {"type": "Conv2d", "name": "conv", "out_channels": 4, "kernel_size": 3, "stride": 2},
                {"type": "Chunk", "name": "piece", "chunks": 3, "index": index, "dim": dim},
                {"type": "Conv2d", "out_channels": 2, "kernel_size": 1},
            ],
        }
    )
    report = check(network)
    assert report.ok, [str(c) for c in report.mismatches]


def test_hyphenated_names_build_and_export_with_their_keys():
    data = {
        "name": "stages",
        "input": [3, 8, 8],
        "layers": [
            {"type": "Conv2d", "name": "stem-conv", "out_channels": 4, "kernel_size": 3},
            {"type": "Sequential", "name": "block1", "layers": [
                {"type": "Sequential", "name": "block1-0", "layers": [
                    {"type": "Conv2d", "out_channels": 4, "kernel_size": 1}, {"type": "ReLU"}]},
            ]},
        ],
    }  # fmt: skip
    network = network_from_data(data)
    model = build_model(network)
    assert set(_keys(model)) == {"stem-conv.weight", "stem-conv.bias", "block1.block1-0.0.weight",
                                 "block1.block1-0.0.bias"}  # fmt: skip
    namespace: dict = {}
    exec(compile(export_source(network), "<export>", "exec"), namespace)  # noqa: S102 - our own export
    exported = namespace["Stages"]()
    exported.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(exported(x), model(x))


@pytest.mark.parametrize("name", ["-a", "a-", "a--b", "1-a", "a-b.c", "a b"])
def test_names_that_are_no_hyphenated_identifiers_are_refused(name):
    data = {"name": "n", "input": [3, 8, 8], "layers": [{"type": "ReLU", "name": name}]}
    with pytest.raises(Exception, match="is not a Python identifier"):
        network_from_data(data)
