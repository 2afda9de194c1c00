"""The CAM prior of the area-conditioned masker (score_prior "cam"): at step 0 its region at area a is exactly the
top-a region of the explained class's activation map, the prior is recorded in the checkpoint (older configs read
as "none"), a classifier without a pre-pool map is refused in one line, and a training step learns from it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from saliency_core.errors import OptionError
from saliency_core.maskers.area_prior import class_activation_maps, prior_for
from saliency_core.maskers.checkpoint import load_masker, read_metadata, save_masker
from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig, Setting
from tests.train.conftest import tiny_data  # noqa: F401  (the training test's image folder fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
AREA = dict(target_area_low=0.05, target_area_high=0.6, default_area=0.2, resolution_divisor=8,
            objective_branches="head", smooth_levels=0, hidden_channels=8, area_hidden=8, film_hidden=8)


def make(classifier, prior: str = "cam") -> ConditionalMasker:
    torch.manual_seed(3)
    return ConditionalMasker(ConditionalMaskerConfig(stage_channels=classifier.stage_channels, score_prior=prior,
                                                     **AREA)).eval()


@pytest.fixture(scope="module")
def batch(tiny_classifier):
    torch.manual_seed(0)
    x = tiny_classifier.preprocessing.normalize(torch.rand(3, 3, 128, 128))
    with torch.no_grad():
        return x, tiny_classifier.forward_features(x)


def is_top_region(region: torch.Tensor, score: torch.Tensor, area: float) -> bool:
    """``region`` (bool, H x W) is a top-a region of ``score``: none of its pixels scores below any pixel outside it,
    and it has round(a N) pixels, give or take the pixels tied with the a-quantile (the flat cells of a bilinear
    upsampling), which the masker's threshold cannot order."""
    k = round(area * region.numel())
    kth = score.flatten().topk(k).values[-1]
    ties = int(((score - kth).abs() <= 1e-7).sum())
    return abs(int(region.sum()) - k) < ties and float(score[region].min()) >= float(score[~region].max()) - 1e-7


def test_cam_by_hand_is_the_last_layers_weights_on_the_head(tiny_classifier, batch):
    _, out = batch
    assert out.head is not None  # the tiny timm classifier exposes its pre-pool map
    w = tiny_classifier.model.get_classifier().weight
    cam = class_activation_maps(tiny_classifier, out.head, torch.tensor([2, 5, 7]))
    assert cam.shape == (3, 1, *out.head.shape[-2:])
    assert torch.allclose(cam[1, 0, 1, 2], (w[5] * out.head[1, :, 1, 2]).sum(), atol=1e-5)
    # its average over space is the label's logit less the bias (what makes it the class's own evidence map)
    b = tiny_classifier.model.get_classifier().bias
    assert torch.allclose(cam.mean(dim=(1, 2, 3)) + b[[2, 5, 7]], out.logits[[0, 1, 2], [2, 5, 7]], atol=1e-4)


@pytest.mark.parametrize("area", [0.05, 0.1, 0.2, 0.45])
@pytest.mark.parametrize("objective", ["ssr", "sdr"])
def test_at_step_0_the_region_is_cams_top_area_region(tiny_classifier, batch, area, objective):
    x, out = batch
    masker = make(tiny_classifier)
    labels = out.logits.argmax(-1)
    prior = prior_for(masker, tiny_classifier, out.head, labels)
    m = masker(out.stages, (128, 128), Setting(objective, "gray", 1e-4, 1, 1.0, area), prior=prior)[:, 0]
    cam = F.interpolate(class_activation_maps(tiny_classifier, out.head, labels), size=(128, 128), mode="bilinear",
                        align_corners=False)[:, 0]
    for i in range(3):
        assert is_top_region(m[i] > 0.5, cam[i], area), i
    # without the prior the same network's region is another one (so the check above is not vacuous)
    plain = make(tiny_classifier, "none")
    p = plain(out.stages, (128, 128), Setting(objective, "gray", 1e-4, 1, 1.0, area))[:, 0]
    assert not all(is_top_region(p[i] > 0.5, cam[i], area) for i in range(3))


