"""Exact copy, checked offline: Tesseract reads the delivered image, rapidfuzz compares.

A headline with a typo is the commonest defect of generated banners, and reading text
needs no vision model: OCR is free, local and deterministic, so ``expect.text`` is checked
here first and never costs an API call. Both sides are normalised (case, runs of
whitespace) before comparing; the check passes when the expected copy appears in what was
read with a similarity of at least :data:`MIN_SIMILARITY`. Without the ``tesseract``
binary the check cannot run: it says so (a warning), and the build goes on.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image, ImageOps

MIN_SIMILARITY = 95.0
"""rapidfuzz's 0-100 similarity above which the copy counts as the same (one wrong letter
in a short headline falls below it)."""
MAX_READ_CHARS = 500
MAX_OCR_PIXELS = 4096 * 4096
OCR_VERSION = 1
"""Part of every kept text check's key: a change in how text is read reads it again."""


@dataclass(frozen=True, slots=True)
class TextCheck:
    """What OCR read and whether it is the expected copy (``ok`` None: it could not run)."""

    expected: str
    read: str
    similarity: float
    ok: bool | None
    problem: str | None = None

    def as_record(self) -> dict[str, object]:
        """The manifest's ``text`` check."""
        record: dict[str, object] = {
            "name": "text",
            "ok": bool(self.ok),
            "expected": self.expected,
            "read": self.read,
            "similarity": round(self.similarity, 1),
        }
        if self.problem is not None:
            record["detail"] = self.problem
        return record


def normalise(text: str) -> str:
    """Lower case, one space between words, no edges."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def compare(expected: str, read: str) -> TextCheck:
    """Whether ``read`` carries ``expected`` (fuzzy, normalised)."""
    from rapidfuzz import fuzz  # noqa: PLC0415 - only when a spec asks for text

    want, got = normalise(expected), normalise(read)
    if not got:
        return TextCheck(expected, read, 0.0, ok=False)
    similarity = max(
        fuzz.ratio(want, got), fuzz.partial_ratio(want, got) if len(got) > len(want) else 0.0
    )
    return TextCheck(
        expected, read[:MAX_READ_CHARS], float(similarity), ok=similarity >= MIN_SIMILARITY
    )


def check_text(image: bytes, expected: str) -> TextCheck:
    """Read ``image`` with Tesseract and compare with ``expected``; a missing binary or an
    unreadable image is a check that could not run (``ok`` None), never an exception."""
    try:
        import pytesseract  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        return TextCheck(expected, "", 0.0, ok=None, problem="pytesseract is not installed")
    try:
        with Image.open(io.BytesIO(image)) as opened:
            if opened.width * opened.height > MAX_OCR_PIXELS:
                return TextCheck(
                    expected, "", 0.0, ok=None, problem="the image is too large to read"
                )
            gray = ImageOps.grayscale(opened.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return TextCheck(expected, "", 0.0, ok=None, problem=f"the image cannot be read ({exc})")
    try:
        read = pytesseract.image_to_string(gray, timeout=60)
    except pytesseract.TesseractNotFoundError:
        return TextCheck(
            expected,
            "",
            0.0,
            ok=None,
            problem="tesseract is not installed (apt-get install tesseract-ocr); text not checked",
        )
    except (RuntimeError, pytesseract.TesseractError) as exc:
        return TextCheck(expected, "", 0.0, ok=None, problem=f"tesseract failed ({exc})")
    return compare(expected, str(read))
