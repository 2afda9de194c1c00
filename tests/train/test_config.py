"""TrainConfig: YAML round trip, defaults by mode, objective names, refusals, and the CLI flags."""
from __future__ import annotations

import pytest

from saliency_core.train.config import ConfigError, TrainConfig, config_differences, normalize_objective


def test_yaml_round_trip_keeps_every_field():
    cfg = TrainConfig(mode="ca", stages=(1, 3), objective="MinClass+MaxEnt", pool_strategy="fl", lambda_tv=0.01,
                      infiller="blur", infiller_options={"sigma": 3.5}, few_shot_per_class=10, channels_last=True,
                      max_steps=5, gumbel="hard")
    back = TrainConfig.from_yaml(cfg.to_yaml())
    assert back == cfg
    assert back.stages == (1, 3) and back.pool_strategy == "FL" and back.objective == "out-class+out-entropy"


def test_yaml_file_and_unknown_keys(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("mode: ca\nepochs: 3\nstages: [3]\n")
    cfg = TrainConfig.from_yaml(p)
    assert (cfg.mode, cfg.epochs, cfg.stages) == ("ca", 3, (3,))
    with pytest.raises(ConfigError, match="unknown config keys: lamda_tv"):
        TrainConfig.from_yaml("lamda_tv: 1\n")
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_yaml("- 1\n- 2\n")


def test_paper_defaults_by_mode():
    fix, ca = TrainConfig(), TrainConfig(mode="ca")
    assert (fix.lambda_area_in, fix.lambda_area_out, fix.lambda_tv) == (1.0, 10.0, 1e-3)
    assert ca.lambda_area_out == 15.0 and ca.pool_size == 30 and ca.pool_strategy == "L100"
    assert (ca.classifier_lr, ca.classifier_momentum, ca.classifier_weight_decay) == (1e-3, 0.9, 1e-4)
    assert (fix.lr, fix.weight_decay, fix.grad_clip, fix.stages) == (1e-3, 1e-4, 10.0, (4, 5))
    assert TrainConfig(mode="ca", lambda_area_out=3.0).lambda_area_out == 3.0
    assert ca.trains_classifier and not fix.trains_classifier
    assert not TrainConfig(mode="ca", pool_strategy="F").trains_classifier


@pytest.mark.parametrize("name, canonical", [("MaxClass", "in"), ("maxent", "out-entropy"),
                                             ("MinClass+MaxClass", "in+out-class"),
                                             ("MaxEnt+MinClass", "out-class+out-entropy"),
                                             ("in+out-entropy", "in+out-entropy")])
def test_objective_names(name, canonical):
    assert normalize_objective(name) == canonical


@pytest.mark.parametrize("kw, match", [
    (dict(mode="both"), "mode"), (dict(stages=(4, 4)), "stages"), (dict(stages=()), "stages"),
    (dict(objective="MaxFun"), "unknown objective"), (dict(pool_strategy="L10"), "pool_strategy"),
    (dict(lambda_tv=-1.0), "lambda_tv"), (dict(epoch_fraction=0.0), "epoch_fraction"),
    (dict(batch_size=0), "batch_size"), (dict(amp="fp8"), "amp"), (dict(pool_p_latest=2.0), "pool_p_latest"),
    (dict(classifier_loss="out"), "classifier_loss"), (dict(few_shot_per_class=0), "few_shot_per_class"),
    (dict(lr_schedule="exponential"), "lr_schedule"),
])
def test_bad_values_are_refused_with_the_field_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def test_resume_compatibility_ignores_run_length_only():
    a = TrainConfig().to_dict()
    assert config_differences(a, TrainConfig(epochs=20, max_steps=3, device="cpu").to_dict()) == []
    assert config_differences(a, TrainConfig(lambda_tv=0.1, seed=1).to_dict()) == ["lambda_tv", "seed"]


def test_a_run_saved_before_lr_schedule_existed_still_resumes():
    old = TrainConfig().to_dict()
    del old["lr_schedule"]
    assert config_differences(old, TrainConfig().to_dict()) == []
    assert config_differences(old, TrainConfig(lr_schedule="cosine").to_dict()) == ["lr_schedule"]


def test_cli_flags_override_yaml_and_defaults(tmp_path, capsys):
    from saliency_core.cli import main

    p = tmp_path / "run.yaml"
    p.write_text(TrainConfig(mode="ca", epochs=3, lambda_tv=0.5).to_yaml())
    rc = main(["train", "--config", str(p), "--epochs", "5", "--stages", "3,5", "--no-augment",
               "--infiller-options", "sigma=2", "--max-steps", "none", "--print-config"])
    assert rc == 0
    cfg = TrainConfig.from_yaml(capsys.readouterr().out)
    assert (cfg.mode, cfg.epochs, cfg.lambda_tv, cfg.stages, cfg.augment) == ("ca", 5, 0.5, (3, 5), False)
    assert cfg.infiller_options == {"sigma": 2} and cfg.max_steps is None and cfg.lambda_area_out == 15.0
    # switching the mode of a resolved YAML takes the new mode's default area weight
    main(["train", "--config", str(p), "--mode", "fix", "--print-config"])
    assert TrainConfig.from_yaml(capsys.readouterr().out).lambda_area_out == 10.0


def test_cli_reports_bad_config_in_one_line(capsys):
    from saliency_core.cli import main

    assert main(["train", "--mode", "bad", "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "mode" in err and "\n" not in err


def _flags(argv: list[str], capsys) -> set[str]:
    from saliency_core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    options = capsys.readouterr().out.split("examples:")[0]  # the flags listed, not those of the examples
    return {line.split()[0].rstrip(",") for line in options.splitlines() if line.strip().startswith("--")}


def test_each_train_sub_command_shows_only_its_own_flags(capsys):
    from saliency_core.cli.train_command import CA_ONLY

    masker, label, conditional = (_flags(["train", k, "--help"], capsys) for k in ("masker", "label", "conditional"))
    assert {"--lambda-area-out", "--gumbel", "--infiller", "--classifier-loss"} <= masker
    assert not {"--soundness-weight", "--film-at", "--objectives", "--tv-low"} & masker
    assert {"--soundness-weight", "--film-at", "--label-map", "--mode", "--pool-strategy", "--resume"} <= label
    assert not {"--lambda-area-out", "--gumbel", "--infiller", "--objectives", "--classifier-loss"} & label
    assert {"--objectives", "--infillers", "--tv-low", "--checkpoint-every"} <= conditional
    assert not ({"--objective", "--infiller", "--gumbel", "--soundness-weight"} | {
        "--" + n.replace("_", "-") for n in CA_ONLY}) & conditional
    overview = _flags(["train", "--help"], capsys)
    assert not overview  # the kinds are listed, not ~100 flags


def test_sub_commands_and_the_earlier_form_resolve_the_same_config(tmp_path, capsys):
    from saliency_core.cli import main
    from saliency_core.train.label_config import LabelMaskerTrainConfig

    p = tmp_path / "run.yaml"
    p.write_text(LabelMaskerTrainConfig(mode="ca", epochs=3, soundness_weight=2.0).to_yaml())
    assert main(["train", "label", "--config", str(p), "--epochs", "5", "--label-map", "--print-config"]) == 0
    new = LabelMaskerTrainConfig.from_yaml(capsys.readouterr().out)
    assert (new.mode, new.epochs, new.soundness_weight, new.label_map) == ("ca", 5, 2.0, True)
    assert main(["train", "--kind", "label", "--config", str(p), "--epochs", "5", "--label-map",
                 "--print-config"]) == 0
    assert LabelMaskerTrainConfig.from_yaml(capsys.readouterr().out) == new
    with pytest.raises(SystemExit):  # a flag of another kind is unknown to a sub-command
        main(["train", "label", "--gumbel", "soft"])
    assert "unrecognized arguments: --gumbel" in capsys.readouterr().err
    assert main(["train", "--kind", "label", "--gumbel", "soft", "--print-config"]) == 2
    assert "--gumbel is not an option of --kind label" in capsys.readouterr().err


# --- declared once: option() fields, frozen, one flag generator, one coercer ---------------------------------------

KIND_NAMES = ("masker", "label", "conditional")


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_default_is_what_it_was_before_the_configs_were_declared_with_option(kind):
    """tests/train/defaults/<kind>.yaml is ``saliency train <kind> --print-config`` from before the fields were
    ``option()`` declarations: every field's default (value and type) is unchanged, and nothing was added or lost."""
    from pathlib import Path

    import yaml

    from saliency_core.cli.train_command import config_class

    before = yaml.safe_load((Path(__file__).parent / "defaults" / f"{kind}.yaml").read_text())
    now = config_class(kind)().to_dict()
    assert list(now) == list(before)
    assert {k: (v, type(v)) for k, v in now.items()} == {k: (v, type(v)) for k, v in before.items()}


@pytest.mark.parametrize("kind, changes", [
    ("masker", dict(mode="ca", stages=(3, 5), pool_strategy="fl", infiller="blur", infiller_options={"sigma": 2.5},
                    channels_last=False, max_steps=7, lr=0.01)),
    ("label", dict(deleted_fraction=(0.1, 0.3), film_at="hidden", label_map=True, objective="gupta", top_k=4)),
    ("conditional", dict(objectives=("ssr", "both"), infillers=("blur", "noise"), upsample_factors=(1, 8),
                         default_infiller="blur", default_upsample=8, tv_low=0.001, resolution_divisor=2)),
])
def test_yaml_round_trip_of_every_kind_keeps_every_field(kind, changes, tmp_path):
    """What a run folder's config.yaml holds reads back to the same (frozen, equal) config, as resume needs."""
    import dataclasses

    from saliency_core.cli.train_command import config_class

    cls = config_class(kind)
    for cfg in (cls(), cls(**changes)):
        (tmp_path / "config.yaml").write_text(cfg.to_yaml())
        assert cls.from_yaml(tmp_path / "config.yaml") == cfg
        assert cls.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(cfg, epochs=3).epochs == 3


def test_the_fields_are_option_declarations_with_their_ranges_and_choices():
    from saliency_core.options import declared_options
    from saliency_core.train.conditional import ConditionalTrainConfig
    from saliency_core.train.label_config import LabelMaskerTrainConfig

    for cls in (TrainConfig, LabelMaskerTrainConfig, ConditionalTrainConfig):
        import dataclasses

        assert {o.name for o in declared_options(cls)} == {f.name for f in dataclasses.fields(cls)}
    opts = {o.name: o for o in declared_options(ConditionalTrainConfig)}
    assert opts["mode"].choices == ("fix", "ca") and opts["epochs"].low == 1
    assert opts["upsample_factors"].kind == "list" and opts["upsample_factors"].item == "choice"
    assert opts["tv_zero_prob"].describe() == "a number >= 0 and <= 1"


def test_the_vocabularies_the_configs_declare_are_those_the_code_implements():
    from saliency_core.classifiers.pool import THINNING_STRATEGIES
    from saliency_core.vocabulary import THINNING_STRATEGY_NAMES

    assert tuple(THINNING_STRATEGIES) == THINNING_STRATEGY_NAMES


def test_flags_go_through_the_one_coercer(capsys):
    """on/off, comma lists and none are read by options.coerce_option (no coercer of the train command's own)."""
    from saliency_core.cli import main
    from saliency_core.train.conditional import ConditionalTrainConfig

    assert main(["train", "conditional", "--channels-last", "on", "--upsample-factors", "1, 4", "--objectives",
                 "ssr,both", "--max-steps", "none", "--threads", "2", "--print-config"]) == 0
    cfg = ConditionalTrainConfig.from_yaml(capsys.readouterr().out)
    assert (cfg.channels_last, cfg.upsample_factors, cfg.objectives, cfg.max_steps, cfg.threads) == \
        (True, (1, 4), ("ssr", "both"), None, 2)
    assert ConditionalTrainConfig(channels_last="off", objectives="sdr,both").channels_last is False


@pytest.mark.parametrize("argv, line", [
    (["masker", "--channels-last", "maybe"],
     "error: --channels-last must be true or false (also yes/no, on/off, 1/0), got 'maybe'"),
    (["masker", "--epochs", "0"], "error: --epochs must be a whole number >= 1, got '0'"),
    (["masker", "--stages", "4,x"], "error: --stages must be one or more comma-separated values, each a whole number "
                                    ">= 1, got '4,x'"),
    (["conditional", "--upsample-factors", "3"], "error: --upsample-factors must be one or more comma-separated "
                                                 "values, each one of 1, 2, 4, 8, got '3'"),
    (["label", "--deleted-fraction", "0.2"], "error: --deleted-fraction must be 2 comma-separated values, each a "
                                             "number > 0 and < 1, got '0.2'"),
    (["masker", "--mode", "both"], "error: --mode must be one of fix, ca, got 'both'"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag_and_what_it_accepts(argv, line, capsys):
    from saliency_core.cli import main

    assert main(["train", *argv, "--print-config"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_a_flag_the_parser_cannot_read_is_one_line_too(capsys):
    from saliency_core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "label", "--stages"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "saliency train label: error: argument --stages: expected one argument ('saliency train label --help' "
        "lists the flags)"]
