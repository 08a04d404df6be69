"""Bad model inputs (issue #12): devices this machine lacks, model folders with a garbage config.json,
target_modules that peft would refuse; one `error: …` line, exit code 2, no run directory. Valid edges (fp16
weights on CPU, embeddings as LoRA targets, dotted suffixes) keep working."""

import json
import shutil

import pytest
import torch

from lorafair.adapt.peft_methods import check_ranks
from lorafair.errors import UserError
from lorafair.models.sources import resolve_device
from lorafair.models.tiny import build_tiny


from helpers_lf import one_error_line as _one_error_line  # noqa: E402


SMALL = {"train": {"max_steps": 1}, "variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}}


def _run(cli, recipe, tmp_path, update):
    from helpers_lf import deep_update

    out = tmp_path / "run"
    line = _one_error_line(*cli("run", recipe(deep_update(SMALL, update)), "--out", out, "--quiet")[::2])
    assert not out.exists(), "a refused run leaves no run directory"
    return line


# ---------------------------------------------------------------- devices


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_absent(cli, recipe, tmp_path):
    # today: RuntimeError "PyTorch is not linked with support for mps devices" after the run directory exists
    line = _run(cli, recipe, tmp_path, {"model": {"device": "mps"}})
    assert line.startswith("error: model.device='mps': expected a device present on this machine (")
    assert line.endswith("use auto or cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_where_absent(cli, recipe, tmp_path, device):
    line = _run(cli, recipe, tmp_path, {"model": {"device": device}})
    assert line == f"error: model.device={device!r}: expected a device present on this machine (no CUDA here); use auto or cpu"


def test_cuda_index_past_the_last_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError) as e:
        resolve_device("cuda:2")
    assert str(e.value) == "model.device='cuda:2': expected a device present on this machine: cuda:0 … cuda:1 (2 CUDA devices)"


@pytest.mark.parametrize("device", ["meta", "xpu", "gpu", "cpu:3", "cuda:-1", ""])
def test_unsupported_device_kinds(cli, recipe, tmp_path, device):
    # today: meta -> NotImplementedError (cannot copy out of meta tensor), xpu -> AssertionError
    line = _run(cli, recipe, tmp_path, {"model": {"device": device}})
    assert line.startswith(f"error: model.device={device!r}: expected "), line


# ---------------------------------------------------------------- model folders


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("model") / "good"
    model, tok = build_tiny("llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _variant(good, tmp_path, *, config=None, weights=None, drop=()):
    d = tmp_path / "model"
    shutil.copytree(good, d)
    if config is not None:
        (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        (d / "model.safetensors").write_bytes(weights)
    for name in drop:
        (d / name).unlink()
    return d


def _config(good):
    return json.loads((good / "config.json").read_text())


@pytest.mark.parametrize("make, expect", [
    (lambda c: "{not json", "expected a folder whose config.json is valid JSON (Expecting property name"),
    (lambda c: "", "expected a folder whose config.json is valid JSON (Expecting value at line 1, column 1)"),
    (lambda c: "[1, 2]", "expected a folder whose config.json is a JSON object (it is a list)"),
    (lambda c: {k: v for k, v in c.items() if k != "model_type"}, 'names its architecture with "model_type"'),
    (lambda c: {**c, "model_type": 7}, 'names its architecture with "model_type"'),
    (lambda c: {**c, "model_type": "no-such-arch"}, "'no-such-arch' is unknown"),
    (lambda c: {"model_type": "t5"}, "expected a causal language model (transformers has no causal-LM class for model_type 't5')"),
    (lambda c: {**c, "hidden_size": "big"}, "expected a config.json that transformers accepts ("),
])
def test_garbage_config_json(cli, recipe, tmp_path, good_folder, make, expect):
    # today: TypeError / ValueError / StrictDataclassFieldValidationError tracebacks from transformers
    d = _variant(good_folder, tmp_path, config=make(_config(good_folder)))
    line = _run(cli, recipe, tmp_path, {"model": {"source": f"hf:{d}"}})
    assert line.startswith(f"error: model.source='hf:{d}': ") and expect in line, line


def test_garbage_weights_and_missing_tokenizer(cli, recipe, tmp_path, good_folder):
    d = _variant(good_folder, tmp_path, weights=b"not safetensors")
    line = _run(cli, recipe, tmp_path, {"model": {"source": f"hf:{d}"}})
    assert line.startswith(f"error: model.source='hf:{d}': expected a folder whose weights match its config.json (SafetensorError")
    shutil.rmtree(d)
    d = _variant(good_folder, tmp_path, drop=("tokenizer.json", "tokenizer_config.json"))
    line = _run(cli, recipe, tmp_path, {"model": {"source": f"hf:{d}"}})
    assert line.startswith(f"error: model.source='hf:{d}': expected a folder with tokenizer files")


def test_fp16_folder_on_cpu_with_unicode_paths_and_a_long_line(cli, recipe, tmp_path, good_folder):
    # valid edges: float16 weights on CPU, non-ASCII folder / file / field names, a 2 MB jsonl line
    d = tmp_path / "modèle"
    shutil.copytree(good_folder, d)
    data = tmp_path / "données" / "énoncés.jsonl"
    data.parent.mkdir()
    lines = [json.dumps({"texte": "é" * 2_000_000, "groupe": "ü"})] + [json.dumps({"texte": f"phrase numéro {i} — ok"}) for i in range(7)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = cli("run", recipe({**SMALL, "model": {"source": f"hf:{d}", "dtype": "float16"},
                                      "data": {"train": {"source": f"jsonl:{data}", "text_field": "texte"}, "holdout": 0.25}}),
                       "--out", out, "--quiet")
    assert code == 0, err
    assert (out / "metrics.csv").is_file()


# ---------------------------------------------------------------- target_modules


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny("llama")[0]


@pytest.mark.parametrize("targets, expect", [
    (["*proj"], "'*proj' matches no module; e.g. down_proj"),
    (["re:.*q_proj"], "'re:.*q_proj' matches no module"),
    (["q_proj", "v_prj"], "'v_prj' matches no module"),
    (["proj"], "'proj' matches no module"),  # peft matches '.'-suffixes, not substrings
    (["input_layernorm"], "'input_layernorm' matches model.layers.0.input_layernorm, model.layers.1.input_layernorm (LlamaRMSNorm)"),
    (["norm"], "'norm' matches model.norm (LlamaRMSNorm)"),
    (["mlp"], "'mlp' matches model.layers.0.mlp, model.layers.1.mlp (LlamaMLP)"),
    (["layers.0"], "'layers.0' matches model.layers.0 (LlamaDecoderLayer)"),
    (["rotary_emb"], "(LlamaRotaryEmbedding)"),
])
def test_target_modules_peft_would_refuse_or_ignore(tiny_model, targets, expect):
    # today: "*proj", "layers.0" … pass check_ranks (fnmatch), then peft raises; "v_prj" is silently ignored by peft
    with pytest.raises(UserError) as e:
        check_ranks(tiny_model, "lora", [1], targets, "variants.lora")
    msg = str(e.value)
    assert msg.startswith(f"variants.lora.target_modules={targets!r}: expected ") and expect in msg, msg


def test_target_modules_through_the_cli_before_any_work(cli, recipe, tmp_path):
    line = _run(cli, recipe, tmp_path, {"variants": {"lora": {"ranks": [1], "target_modules": ["input_layernorm"]}}})
    assert line.startswith("error: variants.lora.target_modules=['input_layernorm']: expected modules peft can adapt")
    line = _run(cli, recipe, tmp_path, {"variants": {"lora": {"ranks": []}, "dora": {"ranks": [2], "target_modules": ["*_proj"]}}})
    assert line.startswith("error: variants.dora.target_modules=['*_proj']: expected names of modules of the model")
    line = _run(cli, recipe, tmp_path, {"variants": {"lora": {"ranks": [1], "target_modules": []}}})
    assert line.startswith("error: variants.lora.target_modules=[]: expected 'all-linear' or a non-empty list")


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["self_attn.q_proj"], ["model.layers.1.mlp.down_proj"],
                                     ["embed_tokens"], ["lm_head"], "all-linear"])
def test_target_modules_peft_accepts(tiny_model, targets):
    check_ranks(tiny_model, "lora", [1, 8], targets, "variants.lora")


def test_rank_check_follows_the_peft_match(tiny_model):
    # k_proj is 32 wide: a rank above it is refused only when k_proj is targeted
    check_ranks(tiny_model, "lora", [48], ["q_proj"], "variants.lora")
    with pytest.raises(UserError, match="rank 48 exceeds module model.layers.0.self_attn.k_proj"):
        check_ranks(tiny_model, "lora", [48], ["q_proj", "k_proj"], "variants.lora")
