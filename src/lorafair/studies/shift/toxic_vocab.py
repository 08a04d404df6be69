"""Toxic word lists → vocabulary token ids, for the logit lens's "mass on toxic tokens".

Sources: ``"better-profanity"`` (the word list shipped in the PyPI package ``better-profanity``,
read from its folder, not imported) or the path of a text file with one word per line (``#``
comments and blank lines ignored).

A word maps to the *first* token of ``" word"`` and of ``"word"`` (as the paper looked at the
next-token probability of a toxic word starting). A first token is kept only when its text
(stripped) is at least ``min_chars`` characters long (or the whole word, if shorter): otherwise a
byte- or character-level tokenizer would count every word starting with "f" as toxic.
"""

from __future__ import annotations

from pathlib import Path

from lorafair.errors import UserError

BUILTIN = {"better-profanity": ("better_profanity", "profanity_wordlist.txt")}


def _builtin_path(name: str) -> Path:
    pkg, fname = BUILTIN[name]
    from lorafair.packages import package_dir

    root = package_dir(pkg)
    if root is None:
        raise UserError("toxic_vocab", name, f"the PyPI package {name!r} to be installed (pip install {name})")
    return root / fname


def load_words(source: str) -> list[str]:
    """The words of a built-in list name or a word file (unique, in file order)."""
    path = _builtin_path(source) if source in BUILTIN else Path(source).expanduser()
    if not path.is_file():
        raise UserError("toxic_vocab", source, f"one of {', '.join(BUILTIN)} or an existing word-list file")
    words: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        w = line.strip()
        if w and not w.startswith("#"):
            words.setdefault(w, None)
    if not words:
        raise UserError("toxic_vocab", source, "a word list with at least one word")
    return list(words)


def token_ids_for_words(tokenizer, words, *, min_chars: int = 2) -> list[int]:
    """Sorted unique first-token ids of ``" word"`` and ``"word"`` for each word (see module doc)."""
    ids: set[int] = set()
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for w in words:
        need = min(min_chars, len(w.strip()))
        for text in (" " + w, w):
            toks = tokenizer(text, add_special_tokens=False)["input_ids"]
            if not toks or toks[0] in special:
                continue
            piece = tokenizer.decode([toks[0]]).strip()
            if len(piece) >= need and w.lower().startswith(piece.lower()):
                ids.add(int(toks[0]))
    return sorted(ids)
