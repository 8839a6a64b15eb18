"""One rule from an asset's id to a name in a game's code, for every index exporter.

An id is user text (``icons/sword-fire#2@64x64``; a collection is a spec file's path, so
anything a file name may hold), and the name ends up in TypeScript, C# or GDScript
source. The rule is total: every id gives a valid name in every language, and the same
id always gives the same name, so game code that uses a name keeps compiling until the
asset goes away. It is lossy (``a-b`` and ``a_b`` both give ``aB``), so the build refuses
two ids that give one name, naming both, before anything is paid for
(:func:`pipeline.exports.collisions.identifier_errors`).

The rule (``docs/exports.md`` has examples):

1. The id is split into words: ``#k`` (a variant) is the word ``vk``, ``@WxH`` (a
   rendition's size) is ``sWxH``; every run of ASCII letters and digits is a word,
   lowercased; accents are dropped first (``café`` is ``cafe``), and any other letter or
   digit is a word of its own, ``u`` and its code point in hex (``中`` is ``u4e2d``).
   Everything else (``/ - _ . +`` spaces ...) only separates words.
2. The words are joined in the language's case: camelCase (TypeScript, JSON), PascalCase
   (C#) or UPPER_SNAKE (GDScript).
3. A name that would start with a digit gets a leading ``_``; a name the language keeps
   for itself (a keyword, or a name the generated file already uses) gets a trailing
   ``_``. No other name has an ``_`` there, so neither step makes two names one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from typing import Final, Literal

Case = Literal["camel", "pascal", "upper_snake"]

_TOKEN: Final = re.compile(r"#(\d+)|@(\d+)x(\d+)|([A-Za-z0-9]+)|(.)", re.DOTALL)
_IMAGE_SUFFIX: Final = re.compile(r"\.(?:png|webp|jpe?g)$", re.IGNORECASE)


def words(text: str) -> list[str]:
    """The words of an id (rule 1): lowercase ASCII letters and digits, never empty."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    out: list[str] = []
    for variant, width, height, run, other in _TOKEN.findall(plain):
        if variant:
            out.append(f"v{variant}")
        elif width:
            out.append(f"s{width}x{height}")
        elif run:
            out.append(run.lower())
        elif other.isalnum():
            out.append(f"u{ord(other):x}")
    return out or [f"u{ord(c):x}" for c in plain] or ["empty"]


def join(parts: list[str], case: Case) -> str:
    """The words joined in ``case`` (rule 2), with a leading ``_`` before a digit."""
    if case == "upper_snake":
        name = "_".join(p.upper() for p in parts)
    elif case == "pascal":
        name = "".join(p[:1].upper() + p[1:] for p in parts)
    else:
        name = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return "_" + name if name[:1].isdigit() else name


def identifier(asset_id: str, case: Case, reserved: Collection[str] = ()) -> str:
    """The name of ``asset_id`` in ``case``; a name in ``reserved`` gets a trailing ``_``."""
    name = join(words(asset_id), case)
    return name + "_" if name in reserved else name


def frame_id(sheet_id: str, frame: str) -> str:
    """The id of a sheet's frame: the sheet's id, ``/``, its atlas key without the image
    extension (``icons/atlas/icon-bow.v2``)."""
    return f"{sheet_id}/{_IMAGE_SUFFIX.sub('', frame)}"


Namer = Callable[[str], str]
"""An exporter's rule: an id to its name in the exporter's language."""
