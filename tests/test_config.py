"""Config schema, recipes and --set overrides."""

import pytest

from lorafair.config.load import apply_overrides, load_config, recipe_names, validate_config
from lorafair.errors import UserError
from helpers_lf import TINY


@pytest.mark.parametrize("name", recipe_names())
def test_every_shipped_recipe_parses(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert cfg.description, "every recipe has a one-line description"
    assert cfg.studies, "every recipe runs at least one study"


def test_defaults_and_ladder():
    cfg = validate_config({"data": {"train": {"source": "bold-wiki"}}})
    assert cfg.model.source == "embedded:smollm2-135m-instruct"
    assert cfg.variants.lora.ranks == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert cfg.variants.lora.alpha_for(8) == 16.0
    assert "heldout" in cfg.studies


def test_set_overrides_parse_yaml_values():
    raw = apply_overrides(TINY, ["train.max_steps=20", "variants.lora.ranks=[1,4]", "model.source=tiny:gpt2", "variants.dora.ranks=[2]"])
    cfg = validate_config(raw)
    assert cfg.train.max_steps == 20
    assert cfg.variants.lora.ranks == [1, 4]
    assert cfg.variants.dora.ranks == [2]
    assert cfg.model.source == "tiny:gpt2"


@pytest.mark.parametrize(
    "update, needle",
    [
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"max_stepz": 3}}, "train.max_stepz: unknown key"),
        ({"train": {"max_steps": "many"}}, "train.max_steps='many'"),
        ({"variants": {"lora": {"ranks": [0, 4]}}}, "rank 0 is not a positive integer"),
        ({"variants": {"lora": {"ranks": [-2]}}}, "rank -2 is not a positive integer"),
        ({"variants": {"lora": {"alpha": "twice"}}}, "variants.lora.alpha='twice'"),
        ({"variants": {"lr_grid": {"lorra": [1e-3]}}}, "unknown method 'lorra'"),
        ({"studies": {"toxicityy": {}}}, "studies='toxicityy'"),
        ({"studies": {"heldout": {"max_lenght": 3}}}, "studies.heldout.max_lenght: unknown key"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_bad_fields_name_the_field(update, needle):
    from helpers_lf import deep_update

    with pytest.raises(UserError) as e:
        validate_config(deep_update(TINY, update))
    assert needle in str(e.value)


def test_missing_data_is_named():
    with pytest.raises(UserError, match="data: required field is missing"):
        validate_config({"name": "x"})


def test_resolved_config_roundtrip(tmp_path):
    import yaml

    from lorafair.config.load import dump_config

    cfg = validate_config(TINY)
    again = validate_config(yaml.safe_load(dump_config(cfg)))
    assert again.model_dump(mode="json") == cfg.model_dump(mode="json")
