"""NLTK data for the text attacks (WordNet 3.0 + the English stopword list), built offline.

TextAttack's WordNet synonym swap (PWWS, the paper's synonym replacing) and its stopword constraint read
NLTK's `corpora/wordnet` and `corpora/stopwords/english`, which NLTK normally downloads from GitHub.
Where only package registries can be reached, Debian's `wordnet-base` and `wordnet-sense-index`
packages hold the same WordNet 3.0 database under /usr/share/wordnet; `build_nltk_data` copies it into
an NLTK data folder (copies, not symlinks: NLTK refuses paths that resolve outside its data folder),
adds the `lexnames` table NLTK's reader needs and NLTK's 179-word English stopword list.

The folder is `default_nltk_dir()`: $MMRB_NLTK_DATA, else $MMRB_CACHE/nltk_data, else
~/.cache/mmrb/nltk_data. `ensure_text_resources()` puts it on `nltk.data.path` (building it first
when it is missing and the Debian files are there) and says how to get what is still missing.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from mmrb.core.errors import MmrbError
from mmrb.core.io import atomic_write

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
APT_PACKAGES = ("wordnet-base", "wordnet-sense-index")
APT_COMMAND = "apt-get install -y " + " ".join(APT_PACKAGES)
NLTK_DOWNLOAD_COMMAND = ('python -c "import nltk; nltk.download(\'wordnet\'); nltk.download(\'stopwords\'); '
                         'nltk.download(\'omw-1.4\')"')
BUILD_COMMAND = "mmrb data text-resources"

_POS = ("noun", "verb", "adj", "adv")
#: WordNet database file -> the Debian package that installs it under /usr/share/wordnet.
WORDNET_FILES: dict[str, str] = {
    **{f"data.{p}": "wordnet-base" for p in _POS},
    **{f"index.{p}": "wordnet-base" for p in _POS},
    **{f"{p}.exc": "wordnet-base" for p in _POS},
    "cntlist.rev": "wordnet-base",
    "index.sense": "wordnet-sense-index",
}
#: Files NLTK's WordNet reader opens when it loads (the others are opened on first use).
WORDNET_REQUIRED = ("lexnames", *(f"index.{p}" for p in _POS), *(f"data.{p}" for p in _POS), *(f"{p}.exc" for p in _POS))

#: WordNet 3.0 lexicographer files (wndb lexnames(5)): number, name, syntactic category
#: (1 noun, 2 verb, 3 adjective, 4 adverb), as in NLTK's copy of the database.
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1),
    ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
    ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
    ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)

#: NLTK's English stopword list (corpora/stopwords/english, the 179-word version), in its order.
ENGLISH_STOPWORDS: tuple[str, ...] = (
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "you're", "you've", "you'll", "you'd",
    "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "she's", "her", "hers",
    "herself", "it", "it's", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which",
    "who", "whom", "this", "that", "that'll", "these", "those", "am", "is", "are", "was", "were", "be", "been",
    "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but",
    "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against",
    "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down",
    "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when",
    "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no",
    "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don",
    "don't", "should", "should've", "now", "d", "ll", "m", "o", "re", "ve", "y", "ain", "aren", "aren't",
    "couldn", "couldn't", "didn", "didn't", "doesn", "doesn't", "hadn", "hadn't", "hasn", "hasn't", "haven",
    "haven't", "isn", "isn't", "ma", "mightn", "mightn't", "mustn", "mustn't", "needn", "needn't", "shan",
    "shan't", "shouldn", "shouldn't", "wasn", "wasn't", "weren", "weren't", "won", "won't", "wouldn",
    "wouldn't",
)

#: resource name -> NLTK paths that must all be found for it to count as present.
RESOURCES: dict[str, tuple[str, ...]] = {
    "wordnet": tuple(f"corpora/wordnet/{name}" for name in WORDNET_REQUIRED),
    "stopwords": ("corpora/stopwords/english",),
}


class TextResourceError(MmrbError):
    """NLTK data the text attacks need (WordNet, stopwords) is missing or cannot be built."""


def default_nltk_dir() -> Path:
    """$MMRB_NLTK_DATA, else $MMRB_CACHE/nltk_data, else ~/.cache/mmrb/nltk_data."""
    if os.environ.get("MMRB_NLTK_DATA"):
        return Path(os.environ["MMRB_NLTK_DATA"])
    return Path(os.environ.get("MMRB_CACHE", Path.home() / ".cache" / "mmrb")) / "nltk_data"


def _write_if_changed(path: Path, content: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return
    atomic_write(path, content)


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
        return
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))  # a real copy: NLTK rejects links out of its folder


def build_nltk_data(out: Path | None = None, wordnet_dir: Path = DEBIAN_WORDNET_DIR) -> Path:
    """Write `<out>/corpora/wordnet/` (copied from Debian's WordNet 3.0 + lexnames) and
    `<out>/corpora/stopwords/english`; idempotent. Returns `out` (default `default_nltk_dir()`)."""
    out = Path(out) if out is not None else default_nltk_dir()
    wordnet_dir = Path(wordnet_dir)
    missing = [name for name in WORDNET_FILES if not (wordnet_dir / name).is_file()]
    if missing:
        packages = sorted({WORDNET_FILES[name] for name in missing})
        raise TextResourceError(
            f"{wordnet_dir}: WordNet 3.0 files missing: {', '.join(missing)} (from the Debian package(s) "
            f"{', '.join(packages)}). Install them with `{APT_COMMAND}` (as root, after `apt-get update`), "
            f"or download the NLTK data directly where the internet is reachable: {NLTK_DOWNLOAD_COMMAND}")
    wordnet_out, stopwords_out = out / "corpora" / "wordnet", out / "corpora" / "stopwords"
    wordnet_out.mkdir(parents=True, exist_ok=True)
    stopwords_out.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        _copy_if_changed(wordnet_dir / name, wordnet_out / name)
    _write_if_changed(wordnet_out / "lexnames",
                      "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES)))
    _write_if_changed(stopwords_out / "english", "\n".join(ENGLISH_STOPWORDS) + "\n")
    _write_if_changed(out / "README.mmrb", f"Built by mmrb (benchmark.data.text_resources.build_nltk_data) from "
                      f"{wordnet_dir} (Debian {', '.join(APT_PACKAGES)}): WordNet 3.0, Princeton University "
                      "license (see /usr/share/doc/wordnet-base/copyright), and NLTK's English stopwords.\n")
    return out


def _add_to_nltk_path(folder: Path) -> None:
    import nltk

    folder_s = str(folder)
    if folder_s not in nltk.data.path:
        nltk.data.path.insert(0, folder_s)
    env = os.environ.get("NLTK_DATA", "")
    if folder_s not in env.split(os.pathsep):
        os.environ["NLTK_DATA"] = folder_s + (os.pathsep + env if env else "")


def missing_text_resources(paths: Sequence[Path] | None = None) -> list[str]:
    """Which of "wordnet", "stopwords" NLTK cannot find: in `paths` only when given, else on
    `nltk.data.path` (with `default_nltk_dir()` added to it)."""
    import nltk

    if paths is None:
        _add_to_nltk_path(default_nltk_dir())
        search = None
    else:
        search = [str(p) for p in paths]
    missing = []
    for resource, files in RESOURCES.items():
        for name in files:
            try:
                nltk.data.find(name, paths=search)
            except LookupError:
                missing.append(resource)
                break
    return missing


def ensure_text_resources(build: bool = True, wordnet_dir: Path = DEBIAN_WORDNET_DIR) -> None:
    """Make WordNet and the English stopwords findable by NLTK (and so by TextAttack), or raise.

    Adds `default_nltk_dir()` to `nltk.data.path` and $NLTK_DATA; when something is missing there and
    `build` is true and the Debian WordNet files are present in `wordnet_dir`, builds the folder first.
    Raises TextResourceError naming what is missing and both fixes.
    """
    folder = default_nltk_dir()
    _add_to_nltk_path(folder)
    missing = missing_text_resources()
    if missing and build and all((Path(wordnet_dir) / name).is_file() for name in WORDNET_FILES):
        try:
            build_nltk_data(folder, wordnet_dir)
        except OSError:  # e.g. a read-only cache: report what is missing below
            pass
        missing = missing_text_resources()
    if missing:
        raise TextResourceError(
            f"NLTK data missing for the text attacks: {', '.join(missing)} (searched {', '.join(map(str, _nltk_path()))}). "
            f"With internet access: {NLTK_DOWNLOAD_COMMAND}. "
            f"Offline: `{APT_COMMAND} && {BUILD_COMMAND}` (builds {folder} from {wordnet_dir}; "
            "set MMRB_NLTK_DATA to use another folder).")


def _nltk_path() -> list[str]:
    import nltk

    return list(nltk.data.path)
