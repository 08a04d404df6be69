"""Bad inputs to `lorafair report`, `compare`, `score` and `spectrum`: one line `error: …`, exit 2, no
traceback (project issue #12); inputs that are odd but readable give a report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from report_synth import COLUMNS, make_run


def _one_error_line(code, out, err):
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def small_run(path: Path, **kw) -> Path:
    kw = {"ranks": (1,), "studies": ("decisions",), "samples": False, **kw}
    return make_run(path, **kw)


def _rewrite(root: Path, fn) -> None:
    rows = list(csv.reader(open(root / "metrics.csv", newline="", encoding="utf-8")))
    rows = [rows[0]] + [fn(dict(zip(COLUMNS, r))) for r in rows[1:]]
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows([[r[c] for c in COLUMNS] for r in rows[1:]])


# -- lorafair report ------------------------------------------------------------------------------

def test_non_utf8_metrics_csv_names_the_file(cli, tmp_path):
    root = small_run(tmp_path / "latin")
    with open(root / "metrics.csv", "ab") as f:
        f.write("base,base,,0,decisions,approval_gap,caf\xe9,0.3,0.2,0.4,10,\n".encode("latin-1"))
    line = _one_error_line(*cli("report", root))
    assert str(root / "metrics.csv") in line and "UTF-8" in line and "0xe9" in line and "line" in line


def test_metrics_csv_header_only_or_empty(cli, tmp_path):
    root = small_run(tmp_path / "header")
    (root / "metrics.csv").write_text(",".join(COLUMNS) + "\n")
    line = _one_error_line(*cli("report", root))
    assert "metrics.csv=" in line and "at least one metric row" in line
    (root / "metrics.csv").write_text("")
    assert "missing" in _one_error_line(*cli("report", root))


def test_metrics_csv_not_csv(cli, tmp_path):
    root = small_run(tmp_path / "huge")
    with open(root / "metrics.csv", "a") as f:
        f.write('base,base,,0,decisions,approval_gap,,0.3,0.2,0.4,10,"' + "x" * 200_000 + '"\n')
    line = _one_error_line(*cli("report", root))
    assert "a valid CSV file" in line and "line" in line


def test_run_dir_that_is_a_file_or_unwritable(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "run_dir=" in _one_error_line(*cli("report", f))
    root = small_run(tmp_path / "plotsfile")
    (root / "plots").write_text("not a folder")
    line = _one_error_line(*cli("report", root))
    assert line.startswith("error: run_dir=") and "can be written" in line


@pytest.mark.parametrize("value", ["junk", "nan", "inf", "-1", ""])
def test_target_junk(cli, tmp_path, value):
    root = tmp_path / "unused"
    line = _one_error_line(*cli("report", root, "--target", value))
    assert line.startswith("error: --target=") and "expected a number in (0, 1]" in line


def test_garbage_numbers_and_odd_rows_still_report(cli, tmp_path):
    root = small_run(tmp_path / "garbage", ranks=(1, 4))

    def mess(r):
        if r["variant"] == "base":
            r.update(value="inf", ci_low="-inf", ci_high="abc", n="1e999", seed="nan")
        elif r["variant"] == "lora-r1":
            r.update(rank="inf", n="-3", ci_low="1e308", ci_high="x")
        elif r["variant"] == "full" and r["metric"] == "approval_gap":
            r.update(value="not a number")
        return r

    _rewrite(root, mess)
    with open(root / "metrics.csv", "a", encoding="utf-8") as f:
        f.write("lora-r" + "9" * 40 + ",lora,,0,decisions,approval_gap,,0.1,0.0,0.2,10,\n")  # an absurd rank
        f.write("full,full,,0,,approval_gap,,0.1,0.0,0.2,10,\n")  # no study
        f.write("base,base\n")  # a short row
    (root / "metric_roles.json").write_text('{"decisions": [1, 2], "x": {"y": 3}}')
    (root / "run_info.json").write_text('{"wall_time_s": NaN, "model": {"a": [1, {"b": null}]}}')
    (root / "base-s0" / "train.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "base-s0" / "samples.jsonl").write_bytes(b'{"prompt": "caf\xe9", "text": "x"}\n')
    (root / "config.yaml").write_text("a: &a [1, 2]\nb: [*a, *a, *a]\n")  # aliases: shown, not expanded
    code, out, err = cli("report", root)
    assert code == 0, err
    assert "Traceback" not in err
    html = (root / "report.html").read_text()
    assert "skipped 2 row(s) of metrics.csv without a study or metric" in html  # the short row too
    assert "config.yaml uses YAML aliases" in html and "skipped train.json in base-s0" in html


def test_bom_metrics_csv_is_read(cli, tmp_path):
    root = small_run(tmp_path / "bom")
    (root / "metrics.csv").write_bytes(b"\xef\xbb\xbf" + (root / "metrics.csv").read_bytes())
    code, _, err = cli("report", root)
    assert code == 0, err


# -- lorafair compare -----------------------------------------------------------------------------

def test_compare_faults(cli, tmp_path):
    a, b = small_run(tmp_path / "a"), small_run(tmp_path / "b")
    f = tmp_path / "file"
    f.write_text("x")
    line = _one_error_line(*cli("compare", a, b, "--out", f))
    assert line.startswith("error: --out=") and "a folder" in line
    assert "--target=" in _one_error_line(*cli("compare", a, b, "--out", tmp_path / "c", "--target", "x"))
    (b / "metrics.csv").write_bytes(b"variant,study,metric,value\n\xff\xfe\n")
    assert "UTF-8" in _one_error_line(*cli("compare", a, b, "--out", tmp_path / "c"))
    assert not (tmp_path / "c").exists()


# -- lorafair score -------------------------------------------------------------------------------

@pytest.fixture
def texts(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"text": "hello"}\n')
    return p


def test_score_out_unwritable(cli, tmp_path, texts):
    f = tmp_path / "afile"
    f.write_text("x")
    for out in (f / "x.jsonl", f / "deeper" / "x.jsonl"):
        code, stdout, err = cli("score", texts, "--scorer", "profanity", "--out", out)
        line = _one_error_line(code, stdout, err)
        assert line.startswith("error: --out=") and "is a file" in line and stdout == ""
    line = _one_error_line(*cli("score", texts, "--scorer", "profanity", "--out", tmp_path))
    assert "this is a folder" in line
    assert not list(tmp_path.glob(".*.tmp"))


def test_score_out_new_folder_is_made(cli, tmp_path, texts):
    out = tmp_path / "new" / "deep" / "scores.jsonl"
    code, _, err = cli("score", texts, "--scorer", "profanity", "--out", out)
    assert code == 0, err
    assert json.loads(out.read_text())["text"] == "hello"


@pytest.mark.parametrize("device", ["junk", "cuda:99", "cpu:3"])
def test_score_bad_device(cli, texts, device):
    line = _one_error_line(*cli("score", texts, "--scorer", "profanity", "--device", device))
    assert line.startswith(f"error: --device='{device}'")


# -- lorafair spectrum ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bare_checkpoints(tmp_path_factory):
    """Two checkpoint folders written by save_pretrained with no tokenizer files (a fine-tune's
    output folder often has none)."""
    import torch

    from lorafair.models.tiny import build_tiny

    d = tmp_path_factory.mktemp("bare")
    base, _ = build_tiny("llama")
    base.save_pretrained(d / "base")
    with torch.no_grad():
        w = base.model.layers[0].self_attn.q_proj.weight
        w += 0.1 * torch.ones(w.shape[0], 1) @ torch.ones(1, w.shape[1])
    base.save_pretrained(d / "full")
    with torch.no_grad():
        w[0, 0] = float("nan")
    base.save_pretrained(d / "nan")
    for name in ("base", "full", "nan"):
        assert not [p for p in (d / name).iterdir() if "token" in p.name]
    return d


def test_spectrum_without_tokenizer_files(cli, bare_checkpoints):
    d = bare_checkpoints
    code, out, err = cli("spectrum", f"hf:{d / 'base'}", f"hf:{d / 'full'}", "--ranks", "1", "2", "--json")
    assert code == 0, err
    mods = {m["name"]: m for m in json.loads(out)["modules"]}
    q = mods["model.layers.0.self_attn.q_proj"]
    assert q["energy"]["1"] == pytest.approx(1.0, abs=1e-5)  # a rank-1 update
    assert mods["model.layers.0.mlp.up_proj"]["energy"]["1"] is None  # ΔW = 0: no energy (null, valid JSON)


def test_spectrum_faults(cli, bare_checkpoints, tmp_path):
    d = bare_checkpoints
    line = _one_error_line(*cli("spectrum", f"hf:{d / 'base'}", f"hf:{d / 'nan'}"))
    assert line.startswith("error: FULL_MODEL=") and "finite weights" in line
    assert "--ranks='x'" in _one_error_line(*cli("spectrum", f"hf:{d / 'base'}", f"hf:{d / 'full'}", "--ranks", "x"))
    (tmp_path / "empty").mkdir()
    line = _one_error_line(*cli("spectrum", f"hf:{tmp_path / 'empty'}", f"hf:{d / 'full'}"))
    assert line.startswith("error: BASE_MODEL=") and "config.json" in line
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text((d / "base" / "config.json").read_text())
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"x")
    line = _one_error_line(*cli("spectrum", f"hf:{d / 'base'}", f"hf:{tmp_path / 'pickle'}"))
    assert line.startswith("error: FULL_MODEL=") and "safetensors" in line
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "config.json").write_text((d / "base" / "config.json").read_text())
    (tmp_path / "truncated" / "model.safetensors").write_bytes((d / "base" / "model.safetensors").read_bytes()[:5000])
    line = _one_error_line(*cli("spectrum", f"hf:{tmp_path / 'truncated'}", f"hf:{d / 'full'}"))
    assert line.startswith("error: BASE_MODEL=") and "weights transformers can load" in line
    line = _one_error_line(*cli("spectrum", "tiny:nosuch", f"hf:{d / 'full'}"))
    assert line.startswith("error: BASE_MODEL='tiny:nosuch'")
