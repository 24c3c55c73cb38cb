"""asymcl.models: encoder shapes, projection head, and the three ways to get weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from asymcl import models


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny CPU tensors: one thread avoids OpenMP contention with other processes.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_resnet18_encoder_and_head_shapes():
    torch.manual_seed(0)
    model = models.build_contrastive_model("resnet18", "none").eval()
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        h = model.encoder(x)
        z = model(x)
    assert h.shape == (3, 512)
    assert z.shape == (3, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    layers = list(model.head.net)
    assert [type(m) for m in layers] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (512, 512, 128)
    # z is the L2-normalised head output
    with torch.no_grad():
        torch.testing.assert_close(z, torch.nn.functional.normalize(model.head.net(h), dim=1))


def test_resnet50_dims():
    enc = models.build_encoder("resnet50", "none").eval()
    with torch.no_grad():
        assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 2048)
    head = models.ProjectionHead(2048)
    assert (head.net[0].in_features, head.net[0].out_features, head.net[2].out_features) == (2048, 2048, 128)
    assert models.linear_classifier(2048, 2).weight.shape == (2, 2048)


def test_encoder_without_fc_equals_torchvision_trunk():
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None).eval()
    enc = models.build_encoder("resnet18", "none").eval()
    enc.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(2, 3, 40, 40)
    trunk = torch.nn.Sequential(*list(ref.children())[:-1])
    with torch.no_grad():
        torch.testing.assert_close(enc(x), trunk(x).flatten(1))


def _fail_download(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_imagenet_without_network_names_the_alternatives(monkeypatch):
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _fail_download)
    with pytest.raises(models.PretrainedWeightsError) as info:
        models.build_encoder("resnet18", "imagenet")
    msg = str(info.value)
    assert "--pretrained none" in msg and "--pretrained PATH" in msg and "name resolution" in msg


def test_imagenet_weights_are_loaded_when_available(monkeypatch):
    torch.manual_seed(2)
    fake = torchvision.models.resnet18(weights=None).state_dict()  # full state dict with fc.*
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda *a, **k: fake)
    enc = models.build_encoder("resnet18", "imagenet")
    for key, value in enc.state_dict().items():
        assert torch.equal(value, fake[key]), key


def test_local_weights_file(tmp_path):
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "r18.pt"
    torch.save(state, path)
    enc = models.build_encoder("resnet18", path)
    assert all(torch.equal(v, state[k]) for k, v in enc.state_dict().items())


def test_local_weights_mismatch_names_file_and_keys(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(models.PretrainedWeightsError) as info:
        models.build_encoder("resnet18", path)
    msg = str(info.value)
    assert str(path) in msg and "layer1.0.conv1.weight" in msg and "extra.weight" in msg


def test_local_weights_of_the_wrong_arch(tmp_path):
    path = tmp_path / "r50.pt"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(models.PretrainedWeightsError, match="do not fit"):
        models.build_encoder("resnet18", path)


def test_missing_or_unreadable_weights_file(tmp_path):
    with pytest.raises(models.PretrainedWeightsError, match="does not exist"):
        models.build_encoder("resnet18", tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a torch file")
    with pytest.raises(models.PretrainedWeightsError, match=str(junk)):
        models.build_encoder("resnet18", junk)


def test_unknown_arch():
    with pytest.raises(ValueError, match="resnet18"):
        models.build_encoder("vgg11", "none")
