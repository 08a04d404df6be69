"""Bad recipes and config values (issue #12): YAML alias bombs, recursive aliases, deep nesting, a step budget
without steps or epochs; one `error: …` line, exit code 2, nothing written."""

import os
import time

import pytest
import yaml

from lorafair.config.load import read_recipe, validate_config
from lorafair.errors import UserError
from helpers_lf import TINY, deep_update


from helpers_lf import one_error_line as _one_error_line  # noqa: E402


def _bomb(levels=9):
    """A ~350-byte recipe whose aliases expand to 9**levels strings ("billion laughs")."""
    lines = [yaml.safe_dump(TINY).rstrip(), 'description: &a0 "lol lol lol lol lol lol lol lol"']
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"data: {{train: {{source: bold-wiki, options: {{groups: *a{levels}}}}}}}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(cli, tmp_path):
    # today: silently expanded (a 484 MB config.yaml after 227 s)
    p = tmp_path / "bomb.yaml"
    p.write_text(_bomb())
    assert p.stat().st_size < 2000
    out = tmp_path / "run"
    t0 = time.perf_counter()
    line = _one_error_line(*cli("run", p, "--out", out, "--quiet")[::2])
    assert time.perf_counter() - t0 < 20
    assert line.startswith(f"error: recipe={str(p)!r}: expected a recipe with at most 100000 values"), line
    assert "alias bomb" in line
    assert not out.exists()


def test_scalar_alias_bomb_is_refused_by_characters(tmp_path):
    # few nodes, many characters: a 100 KB string repeated 9**3 times is 73 MB once expanded
    p = tmp_path / "chars.yaml"
    p.write_text(f'a0: &a0 "{"x" * 100_000}"\n' + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in (1, 2, 3)))
    with pytest.raises(UserError, match="characters once its aliases are expanded"):
        read_recipe(str(p))


def test_modest_anchors_and_merge_keys_still_work(tmp_path):
    p = tmp_path / "anchors.yaml"
    p.write_text(
        "name: anchors\nmodel: {source: tiny:llama}\n"
        "defaults: &method {alpha: 2r, lr: 0.01}\n"
        "variants:\n  lora: {<<: *method, ranks: [1, 4]}\n  dora: {<<: *method, ranks: [2]}\n"
        "data: {train: {source: bold-wiki, limit: 8}}\n"
    )
    raw, _ = read_recipe(str(p))
    raw.pop("defaults")
    cfg = validate_config(raw)
    assert cfg.variants.dora.ranks == [2] and cfg.variants.dora.lr == 0.01


def test_recursive_alias_is_refused(cli, tmp_path):
    p = tmp_path / "rec.yaml"
    p.write_text("name: r\ndata: &d {train: {source: bold-wiki}, self: *d}\n")
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "run")[::2])
    assert line == f"error: recipe={str(p)!r}: expected a recipe with no recursive aliases (an alias refers to a node that contains it)"


@pytest.mark.parametrize("depth", [150, 20_000])
def test_deeply_nested_recipe_is_refused(cli, tmp_path, depth):
    # 20000 levels: RecursionError in PyYAML's composer today
    p = tmp_path / "deep.yaml"
    p.write_text("name: d\ndescription: " + "[" * depth + "]" * depth + "\n")
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "run")[::2])
    assert line == f"error: recipe={str(p)!r}: expected a recipe with lists and mappings nested at most 100 deep"


def test_integer_beyond_python_conversion_limit_is_invalid_yaml(cli, tmp_path):
    # today: ValueError "Exceeds the limit (4300 digits) for integer string conversion" (a traceback)
    p = tmp_path / "bigint.yaml"
    p.write_text("name: b\ntrain: {max_steps: " + "9" * 5000 + "}\n")
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "run")[::2])
    assert line.startswith(f"error: recipe {p}: invalid YAML: Exceeds the limit (4300 digits)")