def test_explain_uses_the_first_requested_label_and_the_checkpoint_records_the_prior(tiny_classifier, batch,
                                                                                     tmp_path):
    x, out = batch
    path = save_masker(tmp_path / "cam.safetensors", make(tiny_classifier), tiny_classifier, {}, kind="conditional")
    assert read_metadata(path)["masker_config"]["score_prior"] == "cam"
    ck = load_masker(path, classifier=tiny_classifier)
    assert ck.masker.config.score_prior == "cam"
    one = tiny_classifier.forward_features(x[:1])
    setting = Setting("sdr", "gray", 1e-4, 1, 1.0, 0.1)
    for labels in ([4], [6, 4]):
        m, per_label = ck.explain(one.stages, one.head, (128, 128), labels, setting=setting)
        cam = F.interpolate(class_activation_maps(tiny_classifier, one.head, torch.tensor(labels[:1])),
                            size=(128, 128), mode="bilinear", align_corners=False)[0, 0]
        assert not per_label and is_top_region(m[0] > 0.5, cam, 0.1)
    # a config without the field (every older checkpoint) reads as no prior
    d = ck.masker.config.to_dict()
    del d["score_prior"]
    assert ConditionalMaskerConfig.from_dict(d).score_prior == "none"


def test_a_missing_head_or_prior_and_a_prior_without_areas_are_refused_in_one_line(tiny_classifier, batch):
    _, out = batch
    masker = make(tiny_classifier)
    with pytest.raises(OptionError, match=r"^score_prior 'cam' needs a classifier that exposes the map its last "
                                          r"linear layer pools \(ClassifierOutput.head\); this one has none$"):
        prior_for(masker, tiny_classifier, None, [0])
    with pytest.raises(OptionError, match="pass prior="):
        masker(out.stages, (128, 128), Setting(area=0.2))
    with pytest.raises(OptionError, match="score_prior 'cam' is for area-conditioned maskers only"):
        ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels, score_prior="cam")
    with pytest.raises(OptionError, match="score_prior"):
        ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels, score_prior="gradcam", **AREA)
    assert prior_for(make(tiny_classifier, "none"), tiny_classifier, None, [0]) is None


@pytest.mark.parametrize("augment", [True, False])  # the clean pass per step, or cached with its CAM
def test_a_training_step_starts_from_the_prior_and_moves_the_decoder(tiny_data, tmp_path, augment):
    from torch.utils.data import default_collate

    from saliency_core.train.conditional import ConditionalTrainer
    from tests.train.test_conditional import tiny_cfg

    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "c", score_prior="cam", target_area_low=0.1,
                                     target_area_high=0.5, default_area=0.2, resolution_divisor=8, smooth_levels=0,
                                     objective_branches="head", infillers=("gray",), upsample_factors=(1,),
                                     grad_temperature=0.25, augment=augment))
    assert tr.masker.config.score_prior == "cam"
    heads = tr.masker.area_decoder.heads
    assert all(float(h.weight.detach().abs().sum()) == 0 for h in heads)  # step 0: the scores are the CAM alone
    x, y = default_collate([tr.train_ds[i] for i in range(4)])
    row = tr.training_step(x, y)
    assert torch.isfinite(torch.tensor(row["total"])) and row["area_error"] < 0.02
    assert any(float(h.weight.detach().abs().sum()) > 0 for h in heads)  # the correction learns
    assert float(tr.masker.prior_log_scale.detach().abs().sum()) > 0  # and so does the prior's scale
    if not augment:
        assert tr.clean_cache.prior.shape == (4, 1, 1, 1)  # each image's CAM (a 32-pixel image: a 1 x 1 head)


