"""The model contract: written and read back unchanged; bad, old or newer files are refused with
the file and the key in the message."""

import dataclasses

import pytest

from stn_align.core.contract import CONTRACT_VERSION, ContractError, ModelContract


def contract(**changes) -> ModelContract:
    base = ModelContract(
        name="doc-perspective",
        family="projective",
        input_size=128,
        chain_role="first",
        postprocess=("page_edges",),
        metrics={"val_loss": 0.5, "step": 10},
    )
    return dataclasses.replace(base, **changes)


def test_round_trip_through_metadata():
    original = contract(outputs=("theta", "confidence"), input_channels=3, mean=0.4)
    meta = original.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["contract_version"] == str(CONTRACT_VERSION) and meta["param_count"] == "8"
    assert ModelContract.from_metadata(meta, "m.onnx") == original


def test_preprocess_defaults_to_the_familys():
    assert ModelContract(name="r", family="rotation", input_size=64).preprocess == "letterbox"
    assert contract().preprocess == "stretch"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"contract_version": None}, "m.onnx: no contract_version"),
        ({"contract_version": str(CONTRACT_VERSION + 1)}, "newer than this reader"),
        ({"family": "spiral"}, "m.onnx: family: unknown transform family 'spiral'"),
        ({"input_channels": "2"}, "m.onnx: input_channels: bad value 2"),
        ({"chain_role": "middle"}, "chain_role: bad value 'middle'"),
        ({"param_count": "6"}, "param_count 6 does not match family projective"),
        ({"input_size": "big"}, "m.onnx: metadata input_size='big' is not JSON"),
        ({"name": None}, "m.onnx: .*name"),
    ],
)
def test_bad_metadata_is_refused_naming_the_key(change, message):
    meta = contract().to_metadata()
    for key, value in change.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    with pytest.raises(ContractError, match=message):
        ModelContract.from_metadata(meta, "m.onnx")


def test_rules_between_fields():
    with pytest.raises(ContractError, match="page_edges needs a projective model"):
        contract(family="rotation")
    with pytest.raises(ContractError, match="thin-plate-spline model can only be last"):
        ModelContract(name="d", family="tps", input_size=128)
    assert (
        ModelContract(name="d", family="tps", input_size=128, chain_role="last").param_count == 32
    )
