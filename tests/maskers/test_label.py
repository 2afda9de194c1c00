"""The label-conditioned (per-label) masker, its objective and label sampling."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights
from saliency_core.objectives import (
    calibrated_label_loss,
    completeness_soundness_loss,
    gupta_label_loss,
    soft_insertion_keep,
)
from saliency_core.train.label_masker import LabelMaskerTrainConfig, draw_labels


def _masker(tiny, film_at: str = "input"):
    torch.manual_seed(0)
    codes = output_layer_weights(tiny)
    m = LabelMasker(LabelMaskerConfig(stage_channels=tiny.stage_channels, label_dim=codes.shape[1],
                                      film_at=film_at)).eval()
    torch.nn.init.normal_(m.code[1].weight, std=0.5)  # as if trained: labels modulate the decoder
    return m, codes


@pytest.mark.parametrize("film_at", ["input", "hidden"])
def test_masks_depend_on_the_label_and_batch_consistently(tiny_classifier, film_at):
    m, codes = _masker(tiny_classifier, film_at)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stages = tiny_classifier.forward_features(x).stages
        labels = torch.tensor([1, 2, 3])
        index = torch.tensor([0, 0, 1])
        batched = m(stages, (64, 64), codes[labels], index)
        alone = m([s[1:2] for s in stages], (64, 64), codes[3:4])
    assert batched.shape == (3, 1, 64, 64) and 0 <= batched.min() and batched.max() <= 1
    assert not torch.allclose(batched[0], batched[1])           # same image, different label
    assert torch.allclose(batched[2], alone[0], atol=1e-6)      # routed to the right image


def test_hidden_film_runs_the_3x3_conv_once_per_image(tiny_classifier):
    m, codes = _masker(tiny_classifier, "hidden")
    calls = []
    m.shared.register_forward_hook(lambda mod, inp, out: calls.append(out.shape[0]))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stages = tiny_classifier.forward_features(x).stages
        out = m(stages, (64, 64), codes[torch.tensor([1, 2, 3, 4, 5])], torch.tensor([0, 0, 0, 1, 1]))
    assert out.shape == (5, 1, 64, 64)
    assert calls == [2]  # two images, five labels: the shared conv saw the two images once
    with pytest.raises(ValueError, match="film_at"):
        LabelMaskerConfig(stage_channels=tiny_classifier.stage_channels, film_at="middle")
    with pytest.raises(ValueError, match="film_at"):
        LabelMaskerTrainConfig(film_at="middle")


@pytest.mark.parametrize("film_at", ["input", "hidden"])
def test_label_checkpoint_round_trip_keeps_the_layout(tiny_classifier, tmp_path, film_at):
    from saliency_core.maskers.checkpoint import load_masker, save_masker

    m, codes = _masker(tiny_classifier, film_at)
    path = save_masker(tmp_path / "label.safetensors", m, tiny_classifier, {"film_at": film_at}, kind="label")
    loaded = load_masker(path, tiny_classifier).masker.eval()
    assert loaded.config.film_at == film_at
    with torch.no_grad():
        stages = tiny_classifier.forward_features(torch.randn(1, 3, 64, 64)).stages
        assert torch.allclose(loaded(stages, (64, 64), codes[1:4]), m(stages, (64, 64), codes[1:4]), atol=1e-6)


def test_output_layer_weights_of_timm_and_torchvision(tiny_classifier):
    from saliency_core.classifiers import load_classifier

    assert output_layer_weights(tiny_classifier).shape[0] == 10
    rn = load_classifier("torchvision:resnet18", random_init=True, num_classes=4)
    assert output_layer_weights(rn).shape == (4, 512)


def test_calibrated_and_gupta_losses_by_hand():
    logp = torch.tensor([math.log(0.2), math.log(0.9)])
    logf = torch.tensor([math.log(0.5), math.log(0.6)])
    # shortfall log(0.5/0.2) on the first, overshoot log(0.9/0.6) weighted by 2 on the second
    expected = (math.log(0.5 / 0.2) + 2 * math.log(0.9 / 0.6)) / 2
    assert calibrated_label_loss(logp, logf, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert calibrated_label_loss(logf, logf).item() == 0.0
    assert gupta_label_loss(logp).item() == pytest.approx(-(math.log(0.2) + math.log(0.9)) / 2, rel=1e-6)
    with pytest.raises(ValueError):
        calibrated_label_loss(logp, logf, -1.0)


def test_label_draws_cover_top_sampled_and_low_probability():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.tensor([[5.0, 4.0, 3.0, 0.0, -1.0, -2.0, -3.0, -4.0]] * 3), dim=1)
    labels, index = draw_labels(probs, top_k=3, low=1, generator=g)
    assert index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    per_image = labels.view(3, 3)
    assert (per_image[:, 0] == 0).all()                       # top-1 always
    assert set(per_image[:, 1].tolist()) <= {1, 2}            # sampled from the rest of the top-k
    assert (per_image[:, 2] >= 3).all()                       # a low-probability label outside the top-k


def test_uniform_draws_of_several_ranked_labels():
    g = torch.Generator().manual_seed(0)
    # rank 2 holds almost all the remaining mass: uniform draws still reach ranks 3 and 4
    probs = torch.tensor([[0.6, 0.39, 0.004, 0.003, 0.003]] * 40)
    labels, _ = draw_labels(probs, top_k=4, low=1, generator=g, rest=2, uniform=True)
    per_image = labels.view(40, 4)
    assert (per_image[:, 0] == 0).all() and (per_image[:, 3] == 4).all()
    assert all(len(set(r[1:3].tolist())) == 2 and set(r[1:3].tolist()) <= {1, 2, 3} for r in per_image)
    assert {2, 3} <= set(per_image[:, 1:3].flatten().tolist())


def test_soft_insertion_keeps_the_top_ranked_pixels():
    logits = torch.arange(16.0).view(1, 1, 4, 4) * 10   # pixel 15 ranked first, then 14, ...
    keep = soft_insertion_keep(logits, torch.tensor([[0.25, 0.5]]), temperature=0.1)
    assert keep.shape == (1, 2, 4, 4)
    hard = keep > 0.5
    # t = 0.25 keeps the top 4 of 16 pixels; the next one (the threshold) sits at exactly 0.5
    assert hard[0, 0].flatten().nonzero().flatten().tolist() == [12, 13, 14, 15]
    assert hard[0, 1].flatten().nonzero().flatten().tolist() == list(range(8, 16))
    assert keep[0, 0, 2, 3] == pytest.approx(0.5)
    # only the ranking and the spread matter: a shifted mask keeps the same pixels
    assert torch.allclose(soft_insertion_keep(logits + 3.0, torch.tensor([[0.25, 0.5]]), 0.1), keep)
    with pytest.raises(ValueError):
        soft_insertion_keep(logits[0], torch.tensor([[0.5]]))


def test_completeness_soundness_loss_by_hand():
    g = torch.tensor([0.2, 0.6, 0.005, 0.0005, 0.004], requires_grad=True)
    f = torch.tensor([0.5, 0.3, 0.02, 0.0001, 0.0001])
    loss = completeness_soundness_loss(g, f, eps1=0.01, eps2=0.001, soundness_weight=2.0)
    expected = [1 - 0.2 / 0.5,                 # incomplete, sound
                2 * (1 - 0.3 / 0.6),           # complete, unsound (weighted)
                1 - 0.01 / 0.02,               # g below eps1 counts as eps1
                0.0,                           # f below eps2, g below eps2: sound
                2 * (1 - 0.001 / 0.004)]       # f counts as eps2 for soundness
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)
    loss.sum().backward()
    assert g.grad[0] < 0 and g.grad[1] > 0 and g.grad[3] == 0   # raise g, lower g, leave it
    assert completeness_soundness_loss(f, f).abs().max() == 0


def test_bad_label_training_options():
    for bad in ({"objective": "max"}, {"overshoot_weight": -1}, {"top_k": 1}, {"fractions": 0},
                {"rest_labels": 5, "top_k": 5}, {"keep_temperature": 0}):
        with pytest.raises(ValueError):
            LabelMaskerTrainConfig(**bad)


def test_the_label_matters_on_a_two_object_image(lite0):
    """Cat on the left, coffee on the right: each label's mask covers its own object."""
    from skimage import data

    from saliency_core.explanation import ExplainConfig, explain

    cat = Image.fromarray(data.chelsea()).resize((300, 300))
    cup = Image.fromarray(data.coffee()).resize((300, 300))
    both = Image.new("RGB", (600, 300))
    both.paste(cat, (0, 0))
    both.paste(cup, (300, 0))
    cat_label, cup_label = 285, 967  # Egyptian cat, espresso
    e = explain(both, ExplainConfig(method="label-masker", labels=f"{cat_label},{cup_label}"), classifier=lite0)
    m_cat, m_cup = e.mask_for(cat_label), e.mask_for(cup_label)
    left = lambda m: m[:, :300].sum() / m.sum()  # noqa: E731 - share of the mask on the left half
    assert left(m_cat) > 0.6 and left(m_cup) < 0.4
    assert np.abs(m_cat - m_cup).mean() > 0.05


