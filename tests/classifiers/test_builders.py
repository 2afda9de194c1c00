"""The classifier contract on the real default model and on small random ones."""
import pytest
import torch

from saliency_core.classifiers import (
    ClassifierLoadError,
    imagenet_class_names,
    load_classifier,
    state_dict_hash,
)


def test_default_classifier_recognises_real_photos(lite0, chelsea):
    from PIL import Image
    from skimage import data

    def top5(img):
        with torch.no_grad():
            p = lite0(lite0.preprocessing.pil_to_input(img)).softmax(-1)[0]
        return [lite0.class_names[i] for i in p.topk(5).indices]

    assert {"tabby", "tiger cat", "Egyptian cat"} & set(top5(chelsea))
    assert {"espresso", "cup", "coffee mug"} & set(top5(Image.fromarray(data.coffee())))


def test_stages_come_from_the_same_forward_and_are_ordered(lite0):
    x = torch.randn(1, 3, 224, 288)
    with torch.no_grad():
        out = lite0.forward_features(x)
        logits = lite0(x)
    assert torch.allclose(out.logits, logits, atol=1e-5)
    assert [s.shape[1] for s in out.stages] == [16, 24, 40, 112, 320] == lite0.stage_channels
    sizes = [s.shape[-2:] for s in out.stages]
    assert sizes == [(112, 144), (56, 72), (28, 36), (14, 18), (7, 9)]
    assert [t.shape for t in out.select((4, 5))] == [out.stages[3].shape, out.stages[4].shape]


def test_default_preprocessing_is_tf_normalisation(lite0):
    pre = lite0.preprocessing
    x01 = torch.tensor([0.0, 127 / 255, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 1)
    got = pre.normalize(x01).flatten().tolist()
    assert got == pytest.approx([-127 / 128, 0.0, 128 / 128], abs=1e-6)
    assert torch.allclose(pre.denormalize(pre.normalize(x01)), x01, atol=1e-6)


def test_resize_policy_keeps_the_whole_image(lite0):
    pre = lite0.preprocessing
    assert pre.working_size(451, 300) == (224, 352)   # wide image: shorter side 224, aspect kept
    assert pre.working_size(300, 451) == (352, 224)
    assert pre.working_size(2000, 100) == (224, 448)  # extreme aspect: squeezed to 2:1
    assert all(s % 32 == 0 for s in pre.working_size(517, 389))


def test_class_names_are_imagenet():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"


def test_identity_changes_with_weights(tiny_classifier):
    before = tiny_classifier.identity
    state = {k: v.clone() for k, v in tiny_classifier.model.state_dict().items()}
    k = next(k for k, v in state.items() if v.is_floating_point())
    state[k] += 1
    assert state_dict_hash(state) != before.split("@")[1]
    assert state_dict_hash(tiny_classifier.model.state_dict()) == before.split("@")[1]


def test_classifier_is_frozen(tiny_classifier):
    assert not tiny_classifier.training
    assert not any(p.requires_grad for p in tiny_classifier.parameters())


def test_weights_file_errors_name_the_file(tmp_path, tiny_classifier):
    with pytest.raises(ClassifierLoadError, match="needs a local weights file"):
        load_classifier("resnet50")
    missing = tmp_path / "nope.pth"
    with pytest.raises(ClassifierLoadError, match="nope.pth.*does not exist"):
        load_classifier("resnet50", weights=missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ClassifierLoadError, match="corrupt.pth.*could not be read"):
        load_classifier("resnet50", weights=corrupt)
    wrong = tmp_path / "wrong.pth"
    torch.save(tiny_classifier.model.state_dict(), wrong)
    with pytest.raises(ClassifierLoadError, match="wrong.pth.*does not match"):
        load_classifier("timm:resnet18", weights=wrong)
    with pytest.raises(ClassifierLoadError, match="unknown classifier"):
        load_classifier("alexnet-2000")


def test_timm_and_torchvision_models_load_from_local_files(tmp_path, tiny_classifier):
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_classifier.model.state_dict().items()}}, path)
    again = load_classifier("timm:test_efficientnet", weights=path, num_classes=10)
    assert again.identity.split("@")[1] == tiny_classifier.identity.split("@")[1]
    rn = load_classifier("torchvision:resnet18", random_init=True, num_classes=7)
    out = rn.forward_features(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 7)
    assert [s.shape[1] for s in out.stages] == [64, 64, 128, 256, 512]
    safe = tmp_path / "rn.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in rn.model.state_dict().items()}, str(safe))
    rn2 = load_classifier("torchvision:resnet18", weights=safe, num_classes=7)
    assert rn2.identity == rn.identity


def test_channels_last_layout_changes_speed_not_results_or_identity(lite0, chelsea):
    """Classifiers load with NHWC weights (faster CPU forwards); the outputs, the hidden stages and the identity a
    masker checkpoint records are those of the usual layout."""
    conv = next(m for m in lite0.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    plain = load_classifier("efficientnet_lite0", channels_last=False)
    conv = next(m for m in plain.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous()
    x = lite0.preprocessing.pil_to_input(chelsea)
    with torch.no_grad():
        a, b = lite0.forward_features(x), plain.forward_features(x)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    assert all(torch.allclose(s, t, atol=1e-4) for s, t in zip(a.stages, b.stages))
    assert lite0.identity == plain.identity
