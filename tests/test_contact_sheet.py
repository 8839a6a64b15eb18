"""``format: contact-sheet``: every delivered image as a labelled thumbnail grid in a PNG,
built through the real CLI on the ``preview`` provider (SVG and GIF on the fake API).

A cell is found from the documented geometry (margin, header, gap, label band), and its
centre pixel is compared with the delivered file's own centre, shrunk to the cell
independently of the exporter, so a cell showing the wrong image, or none, fails.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from images import png_header
from PIL import Image

from pipeline.exports.base import ExportError
from pipeline.exports.contact_drawing import (
    CHECKER_LIGHT,
    SHEET_COLOUR,
    UNREADABLE_EDGE,
    UNREADABLE_FILL,
    drawable,
    fitted,
    label_font,
    thumbnail,
)
from pipeline.exports.contact_sheet import (
    GAP,
    HEADER,
    LABEL_BAND,
    MARGIN,
    MAX_PAGES,
    ContactSheetExporter,
    ContactSheetOptions,
)
from pipeline.postprocess import gif, svg

CELL = 64
NAMES = ["axe", "bow", "cape", "dagger", "elixir"]
SPEC = "assets:\n" + "".join(
    f"""  - id: {name}
    prompt: {name}, item {index}
    size: {"1536x1024" if name == "bow" else "1024x1024"}
    quality: low
{"    background: transparent" + chr(10) if name == "cape" else ""}"""
    for index, name in enumerate(NAMES)
)
"""Five icons in one collection (``icons/axe`` ... ``icons/elixir``, the sheet's order):
one landscape, one transparent."""


def settings(**options: object) -> str:
    """``assetpipe.yaml`` with one contact-sheet export of ``options`` (cell 64 unless
    given)."""
    lines = ["exports:", "  - format: contact-sheet"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in {"cell": CELL, **options}.items()]
    return "\n".join(lines) + "\n"


def build(run, *extra: str):
    result = run("build", "--provider", "preview", "-q", *extra)
    assert result.code == 0, result.err
    return result


def entries(project) -> list[dict]:
    """The manifest's delivered entries in the sheet's order."""
    doc = json.loads((project / "output/manifest.json").read_text())
    return sorted(
        doc["entries"], key=lambda e: (e["collection"], e["asset"], e["variant"], e["job"])
    )


def sheet(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def box(index: int, columns: int, cell: int = CELL, band: int = LABEL_BAND) -> tuple[int, int]:
    """The top-left corner of cell ``index``'s thumbnail box."""
    row, column = divmod(index, columns)
    return MARGIN + column * (cell + GAP), MARGIN + HEADER + row * (cell + band + GAP)


def page_size(columns: int, rows: int, cell: int = CELL, band: int = LABEL_BAND) -> tuple[int, int]:
    return (
        2 * MARGIN + columns * cell + (columns - 1) * GAP,
        2 * MARGIN + HEADER + rows * (cell + band) + (rows - 1) * GAP,
    )


SPOTS = ((0.5, 0.5), (0.5, 0.125), (0.125, 0.5))
"""Where a cell is compared with its image: the centre, and the middle of the top and
of the left edge (the preview draws its shape and text at the centre, in few colours; the
background gradient differs more between images)."""


TOLERANCE = 16
"""How far a cell's colour may be from its image's, per channel: the exporter shrinks by
a box average before Lanczos, the test by Lanczos alone, and the two differ a little on
the preview's text."""


def spots(size: tuple[int, int]) -> list[tuple[int, int]]:
    return [(int(size[0] * fx), int(size[1] * fy)) for fx, fy in SPOTS]


def expected_colours(path: Path, cell: int = CELL) -> list[tuple[int, ...]]:
    """The delivered file's colours at :data:`SPOTS` once shrunk to fit the cell
    (Pillow alone, not the exporter's code)."""
    with Image.open(path) as image:
        small = image.convert("RGBA")
    small.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return [small.getpixel(spot) for spot in spots(small.size)]


def cell_colours(image: Image.Image, index: int, columns: int, path: Path, **kw: int) -> list:
    """The sheet's colours at :data:`SPOTS` of the thumbnail of ``path`` in cell ``index``
    (the thumbnail centred in its box)."""
    cell = kw.get("cell", CELL)
    with Image.open(path) as source:
        width, height = source.size
    scale = min(1.0, cell / width, cell / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    x, y = box(index, columns, **kw)
    left, top = x + (cell - size[0]) // 2, y + (cell - size[1]) // 2
    return [image.getpixel((left + sx, top + sy)) for sx, sy in spots(size)]


def matches(got: list, want: list, tolerance: int = TOLERANCE) -> bool:
    return all(distance(g, w) <= tolerance for g, w in zip(got, want, strict=True))


def distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return max(abs(x - y) for x, y in zip(a[:3], b[:3], strict=True))


def ink(image: Image.Image, area: tuple[int, int, int, int], background: tuple[int, ...]) -> int:
    """How many pixels of ``area`` differ from ``background`` (text drawn there)."""
    region = image.crop(area)
    return sum(1 for pixel in region.get_flattened_data() if distance(pixel, background) > 40)


def test_every_delivered_image_is_a_labelled_cell_in_a_near_square_grid(project, run):
    """Five images: three columns, two rows, in id order; each cell shows its image
    (centre and edges compared), each label band has text, and a transparent image shows
    the checkerboard through it."""
    project.gen({"specs/icons.yaml": SPEC, "assetpipe.yaml": settings()})
    build(run)
    image = sheet(project / "output/contact-sheet.png")
    assert image.size == page_size(columns=3, rows=2)
    delivered = entries(project)
    assert [e["job"] for e in delivered] == [f"icons/{n}" for n in NAMES]
    files = [project / "output" / e["path"] for e in delivered]
    expected = [expected_colours(f) for f in files]
    # The images differ where the cells are compared: a swapped cell would be seen.
    assert all(
        not matches(expected[i], expected[j], 2 * TOLERANCE) for i in range(5) for j in range(i)
    )
    for index, path in enumerate(files):
        got = cell_colours(image, index, 3, path)
        want = expected[index]
        shown = [(g, w) for g, w in zip(got, want, strict=True) if w[3] == 255]
        assert shown and all(distance(g, w) <= TOLERANCE for g, w in shown), (path.name, got, want)
        x, y = box(index, columns=3)
        assert ink(image, (x, y + CELL, x + CELL, y + CELL + LABEL_BAND), SHEET_COLOUR) > 20
    x, y = box(NAMES.index("cape"), columns=3)
    assert image.getpixel((x, y)) == CHECKER_LIGHT  # the preview's shape is inset: clear corner


def test_options_shape_the_grid_and_the_background(project, run):
    """``columns``, ``label: none`` (no band), a flat ``background`` under the transparent
    image, and ``include`` (globs of ids) choosing the cells."""
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": settings(
                columns=1, label="none", background="#203040", include=["icons/c*", "*/a*"]
            ),
        }
    )
    build(run)
    image = sheet(project / "output/contact-sheet.png")
    assert image.size == page_size(columns=1, rows=2, band=0)
    axe = project / "output/icons/axe.png"
    assert matches(cell_colours(image, 0, 1, axe, band=0), expected_colours(axe))
    x, y = box(1, columns=1, band=0)
    assert image.getpixel((x, y)) == (0x20, 0x30, 0x40)  # the cape's clear corner
    assert image.getpixel((x + CELL // 2, y + CELL // 2)) != (0x20, 0x30, 0x40)


def test_an_unchanged_sheet_is_neither_rewritten_nor_touched(project, run):
    """The same manifest gives the same bytes: a build and ``assetpipe export`` leave
    the sheet's bytes and mtime as they were, and the PNG carries no date or text."""
    project.gen({"specs/icons.yaml": SPEC, "assetpipe.yaml": settings()})
    build(run)
    build(run)  # statuses turn from generated to up-to-date: nothing on the sheet changes
    path = project / "output/contact-sheet.png"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    build(run, "--prune")  # runs the build (and its exporters' check) again
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    result = run("export")
    assert result.code == 0, result.err
    assert "unchanged contact-sheet.png (contact-sheet)" in result.out
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert chunks(before[0]) == {"IHDR", "IDAT", "IEND"}


def chunks(png: bytes) -> set[str]:
    """The chunk types of a PNG."""
    found, at = set(), 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        found.add(png[at + 4 : at + 8].decode("ascii"))
        at += 12 + length
    return found


def test_a_file_that_cannot_be_read_gets_a_cell_saying_so(project, run):
    """A damaged file, one whose header claims a decompression bomb, and a deleted one:
    each is a "cannot read" cell with a warning; the other cells and the export succeed."""
    project.gen({"specs/icons.yaml": SPEC, "assetpipe.yaml": settings()})
    build(run)
    out = project / "output/icons"
    (out / "axe.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (out / "bow.png").write_bytes(png_header(100_000, 100_000))
    (out / "dagger.png").unlink()
    result = run("export")
    assert result.code == 0, result.err
    for name in ("axe", "bow", "dagger"):
        assert f"cannot read icons/{name}.png" in result.err
    image = sheet(project / "output/contact-sheet.png")
    for name in ("axe", "bow", "dagger"):
        x, y = box(NAMES.index(name), columns=3)
        assert image.getpixel((x, y)) == UNREADABLE_EDGE
        assert image.getpixel((x + 2, y + 2)) == UNREADABLE_FILL
        assert ink(image, (x + 2, y + 2, x + CELL - 2, y + CELL - 2), UNREADABLE_FILL) > 20
    elixir = out / "elixir.png"
    assert matches(cell_colours(image, NAMES.index("elixir"), 3, elixir), expected_colours(elixir))


def test_more_cells_than_a_page_holds_go_onto_numbered_pages(project, run):
    """``per_page: 2`` over five images: pages 1-3 (2, 2, 1 cells), no unnumbered sheet;
    back to one page, the pages are removed and the single sheet is written."""
    project.gen({"specs/icons.yaml": SPEC, "assetpipe.yaml": settings(per_page=2)})
    build(run)
    output = project / "output"
    assert not (output / "contact-sheet.png").exists()
    sizes = [sheet(output / f"contact-sheet-{n}.png").size for n in (1, 2, 3)]
    assert sizes == [page_size(2, 1), page_size(2, 1), page_size(2, 1)]
    assert not (output / "contact-sheet-4.png").exists()
    third = sheet(output / "contact-sheet-3.png")
    elixir = output / "icons/elixir.png"
    assert matches(cell_colours(third, 0, 2, elixir), expected_colours(elixir))
    project.gen({"assetpipe.yaml": settings()})
    result = run("export")
    assert result.code == 0, result.err
    assert (output / "contact-sheet.png").is_file()
    assert sorted(p.name for p in output.glob("contact-sheet*")) == ["contact-sheet.png"]


def test_a_sheet_needing_more_pages_than_it_reserved_is_refused(tmp_path: Path):
    """Page names are reserved before the build, so the count is bounded: past it, an
    error saying what to change (before any file is read)."""
    from pipeline.output import ManifestEntry

    exporter = ContactSheetExporter(ContactSheetOptions(per_page=1))
    assert len(exporter.reserved()) == MAX_PAGES + 1
    many = [
        ManifestEntry(
            job=f"c/a{i}", path=f"c/a{i}.png", kind="generate", status="generated", sha256="0" * 64
        )
        for i in range(MAX_PAGES + 1)
    ]
    with pytest.raises(ExportError, match="include:"):
        exporter.render(many, plan=None)  # type: ignore[arg-type]


def test_unicode_and_long_ids_are_labelled_without_failing(project, run):
    """A collection named in another script and an id wider than its cell: the build
    succeeds and each label is drawn, cut to the cell."""
    long_id = "a-very-long-asset-name-that-cannot-fit-under-a-small-thumbnail"
    project.gen(
        {
            "specs/menüs中.yaml": f"assets:\n  - {{id: {long_id}, prompt: a, size: 1024x1024}}\n",
            "assetpipe.yaml": settings(),
        }
    )
    build(run)
    image = sheet(project / "output/contact-sheet.png")
    assert image.size == page_size(columns=1, rows=1)
    x, y = box(0, columns=1)
    assert ink(image, (x, y + CELL, x + CELL, y + CELL + LABEL_BAND), SHEET_COLOUR) > 20


def test_labels_keep_to_what_the_bundled_font_draws_and_to_the_cell():
    """Accents folded, other scripts, controls and lone surrogates as ``?``; a long label
    cut with an ellipsis to the width (in the middle for an id: its start and its
    variant and size stay); nothing fits: nothing drawn."""
    assert drawable("menüs中/café\n\ud800😀") == "menus?/cafe???"
    font = label_font()
    cut = fitted("x" * 200, font, 64)
    assert cut.endswith("...") and font.getlength(cut) <= 64 and len(cut) > 4
    assert fitted("short", font, 64) == "short"
    middle = fitted("icons/icon-bow-legendary#2@128x128", font, 120, middle=True)
    assert middle.startswith("icons/") and middle.endswith("@128x128") and "..." in middle
    assert font.getlength(middle) <= 120
    assert fitted("wide", font, 2) == ""


SVG_GIF_SPEC = """\
assets:
  - id: badge
    prompt: "A shield icon"
    model: gpt-image-2.6-flare
    format: svg
    size: 1024x1024
  - id: walk
    prompt: "A walking knight"
    model: gpt-image-2.6-flare
    format: gif
    frames: 2
    size: 1024x1024
"""


def test_svg_is_drawn_and_gif_shows_its_first_frame(project, run, api):
    """On the fake API: the SVG's cell is its resvg drawing, the GIF's its first frame
    (and its frames' PNGs have cells of their own)."""
    project.gen({"specs/s.yaml": SVG_GIF_SPEC, "assetpipe.yaml": settings(columns=4)})
    result = run("build", "--provider", "openai", "-q")
    assert result.code == 0, result.err
    delivered = entries(project)
    jobs = [e["job"] for e in delivered]
    assert jobs[:2] == ["s/badge", "s/walk"]
    image = sheet(project / "output/contact-sheet.png")
    drawn = svg.rasterize((project / "output/s/badge.svg").read_bytes())
    first = gif.frames((project / "output/s/walk.gif").read_bytes())[0]
    for index, pixels in enumerate((drawn, first)):
        pixels.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
        want = pixels.getpixel((pixels.width // 2, pixels.height // 2))
        x, y = box(index, columns=4)
        got = image.getpixel((x + CELL // 2, y + CELL // 2))
        assert distance(got, want) <= TOLERANCE, (jobs[index], got, want)


def test_a_hostile_svg_on_disk_is_sanitized_before_it_is_drawn():
    """The delivered file may have been replaced: an external image is never fetched
    (sanitized away), the drawing still comes out."""
    hostile = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        b' width="100" height="50"><rect width="100" height="50" fill="#00ff00"/>'
        b'<image xlink:href="http://127.0.0.1:9/x.png" width="100" height="50"/></svg>'
    )
    small = thumbnail(hostile, CELL)
    assert small.size == (64, 32)
    assert small.getpixel((32, 16)) == (0, 255, 0, 255)


def test_a_gif_thumbnail_is_its_first_frame():
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    small = thumbnail(buffer.getvalue(), CELL)
    assert small.size == (40, 40)  # never enlarged
    assert small.getpixel((20, 20)) == (255, 0, 0, 255)


def test_an_unknown_option_is_an_error_at_its_line_with_a_did_you_mean(project, run):
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": "concurrency: 2\nexports:\n- format: contact-sheet\n  colums: 4\n",
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "assetpipe.yaml:4" in result.err
    assert "unknown key 'colums'" in result.err
    assert "did you mean 'columns'?" in result.err


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("label: name", "label"),
        ('background: "#12"', "hex"),
        ("cell: 8", "cell"),
        ("path: sheet.jpg", ".png"),
        ("path: ../sheet.png", ".."),
    ],
)
def test_a_bad_value_is_an_error_at_its_line(project, run, option: str, said: str):
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": f"exports:\n  - format: contact-sheet\n    {option}\n",
        }
    )
    result = run("validate")
    assert result.code == 2, result.err
    assert "assetpipe.yaml:3" in result.err
    assert said in result.err