def test_a_masker_with_prior_features_starts_at_cam_reads_its_terms_and_saves(tiny_classifier, batch, tmp_path):
    """prior_features: the decoder reads the CAM's terms w_t,c * head_c. Step 0 is still CAM's top-a region; once
    the decoder has weights, two term maps with the same sum (the same CAM) give different regions; the checkpoint
    rebuilds it; a plain CAM (one channel) is refused in one line."""
    from saliency_core.maskers.area_prior import head_channels

    _, out = batch
    torch.manual_seed(3)
    cfg = ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels, score_prior="cam", prior_features=4,
                                  head_channels=head_channels(tiny_classifier), **AREA)
    masker = ConditionalMasker(cfg).eval()
    labels = out.logits.argmax(-1)
    terms = prior_for(masker, tiny_classifier, out.head, labels)
    assert terms.shape == out.head.shape
    assert torch.allclose(terms.sum(1, keepdim=True), class_activation_maps(tiny_classifier, out.head, labels),
                          atol=1e-5)
    setting = Setting("ssr", "gray", 1e-4, 1, 1.0, 0.2)
    m = masker(out.stages, (128, 128), setting, prior=terms)[:, 0]
    cam = F.interpolate(terms.sum(1, keepdim=True), size=(128, 128), mode="bilinear", align_corners=False)[:, 0]
    assert all(is_top_region(m[i] > 0.5, cam[i], 0.2) for i in range(3))
    for head in masker.area_decoder.heads:  # a trained decoder
        torch.nn.init.normal_(head.weight, 0.0, 0.5)
    moved = terms.roll(1, dims=1)  # the same sum over channels, other terms
    a, _ = masker(out.stages, (128, 128), setting, prior=terms, with_scores=True)
    b, _ = masker(out.stages, (128, 128), setting, prior=moved, with_scores=True)
    assert not torch.equal(a > 0.5, b > 0.5)
    path = save_masker(tmp_path / "terms.safetensors", masker, tiny_classifier, {}, kind="conditional")
    ck = load_masker(path, classifier=tiny_classifier)
    assert ck.masker.config.prior_features == 4
    assert torch.equal(ck.masker(out.stages, (128, 128), setting, prior=terms), masker(out.stages, (128, 128),
                                                                                       setting, prior=terms))
    with pytest.raises(OptionError, match="reads the class activation map's terms"):
        masker(out.stages, (128, 128), setting, prior=terms.sum(1, keepdim=True))
    with pytest.raises(OptionError, match="prior_features needs score_prior 'cam'"):
        ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels, prior_features=4, head_channels=8,
                                **AREA)


def test_context_layers_widen_what_a_cell_sees_start_at_cam_and_save(tiny_classifier, batch, tmp_path):
    """area_context: residual dilated layers after the hidden layer. Without them a score cell reads the stage
    features of its 5 x 5 neighbourhood (two 3 x 3 convolutions); with two (dilations 2, 4) a change 6 cells away
    reaches it. Step 0 is still CAM's top-a region and the checkpoint rebuilds it."""
    _, out = batch
    setting = Setting("ssr", "gray", 1e-4, 1, 1.0, 0.2)

    def reach(context: int) -> tuple[float, ConditionalMasker]:
        torch.manual_seed(3)
        masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels,
                                                           area_context=context, **AREA)).eval()
        for head in masker.area_decoder.heads:  # a trained head (the area decoder's heads start small)
            torch.nn.init.normal_(head.weight, 0.0, 0.5)
        d = masker.area_decoder
        feats = torch.randn(1, d.channels, 16, 16)
        code = torch.zeros(1, masker.config.condition_size)
        branch = torch.zeros(1, dtype=torch.long)
        moved = feats.clone()
        moved[0, :, 8, 14] += 5.0  # 6 cells right of (8, 8)
        with torch.no_grad():
            change = (d(moved, code, branch) - d(feats, code, branch))[0, 0, 8, 8].abs()
        return float(change), masker

    near, _ = reach(0)
    far, masker = reach(2)
    assert near == 0.0 and far > 1e-4
    assert len(masker.area_decoder.context) == 2
    assert [c.dilation for c in masker.area_decoder.context] == [(2, 2), (4, 4)]
    torch.manual_seed(3)
    cam_masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels,
                                                           score_prior="cam", area_context=2, **AREA)).eval()
    labels = out.logits.argmax(-1)
    prior = prior_for(cam_masker, tiny_classifier, out.head, labels)
    m = cam_masker(out.stages, (128, 128), setting, prior=prior)[:, 0]
    cam = F.interpolate(prior, size=(128, 128), mode="bilinear", align_corners=False)[:, 0]
    assert all(is_top_region(m[i] > 0.5, cam[i], 0.2) for i in range(3))
    path = save_masker(tmp_path / "context.safetensors", masker, tiny_classifier, {}, kind="conditional")
    ck = load_masker(path, classifier=tiny_classifier)
    assert ck.masker.config.area_context == 2
    assert torch.equal(ck.masker(out.stages, (128, 128), setting), masker(out.stages, (128, 128), setting))
