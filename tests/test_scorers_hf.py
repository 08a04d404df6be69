"""``hf:<folder>`` and ``detoxify:<variant>`` on a tiny random BertForSequenceClassification."""

from __future__ import annotations


import pytest
import torch

from lorafair.errors import UserError
from lorafair.scorers import build_scorer, scorer_availability
from lorafair.scorers.hf_classifier import DETOXIFY_MODELS, pick_main_label

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "an", "idiot", "nice", "day", "have", "a", "##s", "."]
LABELS3 = {0: "toxic", 1: "insult", 2: "threat"}


def make_classifier(folder, *, num_labels=3, problem_type="multi_label_classification", id2label=LABELS3):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab_file=str(folder / "vocab.txt"))
    cfg = BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=num_labels, problem_type=problem_type,
        id2label=id2label, label2id={v: k for k, v in id2label.items()},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model, tok


def manual_logits(model, tok, texts):
    with torch.no_grad():
        return torch.stack([model(**tok(t, return_tensors="pt", truncation=True, max_length=32)).logits[0] for t in texts])


TEXTS = ["you are an idiot", "", "have a nice day .", " ".join(["idiots"] * 80)]  # the last is truncated to 32


def test_multilabel_uses_sigmoid(tmp_path):
    model, tok = make_classifier(tmp_path / "clf")
    s = build_scorer(f"hf:{tmp_path / 'clf'}")
    assert s.labels == ("toxic", "insult", "threat") and s.main_label == "toxic" and s.activation == "sigmoid"
    got = s.score(TEXTS, batch_size=3)  # padded batches must equal one-by-one logits
    want = torch.sigmoid(manual_logits(model, tok, TEXTS))
    for g, w in zip(got, want.tolist()):
        assert [g[k] for k in s.labels] == pytest.approx(w, abs=1e-5)
    ident = s.identity()
    assert ident["weights_sha256"] and len(ident["weights_sha256"]) == 64 and ident["activation"] == "sigmoid"


def test_single_label_uses_softmax(tmp_path):
    model, tok = make_classifier(tmp_path / "clf2", num_labels=2, problem_type="single_label_classification", id2label={0: "neutral", 1: "hateful"})
    s = build_scorer(f"hf:{tmp_path / 'clf2'}")
    got = s.score(TEXTS)
    want = torch.softmax(manual_logits(model, tok, TEXTS), dim=-1)
    for g, w in zip(got, want.tolist()):
        assert [g["neutral"], g["hateful"]] == pytest.approx(w, abs=1e-5)
        assert g["neutral"] + g["hateful"] == pytest.approx(1.0, abs=1e-6)
    assert s.main_label == "hateful"  # positive class of a binary classifier


def test_pickle_only_folder_is_refused(tmp_path):
    model, _ = make_classifier(tmp_path / "clf3")
    folder = tmp_path / "clf3"
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no .safetensors weights.*--allow-pickle"):
        build_scorer(f"hf:{folder}")


def test_bad_sources(tmp_path):
    with pytest.raises(UserError, match="existing local folder or a hub id"):
        build_scorer(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(UserError, match=r"hf:<local folder or hub id>"):
        build_scorer("hf")
    with pytest.raises(UserError, match="original|unbiased|multilingual"):
        build_scorer("detoxify:huge")


def test_detoxify_offline_is_a_clear_error():
    assert DETOXIFY_MODELS["original"] == "unitary/toxic-bert"
    with pytest.raises(UserError, match="unitary/toxic-bert.*not in the local Hugging Face cache"):
        build_scorer("detoxify:original", local_files_only=True)
    ok, note = scorer_availability("detoxify", "unbiased")
    assert ok is False and "cache" in note


def test_pick_main_label():
    assert pick_main_label(("severe_toxicity", "toxicity", "obscene")) == "toxicity"
    assert pick_main_label(("LABEL_0", "LABEL_1")) == "LABEL_1"
    assert pick_main_label(("a", "b", "c")) == "a"
