"""Settings are defined once: the evaluation and directions dataclasses generate `dcgan evaluate`'s and
`dcgan directions`' flags, the FidEvaluator's parameters and the pipeline's sections; one function turns text into a
field's value for flags and `--set`; "off" is None everywhere."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from dcgan.cli import BUILTIN, build_parser, main
from dcgan.cli_args import parse_value
from dcgan.config import ConfigError
from dcgan.directions import DirectionsConfig
from dcgan.metrics.config import EvaluationConfig
from pipeline.config import PipelineConfig, preset


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions}


def test_every_evaluation_setting_is_a_flag_a_component_parameter_and_a_pipeline_setting():
    from components.evaluator.component import FidEvaluatorSpec
    from pipeline.config import EvaluationSettings

    fields = _fields(EvaluationConfig)
    assert fields <= _dests(_subparser("evaluate"))
    # Besides the settings: where the examples' splits are and where the store baseline lives (open-source KFP).
    wiring = {"eval_split", "train_split", "baseline_base_path", "baseline_model_config"}
    assert set(FidEvaluatorSpec.PARAMETERS) == fields | wiring
    assert _fields(EvaluationSettings) == fields | {"regression_check"}
    optional = {name for name, p in FidEvaluatorSpec.PARAMETERS.items() if p.optional}
    assert optional == {"num_real", "memorization_reference", "fid_threshold", "max_fid_regression",
                        "baseline_base_path", "baseline_model_config"}


def test_off_is_none_in_every_place_an_evaluation_setting_is_given():
    """The pipeline used to spell "no absolute FID rule" as 0 and the library as None; now `none` everywhere."""
    config = preset("smoke").override(["evaluation.fid_threshold=none", "evaluation.num_real=none",
                                       "evaluation.memorization_reference=none"]).validate()
    e = config.evaluation
    assert (e.fid_threshold, e.num_real, e.memorization_reference) == (None, None, None)
    args = _subparser("evaluate").parse_args(["MODEL", "DATA", "--fid-threshold", "none", "--num-real", "none",
                                               "--max-regression", "2.5"])
    assert (args.fid_threshold, args.num_real, args.max_fid_regression) == (None, None, 2.5)
    with pytest.raises(ConfigError, match="evaluation: fid_threshold=-1.0"):
        preset("smoke").override(["evaluation.fid_threshold=-1"]).validate()


def test_the_pipeline_passes_every_evaluation_setting_to_the_component():
    from pipeline.config import EvaluationSettings

    settings = EvaluationSettings(num_samples=64, fid_threshold=10.0, max_fid_regression=1.0, pr_k=5, grid_size=4,
                                  regression_check=False)
    args = settings.component_args()
    assert set(args) == _fields(EvaluationConfig)
    assert (args["pr_k"], args["grid_size"], args["fid_threshold"], args["max_fid_regression"]) == (5, 4, 10.0, None)
    assert EvaluationConfig(**args).validate().num_samples == 64


def test_every_directions_setting_is_a_flag_and_a_pipeline_setting():
    from pipeline.config import DirectionsSettings

    fields = _fields(DirectionsConfig)
    assert fields <= _dests(_subparser("directions"))
    assert _fields(DirectionsSettings) == fields | {"enabled"}
    custom = preset("smoke").override(["directions.amounts=-2,0,2", "directions.threshold=0.6"]).directions
    document = custom.custom_config()
    assert set(document) == fields
    assert DirectionsConfig.from_dict(document) == DirectionsConfig(**{**document, "amounts": (-2.0, 0.0, 2.0)})
    assert PipelineConfig.from_dict(preset("smoke").to_dict()) == preset("smoke")


def test_dcgan_directions_is_a_library_command_with_its_flags():
    """The library's job, registered by the library's CLI (it was registered by the studio's CLI module)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for add in BUILTIN:
        add(sub)
    args = parser.parse_args(["directions", "MODEL", "--data", "DATA", "--samples", "400", "--eval-samples", "48",
                              "--epochs", "2", "--seed", "3", "--out", "x.json", "--json"])
    assert (args.saved_model_dir, args.data, args.samples, args.eval_samples, args.epochs, args.seed, args.out,
            args.json) == ("MODEL", "DATA", 400, 48, 2, 3, "x.json", True)


def test_bad_directions_settings_are_usage_errors(tmp_path, capsys):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert main(["directions", str(tmp_path), "--data", str(tmp_path), "--samples", "0"]) == 2
    err = capsys.readouterr().err
    assert "samples=0 must be a positive integer" in err and "Traceback" not in err


@pytest.mark.parametrize("raw,hint,value", [
    ("yes", bool, True), ("off", bool, False), ("12", int, 12), ("0.5", float, 0.5), ("a,b", str, "a,b"),
    ("none", int | None, None), ("7", int | None, 7), ("-1,0.5", tuple[float, ...], (-1.0, 0.5)),
])
def test_one_function_turns_text_into_a_field_value(raw, hint, value):
    assert parse_value(raw, hint) == value


def test_flags_and_set_spell_values_and_errors_alike(capsys):
    with pytest.raises(ConfigError, match=r"--set train.ema_decay='x': expected float, got 'x'"):
        preset("smoke").override(["train.ema_decay=x"])
    with pytest.raises(SystemExit):
        _subparser("train").parse_args(["--ema-decay", "x"])
    assert "expected float, got 'x'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="expected int or none, got 'lots'"):
        parse_value("lots", int | None)
