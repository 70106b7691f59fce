"""The orientation classifier's parts and doc-rotation's decision: the export-safe softmax and
one-hot, the training targets, the view cache's numbers, how the chosen quarter turn and the skew
make theta, and the confidences in [0, 1]."""

import math

import numpy as np
import pytest
import torch

from stn_align.training.documents import orientation as o
from stn_align.training.documents.rotation_model import RotationLocaliser, axis_pair
from stn_align.training.documents.skew import Survey, degrees


def test_written_out_softmax_and_best_turn_match_torch():
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 3.0, 0.0, -2.0], [-50.0, 80.0, 1.0, 0.0]])
    assert torch.allclose(o.softmax_written_out(logits), torch.softmax(logits, 1), atol=1e-6)
    pick = o.best_turn(torch.softmax(logits, 1))
    assert pick.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]  # the first of a tie
    turns = o.turn_pairs(torch.eye(4))
    assert turns.tolist() == [[1, 0], [0, 1], [-1, 0], [0, -1]]  # 0, 90, 180, 270 degrees


def test_targets_are_smoothed_or_uniform():
    targets = o.soft_targets(torch.tensor([2, 1]), torch.tensor([True, False]), 0.1)
    assert torch.allclose(targets[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    assert torch.allclose(targets[1], torch.full((4,), 0.25))
    assert torch.allclose(targets.sum(1), torch.ones(2))


def test_view_cache_round_trip():
    view = torch.rand(3, 1, 64, 64) ** 4  # sparse, like stroke contrast
    normalised = o.normalise_view(view)
    assert float(normalised.mean()) == pytest.approx(1.0, abs=0.05)
    back = o.dequantise(torch.from_numpy(o.quantise(normalised)))
    assert float((back - normalised).abs().max()) <= o.VIEW_CLIP / 255 / 2 + 1e-6
    # Ink and paper tone do not matter: the view is divided by its own mean.
    assert torch.allclose(o.normalise_view(view * 7.0), normalised, rtol=0.01, atol=1e-3)


def test_net_sizes_and_the_rows_frame():
    net = o.OrientationNet(256).eval()
    view, rows = torch.rand(2, 1, 128, 128), torch.rand(2, 1, 256, 64)
    assert net(view, rows, torch.tensor([1.0, 0.0])).shape == (2, 4)
    with pytest.raises(ValueError, match="must divide"):
        o.OrientationNet(200)
    # Where the lines ran down the columns (along 0), the rows are the view turned a quarter
    # turn more: the rows' turn k is the view's k + 1.
    logits = torch.tensor([[4.0, 1.0, 2.0, 3.0], [4.0, 1.0, 2.0, 3.0]])
    moved = o.to_view_frame(logits, torch.tensor([1.0, 0.0]))
    assert moved[0].tolist() == [4, 1, 2, 3] and moved[1].tolist() == [3, 4, 1, 2]


def _survey(coarse_deg, along, n=1):
    a = torch.deg2rad(torch.tensor([coarse_deg] * n))
    pair = torch.stack([a.cos(), a.sin()], 1)
    return Survey(
        pair, torch.full((n,), float(along)), pair, torch.zeros(n, 1, 8, 8), torch.ones(n)
    )


@pytest.mark.parametrize(
    "coarse,along,turn", [(5.0, 1, 0), (5.0, 1, 2), (-20.0, 0, 1), (40.0, 0, 3)]
)
def test_decision_turns_the_skew_by_the_chosen_quarter_turn(coarse, along, turn):
    model = RotationLocaliser(1, 256, -1.0).eval()
    found = _survey(coarse, along)
    # base: the refined skew with the axis turn in it (a tenth of a degree more than coarse)
    base_deg = coarse + 0.1 + (0 if along else 90)
    base = torch.tensor([[math.cos(math.radians(base_deg)), math.sin(math.radians(base_deg))]])
    logits = torch.full((1, 4), -5.0)
    logits[0, turn] = 5.0
    theta, confidence = model.decide(found, base, logits)
    want = coarse + 0.1 + 90 * turn
    assert float(degrees(theta)[0]) % 360 == pytest.approx(want % 360, abs=1e-3)
    assert 0.99 < float(confidence[0, 0]) <= 1.0
    assert 0.0 <= float(confidence[0, 1]) <= 1.0
    assert axis_pair(torch.tensor([1.0, 0.0])).tolist() == [[1, 0], [0, 1]]


def test_an_unsure_classifier_gives_a_low_confidence():
    model = RotationLocaliser(1, 256, -1.0).eval()
    found = _survey(0.0, 1)
    theta, confidence = model.decide(found, torch.tensor([[1.0, 0.0]]), torch.zeros(1, 4))
    assert float(confidence[0, 0]) == pytest.approx(0.25)
    with torch.no_grad():
        model.temperature.fill_(2.0)  # a softer softmax: less sure of the same logits
    sharp = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    soft = float(model.decide(found, torch.tensor([[1.0, 0.0]]), sharp)[1][0, 0])
    assert soft == pytest.approx(float(torch.softmax(sharp / 2.0, 1)[0, 0]))


def test_skew_confidence_follows_the_peak_contrast():
    model = RotationLocaliser(1, 256, -1.0).eval()
    flat = _survey(0.0, 1)._replace(peak=torch.tensor([0.0]))
    peaked = _survey(0.0, 1)._replace(peak=torch.tensor([1.0]))
    base, logits = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 4)
    assert float(model.decide(flat, base, logits)[1][0, 1]) < 0.1
    assert float(model.decide(peaked, base, logits)[1][0, 1]) > 0.9


def test_localiser_runs_on_a_page_and_exports_with_its_confidence(tmp_path):
    import onnxruntime as ort

    import stn_align.training.documents  # noqa: F401
    from stn_align.training.build import build_model
    from stn_align.training.config import ModelConfig
    from stn_align.training.export import check_ops, export_model, read_contract

    cfg = ModelConfig(family="rotation", localiser="doc", input_size=256, letterbox_fill=0)
    stn = build_model(cfg).eval()
    report = export_model(stn, tmp_path / "doc-rotation.onnx")
    check_ops(tmp_path / "doc-rotation.onnx")
    assert read_contract(tmp_path / "doc-rotation.onnx").outputs == ("theta", "confidence")
    session = ort.InferenceSession(report["localiser"], providers=["CPUExecutionProvider"])
    blank = np.full((3, 256, 256, 1), 230, np.uint8)
    theta, confidence = session.run(["theta", "confidence"], {"image": blank})
    assert theta.shape == (3, 2) and confidence.shape == (3, 2)
    assert np.allclose(np.linalg.norm(theta, axis=1), 1.0, atol=1e-4)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert (confidence[:, 1] < 0.5).all()  # a blank page: no lines, no sure skew


@pytest.mark.parametrize("a", [1, 2, 3])
def test_a_quarter_turned_cache_entry_is_what_the_front_gives_for_the_turned_page(a):
    from stn_align.core.preprocess import localiser_input
    from stn_align.training.documents import orientation_data as od
    from stn_align.training.documents.layout import render_page
    from stn_align.training.documents.synth import rotate_expand

    front = od.FrontSession(RotationLocaliser(1, 256, -1.0).eval(), 256)
    page = rotate_expand(render_page(7), 17.0, 255)
    x = localiser_input(page[:, :, None], 256, "letterbox", 0)[:, :, 0]
    seen = od.views(front, np.stack([x, np.ascontiguousarray(np.rot90(x, a))]))
    turns, _ = od.turn_label(np.array([17.0, 17.0 + 90 * a]), seen["coarse"])
    view, rows, along, turn = od.quarter_turned(
        seen["view"][0], seen["rows"][0], seen["along"][0], turns[0], a
    )
    assert (along, turn) == (seen["along"][1], turns[1])
    assert np.abs(view.astype(int) - seen["view"][1]).mean() < 1.0
    assert np.abs(rows.astype(int) - seen["rows"][1]).mean() < 1.0


def test_line_branch_votes_opposite_on_a_half_turn():
    torch.manual_seed(0)
    branch = o.LineBranch().eval()
    for p in branch.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    rows = torch.rand(3, 1, 256, 64) ** 3
    with torch.no_grad():
        upright, turned = branch(rows), branch(rows.flip(2).flip(3))
    # The strips are summed in the other order on the half turn: equal to float rounding.
    assert torch.allclose(upright, -turned, rtol=1e-5, atol=1e-5)
    assert float(upright[:, 0].abs().min()) > 0  # it has an opinion...
    assert torch.all(upright[:, 1] == 0) and torch.all(upright[:, 3] == 0)  # ...on the half turn
    values, along = torch.randn(5, 4), torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    assert torch.allclose(o.to_rows_frame(o.to_view_frame(values, along), along), values)


def test_every_turn_reads_the_page_as_each_quarter_turn_of_it_would_be_read():
    """every_turn's row a is what the classifier says of the cached copies turned a further a
    quarter turns (orientation_data.quarter_turned), counted back to the page as given."""
    from stn_align.training.documents import orientation_data as od

    torch.manual_seed(3)
    net = o.OrientationNet(256).eval()
    rng = np.random.default_rng(5)
    view = rng.integers(0, 255, (2, 128, 128)).astype(np.uint8)
    rows = rng.integers(0, 255, (2, 256, 64)).astype(np.uint8)
    along = np.array([1, 0], np.uint8)
    with torch.no_grad():
        every = net.every_turn(
            o.dequantise(torch.from_numpy(view)),
            o.dequantise(torch.from_numpy(rows)),
            torch.from_numpy(along).float(),
        )
        for a in range(4):
            turned = [od.quarter_turned(view[i], rows[i], along[i], 0, a) for i in range(2)]
            v = np.stack([np.ascontiguousarray(t[0]) for t in turned])
            r = np.stack([np.ascontiguousarray(t[1]) for t in turned])
            g = torch.tensor([float(t[2]) for t in turned])
            alone = net.classify(
                o.dequantise(torch.from_numpy(v)), o.dequantise(torch.from_numpy(r)), g
            )[0]
            assert torch.allclose(every[a], torch.roll(alone, -a, dims=1), atol=1e-4)
    probabilities = o.vote(every)
    assert torch.allclose(probabilities.sum(1), torch.ones(2), atol=1e-6)