def test_set_values_are_loaded_with_the_same_limits(cli, recipe, tmp_path):
    parts = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = "[" + ", ".join(parts) + "]"
    line = _one_error_line(*cli("run", recipe(), "--set", f"description={bomb}", "--out", tmp_path / "run")[::2])
    assert line.startswith("error: --set='description=[&a0") and "expected a value with at most" in line
    deep = "[" * 300 + "]" * 300
    line = _one_error_line(*cli("run", recipe(), "--set", f"description={deep}", "--out", tmp_path / "run")[::2])
    assert line.startswith("error: --set='description=[[[") and "nested at most 100 deep" in line
    big = "9" * 5000  # not YAML a number can be made of: kept as the string the user typed
    line = _one_error_line(*cli("run", recipe(), "--set", f"train.max_steps={big}", "--out", tmp_path / "run")[::2])
    assert line.startswith("error: train.max_steps='999")


def test_recipe_that_is_a_directory_or_binary(cli, tmp_path):
    d = tmp_path / "dir.yaml"
    d.mkdir()
    line = _one_error_line(*cli("run", d, "--out", tmp_path / "run")[::2])
    assert line.startswith(f"error: recipe={str(d)!r}: expected ") and "(it is a directory)" in line
    b = tmp_path / "bin.yaml"
    b.write_bytes(b"name: x\x00\x01\x02\n")
    line = _one_error_line(*cli("run", b, "--out", tmp_path / "run")[::2])
    assert line == f"error: recipe={str(b)!r}: expected a YAML text file (it has a NUL byte: a binary file?)"


def test_oversized_recipe_file_is_refused_before_parsing(cli, tmp_path):
    p = tmp_path / "huge.yaml"
    with open(p, "w") as f:
        f.write("name: h\ndescription: '")
        f.write("x" * 10_000_001)
        f.write("'\n")
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "run")[::2])
    assert line.startswith(f"error: recipe={str(p)!r}: expected a YAML recipe of at most 10000000 bytes")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_recipe(cli, tmp_path):
    p = tmp_path / "secret.yaml"
    p.write_text("name: s\n")
    p.chmod(0)
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "run")[::2])
    assert line.startswith(f"error: recipe={str(p)!r}: expected a readable YAML file")


def test_unicode_recipe_file_name_gives_a_valid_run_name(tmp_path):
    # today: name='expérience-été' fails the run-name pattern although the user never wrote a name
    p = tmp_path / "expérience-été.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "name"}, allow_unicode=True), encoding="utf-8")
    raw, _ = read_recipe(str(p))
    assert validate_config(raw).name == "experience-ete"
    p2 = tmp_path / "实验.yaml"
    p2.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k != "name"}))
    raw, _ = read_recipe(str(p2))
    assert validate_config(raw).name == "run"  # nothing ASCII to keep: the default name


def test_recipe_with_bom(tmp_path):
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(TINY).encode())
    raw, _ = read_recipe(str(p))
    assert validate_config(raw).name == "t"


# ---------------------------------------------------------------- train budget


def test_max_steps_null_without_epochs_is_refused(cli, recipe, tmp_path):
    # today: TypeError in num_steps (None * int) after the data is built, a traceback
    out = tmp_path / "run"
    line = _one_error_line(*cli("run", recipe(), "--set", "train.max_steps=null", "--out", out, "--quiet")[::2])
    assert line == ("error: train.max_steps=None: expected a positive number of optimiser steps, "
                    "or train.epochs (a positive number) when train.max_steps is null")
    assert not out.exists()


def test_max_steps_null_with_epochs_is_valid():
    cfg = validate_config(deep_update(TINY, {"train": {"max_steps": None, "epochs": 1.5}}))
    assert cfg.train.max_steps is None and cfg.train.epochs == 1.5


def test_limit_zero_and_negative_are_refused(cli, recipe, tmp_path):
    for v in (0, -3):
        line = _one_error_line(*cli("run", recipe(), "--set", f"data.train.limit={v}", "--out", tmp_path / "run")[::2])
        assert line == f"error: data.train.limit={v}: Input should be greater than 0"
