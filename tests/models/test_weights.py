"""Local weights: round trips, wrapper prefixes, head skipping, in_chans adaptation and loud failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from medopt.config import ModelConfig
from medopt.models import MODELS, ModelError, create_model, load_pretrained_weights


def _model(name: str = "tiny_cnn", seed: int = 0, **cfg: object) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(ModelConfig(name=name, **cfg)).eval()


def _out(model: nn.Module, in_chans: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(2, in_chans, 16, 16))


def _perturb_bn(model: nn.Module) -> None:
    """Give BatchNorm buffers non-default values so a round trip must carry them too."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)


@pytest.mark.parametrize("name", ["tiny_cnn", "tiny_resnet"])
@pytest.mark.parametrize(("suffix", "prefix"), [(".pth", ""), (".pt", "module."), (".safetensors", "model.")])
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str, suffix: str, prefix: str) -> None:
    source = _model(name, seed=1)
    _perturb_bn(source)
    path = tmp_path / f"w{suffix}"
    state = {prefix + k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    fresh = _model(name, seed=2)
    assert not torch.allclose(_out(fresh), _out(source))
    report = load_pretrained_weights(fresh, MODELS.get(name), str(path))
    assert torch.equal(_out(fresh), _out(source))
    assert report.loaded == len(source.state_dict()) and report.skipped == () and report.adapted == ()


def test_create_model_loads_weights_path_and_unwraps_checkpoints(tmp_path: Path) -> None:
    source = _model(seed=1)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, path)
    loaded = _model(seed=2, pretrained=True, weights_path=str(path))
    assert torch.equal(_out(loaded), _out(source))


def test_weights_path_is_ignored_unless_pretrained(tmp_path: Path) -> None:
    source = _model(seed=1)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    plain = _model(seed=2, weights_path=str(path))
    assert torch.equal(_out(plain), _out(_model(seed=2)))
    assert not torch.allclose(_out(plain), _out(source))
    missing = _model(seed=2, weights_path=str(tmp_path / "gone.pth"))  # a saved config on another machine
    assert torch.equal(_out(missing), _out(plain))


def test_head_is_skipped_when_class_count_differs(tmp_path: Path) -> None:
    source = _model(seed=1)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(5)
    target = create_model(ModelConfig(name="tiny_cnn", num_classes=7))
    head_init = target.head.weight.detach().clone()
    report = load_pretrained_weights(target, MODELS.get("tiny_cnn"), str(path))
    assert report.skipped == ("head.weight", "head.bias")
    assert torch.equal(target.head.weight, head_init)
    assert torch.equal(target.blocks[2][0].weight, source.blocks[2][0].weight)


def test_stem_is_adapted_to_one_channel_by_summing_rgb(tmp_path: Path) -> None:
    source = _model(seed=1)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    gray = create_model(ModelConfig(name="tiny_cnn", in_chans=1, pretrained=True, weights_path=str(path)))
    assert torch.allclose(gray.stem[0].weight, source.stem[0].weight.sum(dim=1, keepdim=True))
    # A gray image repeated to RGB through the source equals the gray image through the adapted model.
    torch.manual_seed(2)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(gray.eval()(x), source(x.repeat(1, 3, 1, 1)), atol=1e-5)


def test_small_stem_keeps_its_init_when_loading_imagenet_style_weights(tmp_path: Path) -> None:
    source = _model("tiny_resnet", seed=1)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(4)
    small = create_model(ModelConfig(name="tiny_resnet", stem="small"))
    stem_init = small.conv1.weight.detach().clone()
    report = load_pretrained_weights(small, MODELS.get("tiny_resnet"), str(path))
    assert report.skipped == ("conv1.weight",)
    assert torch.equal(small.conv1.weight, stem_init)
    assert torch.equal(small.layer1[0].conv1.weight, source.layer1[0].conv1.weight)


def test_missing_weights_error_names_the_model_and_the_field() -> None:
    with pytest.raises(ModelError, match=r"no local weights for 'resnet50': pass model.weights_path"):
        create_model(ModelConfig(name="resnet50", pretrained=True))


def test_incompatible_or_unreadable_files_raise(tmp_path: Path) -> None:
    spec = MODELS.get("tiny_resnet")
    with pytest.raises(ModelError, match="file not found"):
        load_pretrained_weights(_model("tiny_resnet"), spec, str(tmp_path / "none.pth"))
    with pytest.raises(ModelError, match=r"expected one of \.pth, \.pt, \.safetensors"):
        load_pretrained_weights(_model("tiny_resnet"), spec, str(tmp_path / "w.ckpt"))
    other = tmp_path / "cnn.pth"
    torch.save(_model("tiny_cnn").state_dict(), other)
    with pytest.raises(ModelError, match=r"do not fit the model: missing \['bn1.bias'"):
        load_pretrained_weights(_model("tiny_resnet"), spec, str(other))
    junk = tmp_path / "junk.pt"
    torch.save([1, 2, 3], junk)
    with pytest.raises(ModelError, match="not a state dict of named tensors"):
        load_pretrained_weights(_model("tiny_resnet"), spec, str(junk))


def test_mis_shaped_backbone_tensor_raises(tmp_path: Path) -> None:
    state = _model("tiny_cnn").state_dict()
    state["blocks.0.0.weight"] = torch.zeros(16, 8, 5, 5)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"'blocks.0.0.weight' has shape \(16, 8, 5, 5\), model has \(16, 8, 3, 3\)"):
        load_pretrained_weights(_model("tiny_cnn"), MODELS.get("tiny_cnn"), str(path))