def test_insertion_step_trains_the_masker_through_the_frozen_classifier(tiny_classifier):
    from saliency_core.train.label_masker import insertion_step

    m, codes = _masker(tiny_classifier)
    m.train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        clean = tiny_classifier.forward_features(x)
        f = clean.logits.softmax(-1)
    labels, idx = torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1])
    cfg = LabelMaskerTrainConfig(fractions=3)
    loss, g, masks = insertion_step(tiny_classifier, m, x, clean.stages, codes[labels], labels, idx, f[idx, labels],
                                    cfg, torch.Generator().manual_seed(0))
    assert loss.shape == g.shape == (3,) and masks.shape == (3, 1, 64, 64)
    assert ((0 <= g) & (g <= 1)).all()
    loss.mean().backward()
    assert m.decoder[-1].weight.grad.abs().sum() > 0 and m.code[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_classifier.parameters())


def test_saliency_train_kind_label_resolves_its_own_config(capsys):
    import yaml

    from saliency_core.cli import main

    assert main(["train", "--kind", "label", "--fractions", "3", "--epochs", "2", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["objective"] == "insertion" and cfg["fractions"] == 3 and cfg["epochs"] == 2
    assert cfg["l1_weight"] == 0 and cfg["tv_weight"] == 0          # ranking-only loss: no area term
    assert main(["train", "--kind", "label", "--objective", "gupta", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["l1_weight"] == 1.0
    assert main(["train", "--kind", "label", "--objective", "max", "--print-config"]) != 0
    assert "objective must be one of" in capsys.readouterr().err


def test_scale_term_is_zero_for_a_full_mask_and_pulls_an_empty_one_up(tiny_classifier):
    """A full mask reproduces the image, so its composite probability is f(x,a) exactly: nothing to fix.
    An empty mask shows only the other image; for the label that image does not support it falls short of
    f and the gradient raises the mask."""
    from saliency_core.train.label_masker import scale_term

    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logp = tiny_classifier(x).log_softmax(-1)
    labels, idx = logp.argmax(-1), torch.tensor([0, 1])
    log_f = logp[idx, labels]
    cfg = LabelMaskerTrainConfig(scale_weight=1.0)
    full = torch.ones(2, 1, 64, 64)
    assert float(scale_term(tiny_classifier, x, full, labels, idx, log_f, cfg)) == pytest.approx(0, abs=1e-5)
    empty = torch.zeros(2, 1, 64, 64, requires_grad=True)
    loss = scale_term(tiny_classifier, x, empty, labels, idx, log_f, cfg)
    with torch.no_grad():
        shown = tiny_classifier(x.roll(1, dims=0)).log_softmax(-1)[idx, labels]
    expected = torch.relu(log_f - shown).mean()       # shortfall only, overshoot weight 1
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4) and loss.item() > 0
    loss.backward()
    assert empty.grad.sum() < 0                         # descending the loss raises the mask


def test_scale_weight_sets_l1_and_tv_and_is_checked():
    cfg = LabelMaskerTrainConfig(scale_weight=0.2)
    assert cfg.l1_weight == pytest.approx(0.2) and cfg.tv_weight == pytest.approx(0.002)
    assert LabelMaskerTrainConfig().l1_weight == 0 and LabelMaskerTrainConfig().tv_weight == 0
    for bad in ({"scale_weight": -1}, {"scale_weight": 0.1, "objective": "gupta"}):
        with pytest.raises(ValueError):
            LabelMaskerTrainConfig(**bad)


def test_classifier_head_is_the_class_activation_map_source(tiny_classifier):
    """Averaging w_a . head + b_a over space gives the label's logit (timm and torchvision ResNets)."""
    from saliency_core.classifiers import load_classifier

    rn = load_classifier("torchvision:resnet18", random_init=True, num_classes=4).eval()
    for clf in (tiny_classifier, rn):
        out = clf.forward_features(torch.randn(2, 3, 64, 64))
        fc = getattr(clf.model, "fc", None) or clf.model.get_classifier()
        cam = torch.einsum("cd,bdhw->bchw", fc.weight, out.head) + fc.bias[:, None, None]
        assert torch.allclose(cam.mean((2, 3)), out.logits, atol=1e-4)


def test_label_map_masker_starts_from_the_cam_and_round_trips(tiny_classifier, tmp_path):
    from saliency_core.maskers.checkpoint import load_masker, save_masker

    torch.manual_seed(0)
    codes = output_layer_weights(tiny_classifier)
    m = LabelMasker(LabelMaskerConfig(stage_channels=tiny_classifier.stage_channels, label_dim=codes.shape[1],
                                      film_at="hidden", label_map=True)).eval()
    x = torch.randn(2, 3, 64, 64)
    labels, index = torch.tensor([1, 2, 1]), torch.tensor([0, 0, 1])
    with torch.no_grad():
        out = tiny_classifier.forward_features(x)
        torch.nn.init.zeros_(m.decoder.weight)
        torch.nn.init.zeros_(m.decoder.bias)
        logits = m.mask_logits(m.features(out.stages, (64, 64)), codes[labels], index, out.head)
        cam = torch.einsum("kd,kdhw->khw", codes[labels], out.head[index])[:, None]
        cam = F.interpolate(cam - cam.mean((2, 3), keepdim=True), size=(16, 16), mode="bilinear", align_corners=False)
        assert torch.allclose(logits, cam, atol=1e-4)               # skip = 1: an untrained masker ranks like CAM
        assert not torch.allclose(logits[0], logits[1])              # the label's own map
        with pytest.raises(ValueError, match="class activation map"):
            m(out.stages, (64, 64), codes[labels], index)           # no head given
        path = save_masker(tmp_path / "l.safetensors", m, tiny_classifier, {}, kind="label")
        loaded = load_masker(path, tiny_classifier).masker.eval()
        assert loaded.config.label_map
        assert torch.allclose(loaded(out.stages, (64, 64), codes[labels], index, head=out.head),
                              m(out.stages, (64, 64), codes[labels], index, head=out.head), atol=1e-6)
    with pytest.raises(ValueError, match="label_map"):
        LabelMaskerConfig(stage_channels=tiny_classifier.stage_channels, film_at="input", label_map=True)


def _photo_csv(tmp_path, n: int = 6):
    """A tiny labelled set of real photos (skimage crops), one class each."""
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut()]
    lines = ["file,label"]
    for i in range(n):
        img = Image.fromarray(photos[i % 3]).crop((i * 10, i * 10, i * 10 + 200, i * 10 + 200))
        img.save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{[285, 967, 834][i % 3] + i // 3}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "labels.csv"


@pytest.mark.parametrize("mode", ["fix", "ca"])
def test_train_label_masker_fix_and_ca_end_to_end(tmp_path, mode, lite0):
    """Two real steps on the embedded classifier: FIX leaves it alone; CA trains it, and the checkpoint carries
    the co-trained classifier, which the masker reads while the embedded classifier is explained."""
    from saliency_core.maskers.checkpoint import load_masker
    from saliency_core.methods import create_method
    from saliency_core.train.label_masker import train_label_masker

    cfg = LabelMaskerTrainConfig(data=str(_photo_csv(tmp_path)), out=str(tmp_path / "run"), mode=mode,
                                 pool_strategy="L100", label_map=True, batch_size=2, max_steps=2, epochs=1,
                                 image_size=96, fractions=1, val_fraction=0.2, threads=1)
    path = train_label_masker(cfg)
    ckpt = load_masker(path, lite0)
    steps = __import__("pandas").read_csv(tmp_path / "run" / "steps.csv")
    assert len(steps) == 2 and steps["loss"].notna().all()
    if mode == "fix":
        assert ckpt.classifier is lite0 and (steps["cls_loss"] == 0).all()
    else:
        assert ckpt.classifier is not lite0 and (steps["cls_loss"] > 0).all()
        moved = [(a - b).abs().max() for a, b in zip(ckpt.classifier.parameters(), lite0.parameters())]
        assert max(moved) > 0                                          # the classifier really trained
        assert ckpt.classifier.identity != lite0.identity
    x = lite0.preprocessing.normalize(torch.rand(1, 3, 96, 96))
    with torch.no_grad():
        result = create_method("masker", checkpoint=str(path))(lite0, x, [285, 967], lite0.forward_features(x))
    assert result.per_label and result.masks.shape == (2, 96, 96) and torch.isfinite(result.masks).all()


def test_delete_top_removes_exactly_the_top_share():
    from saliency_core.train.label_masker import delete_top

    x = torch.ones(2, 3, 4, 4)
    masks = torch.arange(32, dtype=torch.float32).view(2, 1, 4, 4)
    out = delete_top(x, masks, torch.tensor([0.25, 0.5]))
    assert (out[0, 0] == 0).sum() == 4 and (out[1, 0] == 0).sum() == 8
    assert out[0, 0, 3].sum() == 0 and out[0, 0, :3].min() == 1       # the 4 highest-ranked pixels went gray


def test_bad_co_training_options():
    for bad in ({"mode": "agnostic"}, {"pool_strategy": "L7"}, {"deleted_fraction": (0.5, 0.2)},
                {"deleted_fraction": "0.1"}, {"pool_size": 0}, {"classifier_grad_clip": -1}):
        with pytest.raises(ValueError):
            LabelMaskerTrainConfig(**bad)


def test_label_masker_method_refuses_a_label_agnostic_checkpoint(tiny_classifier, tmp_path):
    from saliency_core.maskers.checkpoint import CheckpointError, save_masker
    from saliency_core.maskers.phang import MaskerConfig, PhangMasker
    from saliency_core.methods import create_method

    phang = save_masker(tmp_path / "fix.safetensors", PhangMasker(MaskerConfig(
        stage_channels=tiny_classifier.stage_channels)).eval(), tiny_classifier, {})
    with pytest.raises(CheckpointError, match="'phang' masker checkpoint.*use the 'masker' method"):
        create_method("label-masker", checkpoint=str(phang)).load(tiny_classifier)
    assert create_method("masker", checkpoint=str(phang)).load(tiny_classifier).kind == "phang"
