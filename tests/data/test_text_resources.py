"""NLTK data for the text attacks, built offline from Debian's WordNet 3.0 (wordnet-base, wordnet-sense-index)."""
from __future__ import annotations

from pathlib import Path

import nltk
import pytest
from nltk.corpus.reader import WordListCorpusReader, WordNetCorpusReader

from benchmark.data import text_resources as tr
from mmrb.core.errors import MmrbError

DEBIAN = tr.DEBIAN_WORDNET_DIR


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    missing = [name for name in tr.WORDNET_FILES if not (DEBIAN / name).is_file()]
    assert not missing, f"install the Debian WordNet packages first: {tr.APT_COMMAND} (missing {missing})"
    return tr.build_nltk_data(tmp_path_factory.mktemp("nltk_data"), DEBIAN)


def test_built_folder_serves_wordnet_and_stopwords_to_nltk(built, monkeypatch):
    assert tr.missing_text_resources([built]) == []
    monkeypatch.setattr(nltk.data, "path", [str(built)])  # NLTK reads corpora only from its data path
    wordnet = WordNetCorpusReader(nltk.data.find("corpora/wordnet"), omw_reader=False)
    assert wordnet.get_version() == "3.0"
    assert wordnet.synsets("heart")
    assert "pump" in {n for s in wordnet.synsets("heart") for n in s.lemma_names()}
    # lexnames maps each synset's lexicographer-file number to the right name
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"
    assert wordnet.synset("heart.n.02").lexname() == "noun.body"
    assert wordnet.synset("rain.v.01").lexname() == "verb.weather"
    assert wordnet.synset("quickly.r.01").lexname() == "adv.all"
    stopwords = WordListCorpusReader(nltk.data.find("corpora/stopwords", paths=[str(built)]), ["english"])
    words = stopwords.words("english")
    assert "the" in words and "not" in words and "heart" not in words
    assert len(words) == len(set(words)) == 179


def test_nltk_corpus_loaders_find_the_folder(built, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(built)])
    omw = nltk.corpus.util.LazyCorpusLoader("omw-2.0", nltk.corpus.reader.CorpusReader, r".*/wn-data-.*\.tab")
    wordnet = nltk.corpus.util.LazyCorpusLoader("wordnet", WordNetCorpusReader, omw)  # as nltk.corpus.wordnet
    stopwords = nltk.corpus.util.LazyCorpusLoader("stopwords", WordListCorpusReader, r"(?!README|\.).*")
    assert wordnet.synsets("effusion")
    assert "the" in stopwords.words("english")


def test_build_copies_files_and_is_idempotent(built):
    target = built / "corpora" / "wordnet"
    for name in tr.WORDNET_FILES:
        assert (target / name).is_file() and not (target / name).is_symlink()
        assert (target / name).stat().st_size == (DEBIAN / name).stat().st_size
    assert len((target / "lexnames").read_text().splitlines()) == 45
    assert (target / "lexnames").read_text().splitlines()[0] == "00\tadj.all\t3"
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    assert tr.build_nltk_data(built, DEBIAN) == built
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()} == before


def test_build_names_missing_debian_files(tmp_path):
    partial = tmp_path / "wordnet"
    partial.mkdir()
    (partial / "data.noun").write_text("")
    with pytest.raises(tr.TextResourceError) as info:
        tr.build_nltk_data(tmp_path / "out", partial)
    message = str(info.value)
    assert isinstance(info.value, MmrbError)
    assert "index.sense" in message and "data.verb" in message and "data.noun" not in message.split("missing:")[1].split("(")[0]
    assert "apt-get install -y wordnet-base wordnet-sense-index" in message
    assert not (tmp_path / "out").exists()


def test_default_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MMRB_NLTK_DATA", str(tmp_path / "a"))
    assert tr.default_nltk_dir() == tmp_path / "a"
    monkeypatch.delenv("MMRB_NLTK_DATA")
    monkeypatch.setenv("MMRB_CACHE", str(tmp_path / "cache"))
    assert tr.default_nltk_dir() == tmp_path / "cache" / "nltk_data"
    monkeypatch.delenv("MMRB_CACHE")
    assert tr.default_nltk_dir() == Path.home() / ".cache" / "mmrb" / "nltk_data"


def test_missing_resources_error_names_them_and_both_fixes(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setenv("NLTK_DATA", "")
    monkeypatch.setenv("MMRB_NLTK_DATA", str(empty))
    assert tr.missing_text_resources() == ["wordnet", "stopwords"]
    assert str(empty) in nltk.data.path
    with pytest.raises(tr.TextResourceError) as info:
        tr.ensure_text_resources(wordnet_dir=tmp_path / "no-debian-wordnet")
    message = str(info.value)
    assert "wordnet, stopwords" in message
    assert "nltk.download('wordnet')" in message and "nltk.download('stopwords')" in message
    assert "apt-get install" in message and "wordnet-base wordnet-sense-index" in message
    assert "mmrb data text-resources" in message
    assert list(empty.iterdir()) == []  # nothing half-built

    # only the stopwords (or one WordNet file) missing: only they are named
    partial = tr.build_nltk_data(tmp_path / "partial", DEBIAN)
    (partial / "corpora" / "stopwords" / "english").unlink()
    assert tr.missing_text_resources([partial]) == ["stopwords"]
    (partial / "corpora" / "wordnet" / "lexnames").unlink()
    assert tr.missing_text_resources([partial]) == ["wordnet", "stopwords"]


def test_ensure_builds_the_default_folder_from_debian_files(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setenv("NLTK_DATA", "")
    monkeypatch.setenv("MMRB_NLTK_DATA", str(tmp_path / "auto"))
    tr.ensure_text_resources()
    assert (tmp_path / "auto" / "corpora" / "wordnet" / "lexnames").is_file()
    assert nltk.data.path[0] == str(tmp_path / "auto")
    assert str(tmp_path / "auto") in __import__("os").environ["NLTK_DATA"]
    assert tr.missing_text_resources() == []
