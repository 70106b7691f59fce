"""The line-profile direction reader: its symmetry, its profiles and its training loop."""

import math

import pytest
import torch

from stn_align.core.preprocess import localiser_input
from stn_align.training.documents.direction import (
    STRIPS,
    ProfileDirection,
    choose_reader_weight,
    line_profiles,
    train_direction,
    votes,
)
from stn_align.training.documents.layout import render_page
from stn_align.training.documents.skew import page_ink


def random_net(size):
    torch.manual_seed(0)
    net = ProfileDirection(size)
    torch.nn.init.normal_(net.net[-1].weight)
    return net


def test_untrained_reader_has_no_opinion():
    assert torch.equal(ProfileDirection(96)(torch.rand(3, STRIPS, 96)), torch.zeros(3))


def test_half_turn_negates_the_vote():
    net = random_net(96)
    profiles = torch.rand(4, STRIPS, 96)
    with torch.no_grad():
        forward, backward = net(profiles), net(profiles.flip(-1))
    assert forward.abs().min() > 0
    assert torch.allclose(forward, -backward, atol=1e-5)


def test_profiles_of_a_page_turned_by_a_half_turn_are_the_page_read_the_other_way():
    page = render_page(40)
    x = torch.from_numpy(localiser_input(page[:, :, None], 192, "letterbox", 0)).float()
    x = x.permute(2, 0, 1)[None] / 127.5 - 1.0
    turned = x.flip(2, 3)  # the page turned by 180 degrees
    upright = line_profiles(page_ink(x, -1.0), torch.tensor([[1.0, 0.0]]))
    undone = line_profiles(page_ink(turned, -1.0), torch.tensor([[-1.0, 0.0]]))
    assert upright.shape == (1, STRIPS, 192)
    assert upright.sum() > 0
    assert torch.allclose(upright, undone, atol=1e-4)
    # Left as it is, the turned page gives each strip's profile reversed, strips in reverse order.
    as_is = line_profiles(page_ink(turned, -1.0), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(as_is, upright.flip(1, 2), atol=1e-4)


def lines(n, size, upright, generator):
    """Toy profiles: lines as a core band with a shoulder of ink above it (upright) or below."""
    profiles = torch.zeros(n, STRIPS, size)
    for i in range(n):
        pitch = int(torch.randint(9, 15, (1,), generator=generator))
        for top in range(int(torch.randint(0, pitch, (1,), generator=generator)), size - 8, pitch):
            profiles[i, :, top + 2 : top + 6] = 1.0  # the x-height band
            shoulder = slice(top, top + 2) if upright[i] else slice(top + 6, top + 8)
            profiles[i, :, shoulder] = 0.4
    return profiles + 0.05 * torch.rand(n, STRIPS, size, generator=generator)


def test_training_learns_toy_line_shapes():
    generator = torch.Generator().manual_seed(1)
    upright = torch.rand(256, generator=generator) < 0.5
    cache = {"profiles": lines(256, 64, upright, generator), "agree": upright.float() * 2 - 1}
    torch.manual_seed(0)
    net = ProfileDirection(64)
    train_direction(net, cache, steps=60, batch_size=32, seed=0)
    held_out = torch.rand(64, generator=generator) < 0.5
    vote = votes(net, lines(64, 64, held_out, generator))
    assert ((vote > 0) == held_out).float().mean() > 0.95


def test_reader_weight_is_chosen_where_the_cascade_helps():
    agree = torch.tensor([1.0, -1.0] * 50)
    reader_vote = agree * 0.8  # the cascade is always right
    vote = torch.where(torch.arange(100) % 4 == 0, -agree, agree) * 0.5  # wrong on a quarter
    weight, accuracy, table = choose_reader_weight(vote, reader_vote, agree)
    assert weight > 0.5
    assert accuracy == 1.0
    assert math.isclose(next(row[2] for row in table if row[0] == 0.0), 0.75)


def test_graft_reads_the_readers_back_from_an_exported_model(tmp_path):
    import dataclasses

    from stn_align.training.build import build_model
    from stn_align.training.config import model_config_from_dict
    from stn_align.training.documents.graft import graft, load_snap
    from stn_align.training.export import export_model

    cfg = model_config_from_dict(
        {"family": "rotation", "localiser": "doc", "input_size": 64, "channels": 1, "hidden": 16}
    )
    torch.manual_seed(3)
    cascade = build_model(cfg)
    for module in cascade.modules():  # trained-looking batch norms, so that folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    state = {"model": cascade.state_dict(), "model_config": dataclasses.asdict(cfg)}
    torch.save(state, tmp_path / "ckpt.pt")
    snap, _ = load_snap(graft(tmp_path / "ckpt.pt", tmp_path / "snap.pt"))
    assert snap.size == 384
    stn = build_model(model_config_from_dict(torch.load(tmp_path / "snap.pt")["model_config"]))
    # Fitted-looking readers, so that the export's check against PyTorch covers all three votes.
    torch.nn.init.normal_(snap.direction.net[-1].weight)
    torch.nn.init.normal_(snap.layout.head.weight, std=0.1)
    snap.layout_weight.fill_(0.7)
    snap.reader_weight.fill_(1.25)
    snap.layout_clip.fill_(3.0)
    stn.localiser.load_state_dict(snap.state_dict())
    export_model(stn, tmp_path / "doc.onnx")
    again, _ = load_snap(graft(tmp_path / "doc.onnx", tmp_path / "again.pt"))
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        want = cascade.localiser.eval()(x)
        assert torch.allclose(snap.reader(x), want, atol=1e-5)
        assert torch.allclose(again.reader(x), want, atol=1e-4)
        profiles = torch.rand(2, STRIPS, 384)
        assert torch.allclose(again.direction(profiles), snap.direction(profiles), atol=1e-5)
        page = torch.rand(2, 1, 96, 96)
        assert torch.allclose(again.layout(page), snap.layout(page), atol=1e-5)
        pages = torch.rand(2, 1, 384, 384) * 2 - 1
        assert torch.allclose(again(pages), snap(pages), atol=1e-5)
    assert float(again.layout_weight) == pytest.approx(0.7)
    assert float(again.reader_weight) == pytest.approx(1.25)
    assert float(again.layout_clip) == pytest.approx(3.0)


def one_dimensional_evidence(net, weights, q):
    """What the 1-D net computed: (N, K, S) scaled profiles -> (N * K, 1, S), strip by strip."""
    import torch.nn.functional as F

    x = q.reshape(-1, 1, q.shape[-1])
    for i, layer in enumerate(net.net):
        if isinstance(layer, torch.nn.Conv2d):
            w, b = weights[f"net.{i}.weight"], weights[f"net.{i}.bias"]
            x = F.conv1d(x, w, b, padding=layer.padding[1], dilation=layer.dilation[1])
        else:
            x = layer(x)
    return x


def test_a_checkpoint_of_the_one_dimensional_net_loads_and_reads_the_same():
    net = random_net(96)
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    old = {k: v.squeeze(2) if v.dim() == 4 else v for k, v in net.state_dict().items()}
    loaded = ProfileDirection(96)
    loaded.load_state_dict(old)
    profiles = torch.rand(2, STRIPS, 96)
    q = profiles / (profiles.mean((1, 2), keepdim=True) + 1e-4)
    with torch.no_grad():
        want = one_dimensional_evidence(net, old, q) - one_dimensional_evidence(
            net, old, q.flip(-1)
        )
        want = want.reshape(2, -1).mean(1)
        assert want.abs().min() > 1e-3
        assert torch.equal(loaded(profiles), net(profiles))
        assert torch.allclose(net(profiles), want, atol=1e-5)
