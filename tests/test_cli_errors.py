"""Every bad input: one line `error: …`, exit code 2, no traceback, no half-written run."""

import os

import pytest


from helpers_lf import one_error_line as _one_error_line  # noqa: E402


def test_unknown_recipe(cli, tmp_path):
    code, out, err = cli("run", "nosuchrecipe", "--out", tmp_path / "r")
    line = _one_error_line(code, err)
    assert "nosuchrecipe" in line and "demo" in line
    assert not (tmp_path / "r").exists()


def test_bad_yaml(cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: {source: tiny:llama\ntrain: [\n")
    line = _one_error_line(*cli("run", p, "--out", tmp_path / "r")[::2])
    assert "invalid YAML" in line and "line" in line


def test_non_mapping_yaml(cli, tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    assert "YAML mapping" in _one_error_line(*cli("run", p)[::2])


def test_non_utf8_recipe(cli, tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in _one_error_line(*cli("run", p)[::2])


def test_unknown_key_and_wrong_type(cli, recipe, tmp_path):
    assert "train.max_stepz: unknown key" in _one_error_line(*cli("run", recipe({"train": {"max_stepz": 1}}), "--out", tmp_path / "a")[::2])
    assert "train.batch_size='eight'" in _one_error_line(*cli("run", recipe(), "--set", "train.batch_size=eight", "--out", tmp_path / "b")[::2])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_rank_zero_and_negative(cli, recipe, tmp_path):
    assert "rank 0" in _one_error_line(*cli("run", recipe(), "--set", "variants.lora.ranks=[0]", "--out", tmp_path / "r")[::2])
    assert "rank -1" in _one_error_line(*cli("run", recipe(), "--set", "variants.lora.ranks=[-1]", "--out", tmp_path / "r")[::2])


def test_rank_above_module_dimension_names_module(cli, recipe, tmp_path):
    line = _one_error_line(*cli("run", recipe(), "--set", "variants.lora.ranks=[1,512]", "--out", tmp_path / "r", "--quiet")[::2])
    assert "rank 512 exceeds module" in line and "proj" in line and "allowed ranks are 1..32" in line
    assert not list((tmp_path / "r").glob("*-s0")), "no variant work started"


def test_missing_model(cli, recipe, tmp_path):
    line = _one_error_line(*cli("run", recipe(), "--set", f"model.source=hf:{tmp_path}/nomodel", "--out", tmp_path / "r", "--quiet")[::2])
    assert "model.source" in line and "nomodel" in line
    line = _one_error_line(*cli("run", recipe(), "--set", "model.source=tiny:llama-999b", "--out", tmp_path / "r2", "--quiet")[::2])
    assert "tiny:llama-999b" in line and "tiny:llama-1b" in line
    line = _one_error_line(*cli("run", recipe(), "--set", "model.source=gguf:x", "--out", tmp_path / "r3", "--quiet")[::2])
    assert "model.source" in line and "embedded" in line


def test_empty_dataset(cli, recipe, tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    line = _one_error_line(*cli("run", recipe(), "--set", f"data.train.source=jsonl:{p}", "--out", tmp_path / "r", "--quiet")[::2])
    assert "empty" in line and "data.train.source" in line


def test_non_utf8_data_file(cli, recipe, tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    line = _one_error_line(*cli("run", recipe(), "--set", f"data.train.source=jsonl:{p}", "--out", tmp_path / "r", "--quiet")[::2])
    assert "not UTF-8" in line and "latin.jsonl" in line


def test_malformed_jsonl_names_line(cli, recipe, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n{"text": \n')
    line = _one_error_line(*cli("run", recipe(), "--set", f"data.train.source=jsonl:{p}", "--out", tmp_path / "r", "--quiet")[::2])
    assert "line 2" in line


def test_missing_text_field(cli, recipe, tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text('{"body": "ok"}\n')
    line = _one_error_line(*cli("run", recipe(), "--set", f"data.train.source=jsonl:{p}", "--out", tmp_path / "r", "--quiet")[::2])
    assert "text_field" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_nonroot(cli, recipe, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    assert "writable" in _one_error_line(*cli("run", recipe(), "--out", d / "r")[::2])


def test_unwritable_output(cli, recipe, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    line = _one_error_line(*cli("run", recipe(), "--out", f / "r", "--quiet")[::2])
    assert "--out" in line and "writable directory" in line


def test_bad_set_syntax(cli, recipe):
    assert "key.path=value" in _one_error_line(*cli("run", recipe(), "--set", "train.max_steps")[::2])


def test_resume_without_run(cli, recipe, tmp_path):
    assert "--resume" in _one_error_line(*cli("run", recipe(), "--resume", "--out", tmp_path / "none")[::2])


def test_other_experiment_in_out_dir(cli, recipe, tmp_path):
    out = tmp_path / "r"
    (out / "base-s0" / "results").mkdir(parents=True)
    (out / "base-s0" / "results" / "heldout.json").write_text("{}")  # a finished piece of that experiment
    (out / "config.yaml").write_text("name: other\nmodel: {source: tiny:gpt2}\ndata: {train: {source: bold-wiki}}\n")
    line = _one_error_line(*cli("run", recipe(), "--out", out, "--quiet")[::2])
    assert "different config: model, data, train differ" in line
    assert (out / "config.yaml").read_text().startswith("name: other")  # left as it was


def test_failed_run_does_not_block_its_corrected_rerun(cli, recipe, tmp_path):
    out = tmp_path / "r"
    # a late error (the data file is missing): the run directory it created is removed again
    line = _one_error_line(*cli("run", recipe({"data": {"train": {"source": f"jsonl:{tmp_path}/none.jsonl"}}}),
                                "--out", out, "--quiet")[::2])
    assert "data.train" in line and not out.exists()
    # a directory left by an older failed run (config.yaml only, no finished piece) accepts the fixed config
    out.mkdir()
    (out / "config.yaml").write_text("name: other\nmodel: {source: tiny:gpt2}\ndata: {train: {source: nope}}\n")
    code, _, err = cli("run", recipe(), "--out", out, "--quiet")
    assert code == 0, err
    assert (out / "metrics.csv").is_file()


def test_second_run_into_a_locked_directory_is_refused(cli, recipe, tmp_path):
    from lorafair.run.rundir import RunLock

    out = tmp_path / "r"
    with RunLock(out):
        line = _one_error_line(*cli("run", recipe(), "--out", out, "--quiet")[::2])
    assert "no other lorafair process" in line and f"pid {os.getpid()}" in line
    assert cli("run", recipe(), "--out", out, "--quiet")[0] == 0  # free again


def test_a_finished_run_gains_a_study_without_retraining(cli, recipe, tmp_path):
    import json

    out = tmp_path / "r"
    assert cli("run", recipe(), "--out", out, "--quiet")[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/train.json")}
    code, _, err = cli("run", recipe({"studies": {"heldout": {"max_length": 32}, "shift": {"logit_lens": False,
                       "spectrum": False}}}), "--out", out, "--quiet")
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in out.glob("*-s0/train.json")} == before  # nothing retrained
    assert json.loads((out / "base-s0" / "results" / "shift.json").read_text())["study"] == "shift"
    # a new rank: only it is trained and evaluated
    evals = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/results/*.json")}
    code, _, err = cli("run", recipe({"variants": {"lora": {"ranks": [1, 4, 2]}}, "studies": {
        "heldout": {"max_length": 32}, "shift": {"logit_lens": False, "spectrum": False}}}), "--out", out, "--quiet")
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in out.glob("*-s0/train.json") if p in before} == before
    assert {p: p.stat().st_mtime_ns for p in evals} == evals
    assert (out / "lora-r2-s0" / "results" / "heldout.json").is_file()


@pytest.mark.parametrize("argv, expect", [
    (["run"], "lorafair run: the following arguments are required: RECIPE_OR_YAML"),
    (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    (["run", "tiny", "--bogus"], "unrecognized arguments: --bogus"),
    (["report"], "lorafair report: the following arguments are required"),
])
def test_usage_mistakes_are_one_line(cli, argv, expect):
    line = _one_error_line(*cli(*argv)[::2])
    assert expect in line and "--help" in line


def test_help_lists_commands(cli):
    import pytest as _p

    with _p.raises(SystemExit):
        cli("--help")


def test_listing_commands(cli):
    code, out, _ = cli("recipes")
    assert code == 0 and "demo" in out and "tiny" in out
    code, out, _ = cli("models")
    assert code == 0 and "embedded:smollm2-135m-instruct" in out and "tiny:llama-1b" in out
    code, out, _ = cli("datasets")
    assert code == 0 and "bold-wiki" in out and "jsonl:PATH" in out
    code, out, _ = cli("studies")
    assert code == 0 and "heldout" in out


@pytest.mark.parametrize("setting, expect", [
    ("variants.lora.alpha=.nan", "variants.lora.alpha=nan: Input should be a finite number"),
    ("variants.lora.alpha=nanr", "variants.lora.alpha='nanr': alpha multiple K of 'Kr' must be a positive finite"),
    ("variants.lora.lr=.inf", "variants.lora.lr=inf: Input should be a finite number"),
    ("variants.full.lr=.nan", "variants.full.lr=nan: Input should be a finite number"),
    ("variants.lr_grid={lora: [.inf]}", "variants.lr_grid.lora.0=inf: Input should be a finite number"),
    ("train.warmup_ratio=.nan", "train.warmup_ratio=nan"),
    ("train.epochs=.inf", "train.epochs=inf"),
    ("studies.heldout.n_boot=.nan", "studies.heldout.n_boot"),
    ("data.train.limit=.inf", "data.train.limit=inf"),
    ("name=../../x", "name='../../x': String should match pattern"),
    ("seeds=[0,0]", "seeds=[0, 0]: seeds contain duplicates"),
    ("seeds=[10000000000000000000]", "is outside 0 … 2**63 - 1"),
    ("seeds=[-1]", "seed -1 is outside"),
])
def test_non_finite_numbers_bad_names_and_seeds_are_refused(cli, recipe, tmp_path, setting, expect):
    line = _one_error_line(*cli("run", recipe(), "--set", setting, "--out", tmp_path / "r")[::2])
    assert expect in line, line
    assert not (tmp_path / "r").exists()
