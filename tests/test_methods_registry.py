"""PEFT methods as a registry (lorafair.methods): the config schema, the ladder, peft_config, the runner's and
the shift study's base-view rule all read it, so a new LoRA-family method is one register_method entry."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lorafair.methods import (METHODS, Method, adapters_off_is_base, base_rewriting_inits, get_method, is_peft_method,
                              peft_methods, register_method)

SRC = Path(__file__).resolve().parents[1] / "src" / "lorafair"


def test_builtin_methods_in_ladder_order():
    from lorafair.config.schema import PEFT_METHODS

    assert peft_methods() == PEFT_METHODS == ("lora", "dora", "rslora", "pissa")
    assert [m for m in peft_methods() if not get_method(m).adapters_off_is_base] == ["pissa"]
    assert adapters_off_is_base("lora") and not adapters_off_is_base("pissa")
    assert adapters_off_is_base("full") and adapters_off_is_base("base")  # nothing to disable
    assert not is_peft_method("full") and is_peft_method("dora")
    assert base_rewriting_inits()[0] == "pissa" and "olora" in base_rewriting_inits()


def test_schema_fields_follow_the_registry():
    from lorafair.config.schema import MethodConfig, VariantsConfig

    fields = VariantsConfig.model_fields
    assert list(fields) == ["base", "full", "lora", "dora", "rslora", "pissa", "lr_grid", "external"]
    for name in peft_methods():
        assert fields[name].annotation is MethodConfig
        assert fields[name].description == get_method(name).description
    v = VariantsConfig()
    assert v.lora.ranks == [1, 2, 4, 8, 16, 32, 64, 128, 256] and v.dora.ranks == v.rslora.ranks == v.pissa.ranks == []
    assert v.lora is not VariantsConfig().lora  # a fresh default each time
    assert "keys: full, lora, dora, rslora, pissa" in fields["lr_grid"].description
    with pytest.raises(Exception, match="unknown method 'lorra' in lr_grid; allowed: full, lora, dora, rslora, pissa"):
        VariantsConfig(lr_grid={"lorra": [1e-3]})
    with pytest.raises(Exception, match="Extra inputs"):
        VariantsConfig(olora={"ranks": [2]})


@pytest.mark.parametrize("method", ["lora", "dora", "rslora", "pissa"])
def test_peft_config_from_lora_kwargs(method):
    from lorafair.adapt.peft_methods import peft_config

    c = peft_config(method, 4, 8.0, 0.1, ["q_proj"])
    assert (c.r, c.lora_alpha, c.lora_dropout, set(c.target_modules)) == (4, 8.0, 0.1, {"q_proj"})
    assert c.use_dora == (method == "dora") and c.use_rslora == (method == "rslora")
    assert (c.init_lora_weights == "pissa") == (method == "pissa")
    with pytest.raises(ValueError, match="unknown PEFT method"):
        peft_config("full", 4, 8.0, 0.0, "all-linear")


def test_a_method_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_method(Method("lora"))
    assert METHODS.get("lora").lora_kwargs == {}


def test_no_method_name_compared_outside_the_registry():
    """No code outside methods.py (and the report's colours) compares a method name with a string."""
    names = "|".join(peft_methods())
    pat = re.compile(rf"""(==|!=|\bin\b)\s*[(\[{{]?\s*["']({names})["']|["']({names})["']\s*(==|!=|,\s*["'])""")
    hits = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in ("methods.py", "report/style.py"):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pat.search(line) and not line.lstrip().startswith("#"):
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


NEW_METHOD = r"""
import json, sys
from lorafair.methods import Method, register_method
register_method(Method("olora2", lora_kwargs={"init_lora_weights": "olora"}, adapters_off_is_base=False,
                       description="OLoRA (QR-orthonormal init) through peft."))
from lorafair.adapt.peft_methods import peft_config
from lorafair.adapt.train import build_variant_model
from lorafair.run.ladder import plan_variants
from lorafair.config.load import validate_config
from lorafair.config.schema import PEFT_METHODS, VariantsConfig
from lorafair.methods import adapters_off_is_base, base_rewriting_inits
from lorafair.models.tiny import build_tiny

cfg = validate_config({"model": {"source": "tiny:llama"}, "data": {"train": {"source": "bold-wiki"}},
                       "variants": {"lora": {"ranks": [1]}, "olora2": {"ranks": [2]}, "lr_grid": {"olora2": [1e-3, 1e-2]}}})
variants = plan_variants(cfg)
v = next(x for x in variants if x.method == "olora2")
lc = peft_config(v.method, v.rank, v.alpha, v.dropout, list(v.target_modules) if not isinstance(v.target_modules, str) else v.target_modules)
base, _ = build_tiny("llama")
model = build_variant_model(base, v, 0)
json.dump({
    "methods": list(PEFT_METHODS), "fields": list(VariantsConfig.model_fields),
    "description": VariantsConfig.model_fields["olora2"].description,
    "variants": [x.name for x in variants], "lrs": list(v.lrs), "alpha": v.alpha,
    "init": lc.init_lora_weights, "r": lc.r, "peft_init": model.peft_config["default"].init_lora_weights,
    "base_view": adapters_off_is_base("olora2"), "rewriting": list(base_rewriting_inits()),
}, sys.stdout)
"""


def test_a_new_method_is_one_register_method_entry(tmp_path):
    """Registered before the schema is built (a subprocess: the registry and schema of this one stay as they are):
    the recipe section validates, the ladder plans its variants and their LoraConfig carries the method's kwargs."""
    p = subprocess.run([sys.executable, "-c", NEW_METHOD], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["methods"] == ["lora", "dora", "rslora", "pissa", "olora2"]
    assert got["fields"] == ["base", "full", "lora", "dora", "rslora", "pissa", "olora2", "lr_grid", "external"]
    assert got["description"] == "OLoRA (QR-orthonormal init) through peft."
    assert got["variants"] == ["base", "full", "lora-r1", "olora2-r2"]
    assert got["lrs"] == [1e-3, 1e-2] and got["alpha"] == 4.0
    assert got["init"] == got["peft_init"] == "olora" and got["r"] == 2
    assert got["base_view"] is False and got["rewriting"][:2] == ["pissa", "olora"]
