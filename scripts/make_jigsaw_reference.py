"""Reference scores of the ORIGINAL ``toxic-comment-classifier`` (TensorFlow/Keras) for the port test.

Run in a separate environment that has TensorFlow (never needed by lorafair itself)::

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu h5py numpy
    /tmp/tfenv/bin/pip install --no-deps toxic-comment-classifier
    /tmp/tfenv/bin/python scripts/make_jigsaw_reference.py tests/data/jigsaw_reference.json

It scores each text with the package's own ``ToxicCommentClassifier.classify`` (Keras tokenizer,
``pad_sequences(maxlen=100)``, ``model.predict``) and records the word ids the package's tokenizer
produced, so that a mismatch can be traced to preprocessing or to the network.
``tests/test_scorers_jigsaw.py`` compares the PyTorch port against this file (tolerance 1e-4).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def texts(word_index: dict[str, int]) -> list[str]:
    """~40 texts covering the preprocessing edge cases and both ends of the score range."""
    by_index = {i: w for w, i in word_index.items()}
    boundary = [by_index[i] for i in (19998, 19999, 20000, 20001, 50000)]  # ids >= num_words are dropped
    benign_long = " ".join(["the weather was pleasant and we walked to the park with our family"] * 12)  # 156 words
    toxic_word = "fuck you you stupid idiot"
    return [
        "",
        " ",
        "!!! ??? ... ,,, ;;; ---",
        '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
        "\t\n\r",
        "qwzxv blorptastic zzyzxq frobnicatorium",  # all out of vocabulary
        " ".join(boundary),
        f"{boundary[1]} {boundary[2]} idiot",
        "Thank you for your help, I really appreciate it.",
        "The article was well researched and clearly written.",
        "I love this lovely day in the garden with my friends.",
        "Please add a citation for the population figures in the second paragraph.",
        "What a wonderful contribution, thanks for fixing the typos!",
        "You are a stupid idiot.",
        "fuck you you stupid piece of shit",
        "YOU ARE AN IDIOT AND A MORON",
        "I will kill you and your whole family",
        "go back to your country you dirty immigrant",
        "shut up you ugly fat loser, nobody likes you",
        "what the hell is this crap",
        "you suck",
        "f-u-c-k you, i-d-i-o-t",
        "don't you dare revert my edit again, you idiot's friend",
        "Ça va? Tu es un idiot.",
        "日本語のテキストです",
        "İstanbul ΣΊΣΥΦΟΣ straße naïve café",
        "you 😀 idiot 💩",
        "idiot\u00a0stupid moron",  # no-break space is not a separator in Keras
        "stupid\r\nidiot",  # \r is not filtered, \n is
        "visit http://example.com/idiot?x=1 now",
        "<b>bold</b> &amp; <i>stupid</i>",
        "1234567890 42 3.14159",
        "idiot " * 150,  # >100 tokens, all the same
        toxic_word + " " + benign_long,  # toxic words truncated away (pre-truncation keeps the end)
        benign_long + " " + toxic_word,  # toxic words kept
        " ".join(["word"] * 99 + ["idiot"]),  # exactly 100 tokens
        " ".join(["word"] * 100 + ["idiot"]),  # 101 tokens
        " ".join(["hello"] * 1000),  # very long
        "a",
        "the the the the",
    ]


def main(out: str) -> None:
    import keras
    import numpy as np
    import tensorflow as tf
    import toxic_classifier
    from importlib.metadata import version
    from tensorflow.keras.preprocessing.sequence import pad_sequences
    from toxic_classifier import ToxicCommentClassifier
    from toxic_classifier.model import LIST_CLASSES, MAXLEN

    clf = ToxicCommentClassifier()
    weights = Path(toxic_classifier.__file__).parent / "model" / "model.weights.h5"
    rows = []
    all_texts = texts(clf.tokenizer.word_index)
    for text in all_texts:
        ids = clf.tokenizer.texts_to_sequences([text])[0]
        padded = pad_sequences([ids], maxlen=MAXLEN)[0]
        rows.append({"text": text, "ids": [int(i) for i in ids], "padded_nonzero": int(np.count_nonzero(padded)), "scores": clf.classify(text)})
    # batch prediction of the same texts, to show batching does not change Keras' numbers
    batch = pad_sequences(clf.tokenizer.texts_to_sequences(all_texts), maxlen=MAXLEN)
    batch_preds = clf.model.predict(batch, verbose=0)
    max_diff = float(max(abs(batch_preds[i][j] - rows[i]["scores"][c]) for i in range(len(rows)) for j, c in enumerate(LIST_CLASSES)))
    meta = {
        "made_by": "scripts/make_jigsaw_reference.py",
        "package": "toxic-comment-classifier",
        "package_version": version("toxic-comment-classifier"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "labels": list(LIST_CLASSES),
        "maxlen": MAXLEN,
        "num_words": clf.tokenizer.num_words,
        "oov_token": clf.tokenizer.oov_token,
        "keras_single_vs_batch_max_abs_diff": max_diff,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {len(rows)} reference rows to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/jigsaw_reference.json")
