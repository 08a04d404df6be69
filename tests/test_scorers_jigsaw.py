"""The PyTorch port of the toxic-comment-classifier BiLSTM against the original TensorFlow model."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from lorafair.scorers import SCORERS, build_scorer
from lorafair.scorers import jigsaw_bilstm as jb
from lorafair.scorers.keras_text import KerasTokenizer, pad_sequences, text_to_word_sequence
from lorafair.scorers.safe_pickle import RestrictedUnpickler, load_tokenizer_state

REFERENCE = Path(__file__).parent / "data" / "jigsaw_reference.json"
needs_package = pytest.mark.skipif(jb.package_model_dir() is None, reason="toxic-comment-classifier not installed")


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORAFAIR_CACHE", str(tmp_path_factory.mktemp("cache")))
        jb._load.cache_clear()
        yield build_scorer("jigsaw-bilstm", "cpu")


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


# --- Keras text preprocessing, by hand -------------------------------------------------------


def test_text_to_word_sequence_matches_keras_rules():
    assert text_to_word_sequence("Hello, World!! It's 5-ish.") == ["hello", "world", "it's", "5", "ish"]
    assert text_to_word_sequence("") == []
    assert text_to_word_sequence("!!! ... \t\n") == []
    # \r and the no-break space are not filters and not the split character: they stay inside words
    assert text_to_word_sequence("a\r\nb c\u00a0d") == ["a\r", "b", "c\u00a0d"]
    assert text_to_word_sequence("İSTANBUL Straße") == ["i̇stanbul", "straße"]  # str.lower, as Keras


def test_pad_sequences_pre_padding_and_pre_truncation():
    out = pad_sequences([[1, 2, 3], [], [4, 5, 6, 7, 8]], maxlen=4)
    assert out.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]]  # pre-truncation keeps the end
    assert pad_sequences([[4, 5, 6, 7, 8]], maxlen=4, padding="post", truncating="post").tolist() == [[4, 5, 6, 7]]


def test_num_words_and_oov_rules():
    tok = KerasTokenizer(word_index={"a": 1, "b": 2, "c": 3}, num_words=3)
    assert tok.texts_to_sequences(["a b c zzz a"]) == [[1, 2, 1]]  # c (id 3 >= num_words) and zzz dropped
    oov = KerasTokenizer(word_index={"<oov>": 1, "a": 2, "b": 3}, num_words=3, oov_token="<oov>")
    assert oov.texts_to_sequences(["a b zzz"]) == [[2, 1, 1]]  # too rare and unknown -> OOV id
    assert KerasTokenizer.from_json(json.loads(json.dumps(oov.to_json()))).texts_to_sequences(["a b zzz"]) == [[2, 1, 1]]


# --- the restricted unpickler ------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for payload in (pickle.dumps(Evil()), pickle.dumps(_Evil()), pickle.dumps({"x": eval}), pickle.dumps(Path("/etc"))):
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            load_tokenizer_state(payload)
    assert not marker.exists()


def test_allowed_containers_still_load():
    import collections
    import io

    data = pickle.dumps({"a": collections.OrderedDict(x=1), "b": collections.defaultdict(int, y=2)})
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    assert obj["a"] == {"x": 1} and obj["b"]["y"] == 2 and obj["b"]["missing"] == 0
    with pytest.raises(pickle.UnpicklingError, match="expected a Keras Tokenizer"):
        load_tokenizer_state(data)


@needs_package
def test_package_tokenizer_state():
    state = load_tokenizer_state((jb.package_model_dir() / "tokenizer.pickle").read_bytes())
    assert state["num_words"] == 20000 and state["oov_token"] is None and state["lower"] is True
    assert state["filters"] == '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n' and state["split"] == " "
    assert state["word_index"]["the"] == 1


@needs_package
def test_tokenizer_json_cache(tmp_path, monkeypatch):
    pk = jb.package_model_dir() / "tokenizer.pickle"
    first = jb.load_tokenizer(pk, cache=tmp_path)
    files = list((tmp_path / "scorers" / "jigsaw-bilstm").glob("tokenizer-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["num_words"] == 20000
    assert not list(files[0].parent.glob("*.tmp"))  # written atomically

    def boom(data):
        raise AssertionError("the pickle must not be read again")

    monkeypatch.setattr(jb, "load_tokenizer_state", boom)
    second = jb.load_tokenizer(pk, cache=tmp_path)
    assert second.texts_to_sequences(["you are the idiot"]) == first.texts_to_sequences(["you are the idiot"])
    monkeypatch.undo()
    files[0].write_text("{not json")  # a corrupt cache is rebuilt
    assert jb.load_tokenizer(pk, cache=tmp_path).word_index["the"] == 1


# --- the port against the original TensorFlow model ------------------------------------------


@needs_package
def test_reference_file_is_for_these_weights(scorer, reference):
    assert reference["meta"]["weights_sha256"] == scorer.identity()["weights_sha256"]
    assert len(reference["rows"]) >= 40


@needs_package
def test_preprocessing_matches_keras_tokenizer(scorer, reference):
    rows = reference["rows"]
    ids = scorer.tokenizer.texts_to_sequences([r["text"] for r in rows])
    for r, got in zip(rows, ids):
        assert got == r["ids"], repr(r["text"][:60])
        assert np.count_nonzero(scorer.encode([r["text"]])[0]) == r["padded_nonzero"]


@needs_package
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_scores_match_tensorflow_within_1e4(scorer, reference, batch_size):
    rows = reference["rows"]
    got = scorer.score([r["text"] for r in rows], batch_size=batch_size)
    assert len(got) == len(rows)
    worst = max(abs(g[lab] - r["scores"][lab]) for g, r in zip(got, rows) for lab in jb.LABELS)
    assert worst < 1e-4, worst
    for g in got:
        assert list(g) == list(jb.LABELS)


@needs_package
def test_scores_separate_toxic_from_benign(scorer):
    toxic, benign = scorer.score(["fuck you you stupid piece of shit", "Thank you for your help."])
    assert toxic["toxic"] > 0.9 > 0.1 > benign["toxic"]


@needs_package
def test_identity_and_registration(scorer):
    ident = scorer.identity()
    assert ident["name"] == "jigsaw-bilstm" and ident["version"] == "0.3.0"
    assert len(ident["weights_sha256"]) == 64 and scorer.main_label == "toxic"
    assert "jigsaw-bilstm" in SCORERS
    assert scorer.score([]) == []


def test_argument_is_refused():
    from lorafair.errors import UserError

    with pytest.raises(UserError, match="jigsaw-bilstm without an argument"):
        build_scorer("jigsaw-bilstm:large")
