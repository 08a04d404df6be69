"""``lorafair score`` and ``lorafair scorers`` through ``lorafair.cli.main`` (and once as a process)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from lorafair.cli import main

TEXTS = ["fuck this shit", "", "have a nice day", "ünïcödé ✓"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_file_in_order_to_stdout(tmp_path, capsys):
    from lorafair.scorers import build_scorer

    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "id": i} for i, t in enumerate(TEXTS)])
    assert main(["score", "--scorer", "profanity", "--batch-size", "3", str(src)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == TEXTS
    want = build_scorer("profanity").score(TEXTS)
    assert [o["scores"] for o in out] == want


def test_score_default_jigsaw_stdin_and_out_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORAFAIR_CACHE", str(tmp_path / "cache"))
    data = "".join(json.dumps({"body": t}) + "\n" for t in TEXTS) + "\n"  # trailing blank line is skipped
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode("utf-8"))))
    out_file = tmp_path / "out" / "scores.jsonl"
    assert main(["score", "--field", "body", "--out", str(out_file), "-"]) == 0
    assert capsys.readouterr().out == ""
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    assert list(rows[0]["scores"]) == ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    assert rows[0]["scores"]["toxic"] > 0.9 > 0.2 > rows[2]["scores"]["toxic"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"text": "ok"}\n{"text": broken}\n', "line 2: not valid JSON"),
        (b'{"text": "ok"}\n\n{"other": "x"}\n', "line 3: missing field 'text'"),
        (b'["text"]\n', "line 1: expected a JSON object, got list"),
        (b'{"text": 3}\n', "line 1: field 'text' must be a string, got int"),
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "line 2: not UTF-8 (byte 0xe9"),
    ],
)
def test_bad_input_is_a_user_error_naming_the_line(tmp_path, capsys, content, message):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    assert main(["score", "--scorer", "profanity", str(src)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing scored before the input is validated
    assert captured.err.startswith("error: ") and message in captured.err and str(src) in captured.err


def test_missing_input_and_unknown_scorer(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope.jsonl")]) == 2
    assert "INPUT=" in capsys.readouterr().err
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert main(["score", "--scorer", "nosuch", str(src)]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "jigsaw-bilstm" in err
    assert main(["score", "--batch-size", "0", str(src)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: lorafair score: argument --batch-size")


def test_scorers_lists_every_scorer(capsys):
    assert main(["scorers"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["scorer", "available"]
    names = [line.split()[0] for line in out[1:]]
    # other tests may register fake scorers (named test-*) in the same process: list the real ones
    assert [n for n in names if not n.startswith("test-")] == ["detoxify:<variant>", "hf:<folder|hub", "jigsaw-bilstm", "llm-judge:<model", "profanity"]
    jig = next(line for line in out if line.startswith("jigsaw-bilstm"))
    assert "[default]" in jig and " yes " in jig


def test_score_as_a_process_from_stdin():
    data = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS)
    proc = subprocess.run(
        [sys.executable, "-m", "lorafair", "score", "--scorer", "profanity", "-"],
        input=data.encode("utf-8"), capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in rows] == TEXTS and all(set(r["scores"]) == {"profanity"} for r in rows)
    bad = subprocess.run([sys.executable, "-m", "lorafair", "score", "-"], input=b"{oops\n", capture_output=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.decode().startswith("error: stdin line 1: not valid JSON")
