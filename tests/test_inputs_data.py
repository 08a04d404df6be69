"""Bad data inputs (issue #12): one line `error: <field>=<value>: expected …`, exit code 2, no traceback, no
run directory left behind; valid edge inputs (long lines, huge CSV fields, BOMs, unicode) keep working."""

import importlib.util
import json

import pytest

from lorafair.data.load import load_records
from lorafair.data.registry import DataContext, DataSpec
from lorafair.errors import UserError


from helpers_lf import one_error_line as _one_error_line  # noqa: E402


def _run_data(cli, recipe, tmp_path, source, **spec):
    """Run the tiny recipe on a data source; return the error line (asserting nothing was left behind)."""
    out = tmp_path / "run"
    r = recipe({"data": {"train": {"source": source, **spec}}, "train": {"max_steps": 1},
                "variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}})
    line = _one_error_line(*cli("run", r, "--out", out, "--quiet")[::2])
    assert not out.exists(), "a failed run leaves no run directory"
    return line


def _file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def _records(source, **kw):
    return load_records(DataSpec(source=source, **kw), DataContext(field_name="data.train"))


# ---------------------------------------------------------------- jsonl


@pytest.mark.parametrize("depth", [100_000, 150])
def test_deeply_nested_jsonl_line_is_refused(cli, recipe, tmp_path, depth):
    # 100000 levels: RecursionError inside json.loads today; 150: parses, then too deep for later dumps
    p = _file(tmp_path, "deep.jsonl", '{"text": "ok"}\n{"text": "a", "meta": ' + "[" * depth + "]" * depth + "}\n")
    line = _run_data(cli, recipe, tmp_path, f"jsonl:{p}")
    assert line.startswith(f"error: data.train.source='jsonl:{p}': expected JSON objects nested at most 100 deep")
    assert "line 2" in line


@pytest.mark.parametrize("body, field, what", [
    ('{"text": "ok"}\n{"text": null}\n', "text_field='text'", "line 2 of"),
    ('{"prompt": "a", "completion": null}\n', "completion_field='completion'", "line 1 of"),
    ('{"prompt": null, "completion": "b"}\n', "prompt_field='prompt'", "line 1 of"),
    ('{"text": NaN}\n', "text_field='text'", "NaN"),
    ('{"text": ["a"]}\n', "text_field='text'", "a list"),
    ('{"text": true}\n', "text_field='text'", "a boolean"),
])
def test_null_or_non_text_fields_are_refused_not_trained_as_none(cli, recipe, tmp_path, body, field, what):
    # today: str(None) -> the model is trained on the string "None"
    p = _file(tmp_path, "null.jsonl", body)
    line = _run_data(cli, recipe, tmp_path, f"jsonl:{p}")
    assert line.startswith(f"error: data.train.{field}: expected a string in field"), line
    assert what in line and str(p) in line


def test_number_completion_is_kept_as_its_text(tmp_path):
    # a finite number is data the user meant (an arithmetic answer): written out, not refused
    p = _file(tmp_path, "num.jsonl", '{"prompt": "2+2=", "completion": 4}\n')
    assert _records(f"jsonl:{p}")[0]["completion"] == "4"


@pytest.mark.parametrize("body, expect", [
    (b'["a", "b"]\n', "line 1 is an array, not an object"),
    (b'"just a string"\n', "line 1 is a string, not an object"),
    (bytes(range(256)), "line 1: a NUL byte at column 1 (a binary file?)"),
    (b'{"text": "ok"}\n{"text": "ok", "n": ' + b"9" * 5000 + b"}\n", "line 2: not valid JSON (Exceeds the limit"),
])
def test_jsonl_lines_that_are_not_objects(cli, recipe, tmp_path, body, expect):
    p = _file(tmp_path, "x.jsonl", body)
    line = _run_data(cli, recipe, tmp_path, f"jsonl:{p}")
    assert line.startswith(f"error: data.train.source='jsonl:{p}': expected ") and expect in line, line


def test_twenty_megabyte_jsonl_line_still_loads(tmp_path):
    p = _file(tmp_path, "long.jsonl", json.dumps({"text": "x" * 20_000_000}) + "\n" + '{"text": "short"}\n')
    rows = _records(f"jsonl:{p}")
    assert sorted(len(r["text"]) for r in rows) == [5, 20_000_000]


# ---------------------------------------------------------------- csv


def test_csv_field_over_the_csv_module_limit_is_read(tmp_path):
    # today: _csv.Error: field larger than field limit (131072), a traceback
    import csv

    before = csv.field_size_limit()
    p = _file(tmp_path, "big.csv", "text,group\n" + "a" * 300_000 + ",g1\nshort,g2\n")
    rows = _records(f"csv:{p}")
    assert sorted(len(r["text"]) for r in rows) == [5, 300_000]
    assert csv.field_size_limit() == before, "the module-wide limit is restored"


def test_csv_nul_bytes_are_refused(cli, recipe, tmp_path):
    # today: silently accepted (Python >= 3.11 csv reads NUL)
    p = _file(tmp_path, "nul.csv", "text\nfine\nab\x00c\n")
    line = _run_data(cli, recipe, tmp_path, f"csv:{p}")
    assert line == f"error: data.train.source='csv:{p}': expected a CSV text file (line 3 has a NUL byte: a binary file?)"


@pytest.mark.parametrize("body, expect", [
    ("text,b\nx,1,2,3\n", "expected CSV rows with at most the 2 fields of the header (line 2 has 4)"),
    ('text\n"never closed\nmore\n', "expected valid CSV (line 3: unexpected end of data at the end of the file: a quote opened"),
    ('text\n"abc"def\n', "expected valid CSV (line 2"),
])
def test_malformed_csv_names_the_line(cli, recipe, tmp_path, body, expect):
    p = _file(tmp_path, "bad.csv", body)
    line = _run_data(cli, recipe, tmp_path, f"csv:{p}")
    assert line.startswith(f"error: data.train.source='csv:{p}': ") and expect in line, line


def test_csv_short_row_without_text_is_refused_with_line(cli, recipe, tmp_path):
    p = _file(tmp_path, "short.csv", "group,text\ng1,hello\ng2\n")
    line = _run_data(cli, recipe, tmp_path, f"csv:{p}")
    assert line.startswith("error: data.train.text_field='text': expected a string") and "line 3 of" in line and "null" in line


def test_csv_without_the_text_column_names_the_setting_and_columns(cli, recipe, tmp_path):
    p = _file(tmp_path, "nocol.csv", "body,group\nhello,g\n")
    line = _run_data(cli, recipe, tmp_path, f"csv:{p}")
    assert line.startswith("error: data.train.text_field='text': expected a field 'text'")
    assert "'body', 'group'" in line and "line 2" in line


def test_csv_with_bom_header_and_unicode(tmp_path):
    # Excel writes a BOM: the first column is still called "text"
    d = tmp_path / "données"
    d.mkdir()
    p = _file(d, "énoncés.csv", "\ufefftexte,groupe\nçà et là,élève\n")
    rows = _records(f"csv:{p}", text_field="texte")
    assert rows[0]["text"] == "çà et là" and rows[0]["groupe"] == "élève"


# ---------------------------------------------------------------- the source itself (checked with the config)


@pytest.mark.parametrize("make, expect", [
    (lambda t: f"jsonl:{t}", "expected jsonl:PATH naming a file, not a directory"),
    (lambda t: "jsonl:/dev/null", "expected jsonl:PATH naming a regular file"),
    (lambda t: f"jsonl:{t}/nothere.jsonl", "expected jsonl:PATH naming an existing file"),
    (lambda t: "jsonl:", "expected jsonl:PATH with the path of a file"),
    (lambda t: "xml:foo.xml", "(unknown kind 'xml:')"),
    (lambda t: "hf:", "expected hf:DATASET_ID"),
])
def test_bad_source_forms(cli, recipe, tmp_path, make, expect):
    source = make(tmp_path)
    line = _run_data(cli, recipe, tmp_path, source)
    assert line.startswith(f"error: data.train.source={source!r}: ") and expect in line, line


def test_empty_files_of_every_kind(cli, recipe, tmp_path):
    for kind in ("jsonl", "csv"):
        p = _file(tmp_path, f"e.{kind}", "")
        assert "the file is empty" in _run_data(cli, recipe, tmp_path, f"{kind}:{p}")
    p = _file(tmp_path, "blank.jsonl", "\n  \n\n")
    assert "at least one record" in _run_data(cli, recipe, tmp_path, f"jsonl:{p}")
    p = _file(tmp_path, "header.csv", "text\n")
    assert "at least one record" in _run_data(cli, recipe, tmp_path, f"csv:{p}")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") or importlib.util.find_spec("fastparquet"),
                    reason="a parquet engine is installed")
def test_parquet_without_an_engine_says_what_to_install(cli, recipe, tmp_path):
    # today: ImportError "Unable to find a usable engine" (a traceback)
    p = _file(tmp_path, "x.parquet", b"PAR1\x00\x00PAR1")
    line = _run_data(cli, recipe, tmp_path, f"parquet:{p}")
    assert line == f"error: data.train.source='parquet:{p}': expected pyarrow (or fastparquet) installed to read parquet files: pip install pyarrow"


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets is installed")
def test_hf_source_without_datasets_is_refused_with_the_config(cli, recipe, tmp_path):
    line = _run_data(cli, recipe, tmp_path, "hf:some/dataset")
    assert line.startswith("error: data.train.source='hf:some/dataset': expected the `datasets` package installed")


# ---------------------------------------------------------------- the field the user wrote


def test_unknown_dataset_names_data_train_source(cli, recipe, tmp_path):
    # today: "data.source='nosuch'"
    line = _run_data(cli, recipe, tmp_path, "nosuch")
    assert line.startswith("error: data.train.source='nosuch': expected one of ") and "bold-wiki" in line


def test_bad_eval_options_name_data_eval(cli, recipe, tmp_path):
    out = tmp_path / "run"
    r = recipe({"data": {"eval": {"source": "bold-wiki", "options": {"bogus": 1}}}})
    line = _one_error_line(*cli("run", r, "--out", out, "--quiet")[::2])
    assert line.startswith("error: data.eval.options.bogus=1: expected one of the options of 'bold-wiki'")
    assert not out.exists()


def test_bad_eval_source_names_data_eval(cli, recipe, tmp_path):
    r = recipe({"data": {"eval": {"source": "nosuch-eval"}}})
    line = _one_error_line(*cli("run", r, "--out", tmp_path / "run", "--quiet")[::2])
    assert line.startswith("error: data.eval.source='nosuch-eval': expected one of ")


def test_tabular_options_name_the_full_path():
    with pytest.raises(UserError) as e:
        _records("adult", options={"label_bias": {"group": "Female"}})
    assert str(e.value) == "data.train.options.label_bias.fraction: required field is missing"
    with pytest.raises(UserError) as e:
        _records("adult", options={"protected": "height"})
    assert str(e.value).startswith("data.train.options.protected='height': Input should be 'sex', 'race' or 'age'")


def test_nested_spec_errors_name_the_full_path():
    # a data spec inside a builder's options (load_spec): the path the user wrote, pydantic's wording once
    with pytest.raises(UserError) as e:
        _records("prompts-mix", options={"parts": [{"source": "honest", "limit": 0}]})
    assert str(e.value).startswith("data.train.options.parts[0].limit=0: Input should be greater than 0"), str(e.value)
    with pytest.raises(UserError) as e:
        _records("counterfactual", options={"scorer": "nosuch"})
    assert str(e.value).startswith("data.train.options.scorer='nosuch': expected a scorer NAME[:ARG]"), str(e.value)


@pytest.mark.parametrize("study, expect", [
    ({"toxicity": {"scorer": "nosuch"}}, "error: studies.toxicity.scorer='nosuch': expected a scorer NAME[:ARG] with NAME one of "),
    ({"toxicity": {"prompts": {"source": "nosuch"}}}, "error: studies.toxicity.prompts.source='nosuch': expected one of "),
    ({"toxicity": {"prompts": {"source": "jsonl:/no/such.jsonl"}}},
     "error: studies.toxicity.prompts.source='jsonl:/no/such.jsonl': expected jsonl:PATH naming an existing file"),
    ({"toxicity": {"perplexity_data": {"source": "bold-wiki", "limit": 0}}}, "error: studies.toxicity.perplexity_data.limit=0: "),
    ({"shift": {"data": {"source": "nosuch"}}}, "error: studies.shift.data.source='nosuch': expected one of "),
    ({"classification": {"dataset": "nosuch"}}, "error: studies.classification.dataset='nosuch': Input should be 'adult'"),
])
def test_study_fields_are_named_in_full_before_any_training(cli, recipe, tmp_path, study, expect):
    # today the toxicity scorer is reported as "scorer=…" and the prompts as "data.source=…", after training
    out = tmp_path / "run"
    line = _one_error_line(*cli("run", recipe({"studies": study}), "--out", out, "--quiet")[::2])
    assert line.startswith(expect), line
    assert not out.exists()
