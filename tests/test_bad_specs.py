"""Bad specs, templates, brand kits and settings, through the CLI.

Every case pins the spec-error contract of docs/spec.md: the command exits 2 without a
traceback, and the error names the exact ``file:line:col`` of the offending YAML node
(or ``templates/x.j2:LINE`` for a template file), says what is wrong, and a hint says
what would be right. Spec texts are dedented by ``project.gen`` and start at line 1.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from images import png
from PIL import Image

from pipeline import api
from pipeline.catalog import PRICE_FIELDS
from pipeline.errors import SpecError
from pipeline.settings import PriceOverride

SPEC = "specs/a.yaml"


def jpeg(width: int, height: int) -> bytes:
    """A small JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """An RGBA PNG of random pixels: incompressible, about 4 bytes a pixel."""
    raw = random.Random(width * height).randbytes(width * height * 4)
    buf = io.BytesIO()
    Image.frombytes("RGBA", (width, height), raw).save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    """One bad project: its files, and the error it must produce."""

    pins: str
    files: dict[str, str | bytes]
    location: str
    message: str
    hint: str
    command: str = "validate"
    extra: tuple[str, ...] = field(default=())


def case(id_: str, **kw: Any) -> Any:
    """A parametrize entry with a readable id."""
    return pytest.param(Case(**kw), id=id_)


CASES = [
    # -- YAML itself ----------------------------------------------------------------------
    case(
        "yaml-unclosed-quote",
        pins="an unclosed quote points where the quoted value starts, not at the end of file",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: "unclosed
              - id: b
            """
        },
        location="specs/a.yaml:3:13",
        message="invalid YAML: the file ends inside a quoted scalar that starts here",
        hint="close the quote",
    ),
    case(
        "yaml-tab-indent",
        pins="a tab used for indentation is named as such",
        files={SPEC: "assets:\n\t- id: a\n"},
        location="specs/a.yaml:2:1",
        message="invalid YAML: found character that cannot start any token",
        hint="YAML indents with spaces, not tabs",
    ),
    case(
        "yaml-colon-in-plain-value",
        pins="': ' inside an unquoted value suggests quoting it",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: Title: subtitle
            """
        },
        location="specs/a.yaml:3:18",
        message="invalid YAML: mapping values are not allowed",
        hint='quote a value that contains ": "',
    ),
    case(
        "yaml-bad-indentation",
        pins="a mis-indented key is reported where the parser gave up, with an indentation hint",
        files={
            SPEC: """
            assets:
              - id: a
               prompt: x
            """
        },
        location="specs/a.yaml:3:4",
        message="invalid YAML: did not find expected '-' indicator",
        hint="check the indentation",
    ),
    case(
        "duplicate-key",
        pins="a key given twice is an error at the second one, naming the first line",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                prompt: y
            """
        },
        location="specs/a.yaml:4:5",
        message="duplicate key 'prompt' (first given at line 3)",
        hint="keep one of them",
    ),
    # -- spec file shape ------------------------------------------------------------------
    case(
        "spec-is-a-list",
        pins="a spec file that is a YAML list is refused at its start",
        files={
            SPEC: """
            - id: a
              prompt: x
            """
        },
        location="specs/a.yaml:1:1",
        message="a spec file is a mapping with 'assets:'",
        hint="start the file with 'assets:'",
    ),
    case(
        "missing-assets",
        pins="a spec without 'assets:' says so",
        files={
            SPEC: """
            defaults:
              quality: high
            """
        },
        location="specs/a.yaml:1:1",
        message="a spec file needs an 'assets:' list",
        hint="add assets:",
    ),
    case(
        "unknown-top-level-key",
        pins="an unknown top-level key gets a did-you-mean",
        files={
            SPEC: """
            brand: {name: Acme}
            asets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:2:1",
        message="unknown key 'asets'",
        hint="did you mean 'assets'?",
    ),
    case(
        "unknown-asset-key",
        pins="an unknown asset key is located at the key, with a did-you-mean",
        files={
            SPEC: """
            assets:
              - id: a
                promt: x
            """
        },
        location="specs/a.yaml:3:5",
        message="unknown key 'promt'",
        hint="did you mean 'prompt'?",
    ),
    case(
        "unknown-rendition-key",
        pins="an unknown key inside a flow mapping of renditions points at that key",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                renditions:
                  - {size: 64x64, fitt: cover}
            """
        },
        location="specs/a.yaml:5:23",
        message="unknown key 'fitt'",
        hint="did you mean 'fit'?",
    ),
    case(
        "unknown-edit-key",
        pins="an unknown key inside edit: is suggested from the edit keys",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
              - id: b
                prompt: y
                edit:
                  images: [a]
                  masks: [a]
            """
        },
        location="specs/a.yaml:8:7",
        message="unknown key 'masks'",
        hint="did you mean 'mask'?",
    ),
    case(
        "prompt-and-template",
        pins="both prompt and template: the error is at the template value",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                template: t.j2
            """
        },
        location="specs/a.yaml:4:15",
        message="an asset has 'prompt' or 'template', not both",
        hint="keep 'prompt' for inline text, or 'template'",
    ),
    case(
        "neither-prompt-nor-template",
        pins="an asset without prompt or template is an error at the asset",
        files={
            SPEC: """
            assets:
              - id: a
                size: 64x64
            """
        },
        location="specs/a.yaml:2:5",
        message="the asset has neither 'prompt' nor 'template'",
        hint='add prompt: "..." (inline text) or template: name.j2',
    ),
    case(
        "missing-id",
        pins="an asset without an id says 'id' is required",
        files={
            SPEC: """
            assets:
              - prompt: x
            """
        },
        location="specs/a.yaml:2:5",
        message="'id' is required",
        hint="add 'id: ...'",
    ),
    case(
        "bad-id-characters",
        pins="an id with capitals and punctuation is refused with a valid suggestion",
        files={
            SPEC: """
            assets:
              - id: Hero One!
                prompt: x
            """
        },
        location="specs/a.yaml:2:9",
        message="id 'Hero One!' is not a valid asset id",
        hint="e.g. 'hero-one'",
    ),
    case(
        "id-too-long",
        pins="an id over 128 characters gives its length and the limit",
        files={
            SPEC: f"""
            assets:
              - id: {"a" * 129}
                prompt: x
            """
        },
        location="specs/a.yaml:2:9",
        message="the id has 129 characters; an id has at most 128",
        hint="shorten it",
    ),
    # -- matrix ---------------------------------------------------------------------------
    case(
        "matrix-id-lacks-variable",
        pins="a matrix whose id lacks a variable names the colliding combinations and the fix",
        files={
            SPEC: """
            assets:
              - id: "icon-{{ item }}"
                prompt: "a {{ rarity }} {{ item }}"
                matrix:
                  item: [sword, shield]
                  rarity: [common, rare]
            """
        },
        location="specs/a.yaml:2:9",
        message="duplicate asset id 'icon-sword' in collection 'a': the matrix combinations "
        "rarity=common and rarity=rare both give it",
        hint='put the matrix variables in the id, e.g. id: "icon-{{ item }}-{{ rarity }}"',
    ),
    case(
        "duplicate-ids-across-assets",
        pins="two assets with one id: the second is the error, naming the first's line",
        files={
            SPEC: """
            assets:
              - id: hero
                prompt: x
              - id: hero
                prompt: y
            """
        },
        location="specs/a.yaml:4:9",
        message="duplicate asset id 'hero' in collection 'a' (first from specs/a.yaml:2)",
        hint="give each asset its own id",
    ),
    case(
        "matrix-not-a-mapping",
        pins="a matrix written as a list is refused at the matrix value",
        files={
            SPEC: """
            assets:
              - id: "i-{{ item }}"
                prompt: x
                matrix: [sword, shield]
            """
        },
        location="specs/a.yaml:4:13",
        message="'matrix' is a mapping of names to lists of values",
        hint="e.g. matrix: {item: [sword, shield]",
    ),
    case(
        "matrix-axis-empty",
        pins="an empty value list is refused at the list",
        files={
            SPEC: """
            assets:
              - id: "i-{{ item }}"
                prompt: x
                matrix:
                  item: []
            """
        },
        location="specs/a.yaml:5:13",
        message="matrix 'item' needs a non-empty list of values",
        hint="e.g. item: [a, b, c]",
    ),
    case(
        "matrix-exclude-names-non-axis",
        pins="an exclude entry naming a non-variable points at that key, with a did-you-mean",
        files={
            SPEC: """
            assets:
              - id: "i-{{ item }}"
                prompt: x
                matrix:
                  item: [a, b]
                  exclude:
                    - {itme: a}
            """
        },
        location="specs/a.yaml:7:12",
        message="matrix 'exclude' names 'itme', which is not a matrix variable",
        hint="did you mean 'item'?",
    ),
    case(
        "matrix-include-missing-variable",
        pins="an include entry lacking a variable names it and shows an example value",
        files={
            SPEC: """
            assets:
              - id: "i-{{ item }}-{{ r }}"
                prompt: x
                matrix:
                  item: [a, b]
                  r: [c, d]
                  include:
                    - {item: z}
            """
        },
        location="specs/a.yaml:8:11",
        message="a matrix 'include' entry gives every variable; this one lacks r",
        hint="e.g. r: c",
    ),
    case(
        "matrix-exclude-typo",
        pins="a misspelt 'exclude' holding mappings is not silently taken as a variable",
        files={
            SPEC: """
            assets:
              - id: "i-{{ item }}"
                prompt: x
                matrix:
                  item: [a, b]
                  exlude:
                    - {item: a}
            """
        },
        location="specs/a.yaml:6:7",
        message="unknown matrix key 'exlude'",
        hint="did you mean 'exclude'?",
    ),
    # -- sizes and counts -----------------------------------------------------------------
    case(
        "size-1920x",
        pins="a size without a height is refused at the size value",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                size: 1920x
            """
        },
        location="specs/a.yaml:4:11",
        message="size '1920x' is not a pixel size",
        hint="write WxH",
    ),
    case(
        "aspect-16-9",
        pins="an aspect written with a dash is refused at the aspect value",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                aspect: 16-9
            """
        },
        location="specs/a.yaml:4:13",
        message="aspect '16-9' is not a ratio",
        hint='e.g. "16:9" (quoted in YAML)',
    ),
    case(
        "templated-aspect-over-matrix",
        pins="a templated aspect is validated per combination, at the aspect value",
        files={
            SPEC: """
            assets:
              - id: "a-{{ n }}"
                prompt: x
                aspect: "{{ ratio }}"
                matrix:
                  n: [1]
                  ratio: ["16-9"]
            """
        },
        location="specs/a.yaml:4:13",
        message="aspect '16-9' is not a ratio",
        hint="write W:H",
    ),
    case(
        "size-and-aspect",
        pins="size and aspect together: the error is at the aspect",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                size: 64x64
                aspect: "1:1"
            """
        },
        location="specs/a.yaml:5:13",
        message="an asset has 'size' or 'aspect', not both",
        hint="keep size: WxH for exact pixels, or aspect",
    ),
    case(
        "variants-0",
        pins="variants below 1 gives the allowed range",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                variants: 0
            """
        },
        location="specs/a.yaml:4:15",
        message="'variants': Input should be greater than or equal to 1",
        hint="use a number from 1 to 16",
    ),
    case(
        "variants-17",
        pins="variants above 16 gives the allowed range",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                variants: 17
            """
        },
        location="specs/a.yaml:4:15",
        message="'variants': Input should be less than or equal to 16",
        hint="use a number from 1 to 16",
    ),
    case(
        "variants-not-a-number",
        pins="variants written as a word asks for a whole number",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                variants: two
            """
        },
        location="specs/a.yaml:4:15",
        message="'variants': Input should be a valid integer",
        hint="write a whole number",
    ),
    # -- settings against the model -------------------------------------------------------
    case(
        "quality-not-in-enum",
        pins="a quality the model does not have lists the model's qualities",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                quality: ultra
            """
        },
        location="specs/a.yaml:4:14",
        message="gpt-image-2.5-flare does not take quality 'ultra'",
        hint="use one of low, medium, high, xhigh, max, auto",
    ),
    case(
        "quality-typo",
        pins="a misspelt quality gets a did-you-mean",
        files={
            SPEC: """
            defaults:
              quality: hihg
            assets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:2:12",
        message="gpt-image-2.5-flare does not take quality 'hihg'",
        hint="did you mean 'high'?",
    ),
    case(
        "quality-xhigh-on-gpt-image-2",
        pins="a quality the model's rule does not take names the model and its qualities",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                model: gpt-image-2
                quality: xhigh
            """
        },
        location="specs/a.yaml:5:14",
        message="gpt-image-2 does not take quality 'xhigh'",
        hint="use one of low, medium, high, auto",
        command="plan",
    ),
    case(
        "gpt-image-1-shut-down",
        pins="gpt-image-1 is shut down, with its date and replacements",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                model: gpt-image-1
            """
        },
        location="specs/a.yaml:4:12",
        message="model 'gpt-image-1' was shut down on 2026-10-23",
        hint="use gpt-image-2.5-sunburst or gpt-image-2.5-flare instead",
    ),
    case(
        "dall-e-3-in-defaults",
        pins="a shut-down model set in defaults: is reported at the defaults value",
        files={
            SPEC: """
            defaults:
              model: dall-e-3
            assets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:2:10",
        message="model 'dall-e-3' was shut down on 2026-05-12",
        hint="gpt-image-2.5-flare",
    ),
    case(
        "unknown-model",
        pins="an unknown model name gets the closest known one",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                model: gpt-image-2.5-flar
            """
        },
        location="specs/a.yaml:4:12",
        message="unknown model 'gpt-image-2.5-flar'",
        hint="did you mean 'gpt-image-2.5-flare'?",
        command="plan",
    ),
    case(
        "transparent-jpeg",
        pins="a transparent background with jpeg points at the format",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                background: transparent
                format: jpeg
            """
        },
        location="specs/a.yaml:5:13",
        message="a transparent background needs format png or webp, not jpeg",
        hint="set format: png (or webp)",
    ),
    case(
        "compression-with-png",
        pins="compression with (default) png is refused at the compression value",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                compression: 80
            """
        },
        location="specs/a.yaml:4:18",
        message="'compression' applies to webp and jpeg only",
        hint="set format: webp or jpeg",
    ),
    case(
        "input-fidelity-on-generate",
        pins="input_fidelity on an asset that is not an edit",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                model: gpt-image-1.5
                input_fidelity: high
            """
        },
        location="specs/a.yaml:5:21",
        message="'input_fidelity' applies to edits only",
        hint="add 'edit:' with input images",
    ),
    case(
        "input-fidelity-on-flare-edit",
        pins="input_fidelity on a model that takes none says to remove it",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
              - id: b
                prompt: y
                input_fidelity: high
                edit:
                  images: [a]
            """
        },
        location="specs/a.yaml:6:21",
        message="gpt-image-2.5-flare does not take input_fidelity 'high'",
        hint="remove it; this model has no such option",
    ),
    # -- edits ----------------------------------------------------------------------------
    case(
        "edit-unknown-asset",
        pins="an edit input naming no asset suggests the closest id",
        files={
            SPEC: """
            assets:
              - id: hero
                prompt: x
              - id: b
                prompt: y
                edit:
                  images: [heroo]
            """
        },
        location="specs/a.yaml:7:16",
        message="edit input 'heroo' names no asset",
        hint="did you mean 'hero'?",
    ),
    case(
        "edit-variant-out-of-range",
        pins="hero#3 when hero has 2 variants gives the valid range",
        files={
            SPEC: """
            assets:
              - id: hero
                prompt: x
                variants: 2
              - id: b
                prompt: y
                edit:
                  images: ["hero#3"]
            """
        },
        location="specs/a.yaml:8:16",
        message="'hero#3' asks for variant 3, but 'hero' has 2 variant(s)",
        hint="use #1 to #2",
    ),
    case(
        "edit-bad-input-shape",
        pins="an edit input that is none of id/{file}/{brand} lists the three shapes",
        files={
            SPEC: """
            assets:
              - id: b
                prompt: y
                edit:
                  images: [{fil: x.png}]
            """
        },
        location="specs/a.yaml:5:16",
        message="'edit.images[0]' is not a valid edit input",
        hint="{file: path} or {brand: logo}",
    ),
    case(
        "edit-cycle-two",
        pins="a->b->a is one error that lists the cycle, at the reference closing it",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [b]
              - id: b
                prompt: y
                edit:
                  images: [a]
            """
        },
        location="specs/a.yaml:9:16",
        message="edit cycle: a/a -> a/b -> a/a",
        hint="an asset cannot be built from its own output",
        command="plan",
    ),
    case(
        "edit-cycle-three-sized",
        pins="a cycle through sized edits is found by the graph check and listed in full",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                size: 64x64
                edit:
                  images: [b]
              - id: b
                prompt: y
                size: 64x64
                edit:
                  images: [c]
              - id: c
                prompt: z
                size: 64x64
                edit:
                  images: [{file: ok.png}, a]
            """,
            "specs/ok.png": png(8, 8),
        },
        location="specs/a.yaml:6:16",
        message="edit cycle: a/a -> a/b -> a/c -> a/a",
        hint="remove one of these edit inputs",
    ),
    case(
        "self-edit",
        pins="an asset editing itself",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [a]
            """
        },
        location="specs/a.yaml:5:16",
        message="edit cycle: a/a edits itself",
        hint="an asset cannot be built from its own output",
    ),
    case(
        "file-input-missing",
        pins="a missing {file: ...} says where it looked",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: nothere.png}]
            """
        },
        location="specs/a.yaml:5:16",
        message="input image 'nothere.png' not found (looked at specs/nothere.png)",
        hint="paths are relative to the spec file",
    ),
    case(
        "file-input-outside-project",
        pins="{file: ../../outside.png} may not leave the project",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: ../../outside.png}]
            """
        },
        location="specs/a.yaml:5:16",
        message="'../../outside.png' is outside the project folder",
        hint="input images must live inside the project",
    ),
    case(
        "file-input-not-an-image",
        pins="a text file named .png is not a usable image",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: notanimage.png}]
            """,
            "specs/notanimage.png": "just some text\n",
        },
        location="specs/a.yaml:5:16",
        message="'notanimage.png' is not a usable image",
        hint="PNG, WebP or JPEG",
    ),
    case(
        "file-input-eps",
        pins="an EPS input is refused before Pillow could hand it to Ghostscript",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: art.png}]
            """,
            "specs/art.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        },
        location="specs/a.yaml:5:16",
        message="'art.png' is not a usable image: it is not an image Pillow can read",
        hint="PNG, WebP or JPEG",
    ),
    case(
        "brand-logo-without-logo",
        pins="{brand: logo} with a brand kit that has no logo",
        files={
            SPEC: """
            brand: {name: Acme}
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{brand: logo}]
            """
        },
        location="specs/a.yaml:6:16",
        message="{brand: logo} needs a brand kit with a 'logo'",
        hint="add logo: path/to/logo.png to the brand kit",
    ),
    case(
        "mask-size-differs",
        pins="a mask of another size than the first image is refused at the mask",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: img.png}]
                  mask: {file: mask.png}
            """,
            "specs/img.png": png(32, 32),
            "specs/mask.png": png(16, 16),
        },
        location="specs/a.yaml:6:13",
        message="the mask is 16x16 but the first image is 32x32",
        hint="a mask must have the same size as the first input image",
        command="plan",
    ),
    case(
        "mask-not-png",
        pins="a JPEG mask is refused before the API answers 400 for it",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: img.png}]
                  mask: {file: mask.jpg}
            """,
            "specs/img.png": png(32, 32),
            "specs/mask.jpg": jpeg(32, 32),
        },
        location="specs/a.yaml:6:13",
        message="the mask is jpeg; a mask is a PNG",
        hint="save it as PNG, with alpha 0 where the image may change",
        command="plan",
    ),
    case(
        "mask-too-large",
        pins="a mask over the model's 4 MB limit is refused with the limit named",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{file: img.png}]
                  mask: {file: mask.png}
            """,
            "specs/img.png": png(1200, 1200),
            "specs/mask.png": noise_png(1200, 1200),
        },
        location="specs/a.yaml:6:13",
        message="takes masks under 4,000,000",
        hint="a mask needs only its alpha channel",
        command="plan",
    ),
    # -- brand kits -----------------------------------------------------------------------
    case(
        "brand-color-invalid-in-file",
        pins="a 5-digit color in a brand file points at that color value in the brand file",
        files={
            SPEC: """
            brand: ../brands/acme.yaml
            assets:
              - id: a
                prompt: x
            """,
            "brands/acme.yaml": """
            name: Acme
            colors:
              ok: "#fff"
              primary: "#12345"
            """,
        },
        location="brands/acme.yaml:4:12",
        message="'#12345' is not a hex color",
        hint="write it as #RRGGBB or #RGB",
    ),
    case(
        "brand-color-invalid-inline",
        pins="a bad color in an inline brand points at the value in the spec",
        files={
            SPEC: """
            brand:
              name: Acme
              colors:
                primary: "#12345"
            assets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:4:14",
        message="'#12345' is not a hex color",
        hint='e.g. "#E4572E"',
    ),
    case(
        "brand-file-missing",
        pins="a missing brand file says where it looked, relative to the spec",
        files={
            SPEC: """
            brand: ../brands/nope.yaml
            assets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:1:8",
        message="brand file '../brands/nope.yaml' not found (looked at brands/nope.yaml)",
        hint="paths are relative to the spec file",
    ),
    # -- templates ------------------------------------------------------------------------
    case(
        "undefined-variable-inline",
        pins="an undefined variable in an inline prompt is at the prompt value",
        files={
            SPEC: """
            assets:
              - id: a
                size: 64x64
                prompt: "a {{ colour }} sword"
            """
        },
        location="specs/a.yaml:4:13",
        message="template error: 'colour' is undefined",
        hint="define it under 'vars:'",
    ),
    case(
        "undefined-variable-did-you-mean",
        pins="an undefined variable close to a defined one suggests it",
        files={
            SPEC: """
            vars:
              color: red
            assets:
              - id: a
                prompt: "a {{ colour }} sword"
            """
        },
        location="specs/a.yaml:5:13",
        message="template error: 'colour' is undefined",
        hint="did you mean 'color'?",
    ),
    case(
        "undefined-variable-inline-block",
        pins="in a '|' block prompt the error is at the template's own line in the spec",
        files={
            SPEC: """
            vars:
              color: red
            assets:
              - id: a
                prompt: |
                  line one
                  a {{ nope }} sword
            """
        },
        location="specs/a.yaml:7",
        message="template error: 'nope' is undefined",
        hint="define it under 'vars:'",
    ),
    case(
        "undefined-variable-template-file",
        pins="an undefined variable in templates/x.j2 is at that file's line",
        files={
            SPEC: """
            assets:
              - id: a
                template: t.j2
            """,
            "templates/t.j2": """
            line one
            line two {{ brand.name }}
            """,
        },
        location="templates/t.j2:2",
        message="template error: 'brand' is undefined",
        hint="define it under 'vars:'",
    ),
    case(
        "jinja-syntax-error-template-file",
        pins="a Jinja syntax error in a template file is at that file's line",
        files={
            SPEC: """
            assets:
              - id: a
                template: t.j2
            """,
            "templates/t.j2": """
            line one
            {% for x in %}{{ x }}{% endfor %}
            line three
            """,
        },
        location="templates/t.j2:2",
        message="template syntax error: Expected an expression, got 'end of statement block'",
        hint="Jinja syntax: {{ variable }}",
    ),
    case(
        "unknown-filter",
        pins="a misspelt filter suggests the closest filter",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: "{{ '#ff0000' | colr_name }}"
            """
        },
        location="specs/a.yaml:3:13",
        message="template syntax error: No filter named 'colr_name'",
        hint="did you mean 'color_name'?",
    ),
    case(
        "template-not-found",
        pins="a missing template file suggests the closest one",
        files={
            SPEC: """
            assets:
              - id: a
                template: icno.j2
            """,
            "templates/icon.j2": "an icon",
        },
        location="specs/a.yaml:3:15",
        message="template 'icno.j2' not found",
        hint="did you mean 'icon.j2'?",
    ),
    case(
        "template-include-escape",
        pins="a template cannot include a file outside templates/",
        files={
            SPEC: """
            assets:
              - id: a
                template: t.j2
            """,
            "templates/t.j2": "{% include '../specs/a.yaml' %}",
        },
        location="templates/t.j2:1",
        message="template error: included template '../specs/a.yaml' not found",
        hint="only other files in the templates folder",
    ),
    case(
        "sandbox-escape",
        pins="{{ ''.__class__.__mro__ }} is refused by the sandbox",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: "{{ ''.__class__.__mro__ }}"
            """
        },
        location="specs/a.yaml:3:13",
        message="access to attribute '__class__' of 'str' object is unsafe",
        hint="templates can only use the values they are given",
    ),
    case(
        "prompt-too-long",
        pins="a rendered prompt over 32,000 characters names the model limit",
        files={
            SPEC: f"""
            vars:
              big: "{"x" * 16001}"
            assets:
              - id: a
                prompt: "{{{{ big }}}}{{{{ big }}}}"
            """
        },
        location="specs/a.yaml:5:13",
        message="the rendered prompt has 32,002 characters; gpt-image-2.5-flare takes at most "
        "32,000",
        hint="shorten the prompt",
        command="plan",
    ),
    # -- assetpipe.yaml -------------------------------------------------------------------
    case(
        "settings-unknown-key",
        pins="an unknown assetpipe.yaml key gets a did-you-mean",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
            """,
            "assetpipe.yaml": """
            model: gpt-image-2.5-flare
            concurency: 4
            """,
        },
        location="assetpipe.yaml:2:1",
        message="unknown key 'concurency'",
        hint="did you mean 'concurrency'?",
    ),
    case(
        "settings-prices-unknown-model",
        pins="prices for an unknown model point at that model's key",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
            """,
            "assetpipe.yaml": """
            prices:
              gpt-image-2:
                text_input: 4.0
              gpt-image-9:
                text_input: 1.0
            """,
        },
        location="assetpipe.yaml:4:3",
        message="prices: unknown model 'gpt-image-9'",
        hint="did you mean 'gpt-image-2'?",
    ),
    case(
        "settings-prices-unknown-field",
        pins="a misspelt price field points at the field, with a did-you-mean",
        files={
            SPEC: """
            assets:
              - id: a
                prompt: x
            """,
            "assetpipe.yaml": """
            prices:
              gpt-image-2:
                text_inptu: 1.0
            """,
        },
        location="assetpipe.yaml:3:5",
        message="unknown key 'text_inptu'",
        hint="did you mean 'text_input'?",
    ),
]


def error_line(err: str, location: str) -> tuple[str, str]:
    """The ``error: <location>: ...`` line and the line after it (the hint)."""
    lines = err.splitlines()
    prefix = f"error: {location}: "
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            return line, lines[i + 1] if i + 1 < len(lines) else ""
    raise AssertionError(f"no error at {location} in:\n{err}")


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_located_explained_and_hinted(project, run, bad: Case):
    """Each bad input (see its ``pins``) exits 2 without a traceback; the error is at the
    exact file:line:col (or template line) and says what is wrong and what would be right."""
    project.gen(bad.files)
    result = run(bad.command)
    assert result.code == 2, (bad.pins, result.err)
    assert "Traceback" not in result.err
    line, after = error_line(result.err, bad.location)
    assert bad.message in line, (bad.pins, result.err)
    assert after.startswith("  hint: "), (bad.pins, result.err)
    assert bad.hint in after, (bad.pins, result.err)


def test_several_errors_are_reported_together(project, run):
    """Asset errors in two spec files come out in one run, each at its own place."""
    project.gen(
        {
            "specs/a.yaml": """
            assets:
              - id: a
                prompt: x
                quality: ultra
              - id: ok
                prompt: fine
            """,
            "specs/b.yaml": """
            assets:
              - id: B
                prompt: x
            """,
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "Traceback" not in result.err
    error_line(result.err, "specs/a.yaml:4:14")
    error_line(result.err, "specs/b.yaml:2:9")
    assert "2 errors" in result.err


def test_several_errors_in_one_asset_do_not_hide_the_next_asset(project, run):
    """Two mistakes in one asset are both reported, and so is a third in the next asset."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: a
                prompt: x
                background: clear
                variants: 0
              - id: B
                prompt: y
            """
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "Traceback" not in result.err
    error_line(result.err, "specs/a.yaml:4:17")
    error_line(result.err, "specs/a.yaml:5:15")
    error_line(result.err, "specs/a.yaml:6:9")
    assert "3 errors" in result.err


def test_several_errors_in_a_brand_kit_are_each_located(project, run):
    """Two bad colors of one brand kit: two located errors, no 'cannot load' wrapper and
    no absolute path."""
    project.gen(
        {
            SPEC: """
            brand:
              name: Acme
              colors: {a: "#12", b: "#zzz"}
            assets:
              - id: a
                prompt: x
            """
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "cannot load" not in result.err
    assert str(project.root) not in result.err
    assert "'#12' is not a hex color" in error_line(result.err, "specs/a.yaml:3:15")[0]
    assert "'#zzz' is not a hex color" in error_line(result.err, "specs/a.yaml:3:25")[0]


def test_load_errors_of_every_file_come_together(project, run):
    """Structural errors in two spec files are both reported by one validate."""
    project.gen(
        {
            "specs/a.yaml": "assets: 3\n",
            "specs/b.yaml": "asets: []\n",
        }
    )
    result = run("validate")
    assert result.code == 2
    line, hint = error_line(result.err, "specs/a.yaml:1:9")
    assert "'assets' is a list of assets" in line
    assert "hint:" in hint
    error_line(result.err, "specs/b.yaml:1:1")


def test_one_cycle_is_reported_once(project, run):
    """An edit cycle is one error, and an asset editing a member of it adds no other."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: a
                prompt: x
                edit:
                  images: [b]
              - id: b
                prompt: y
                edit:
                  images: [a]
              - id: c
                prompt: z
                edit:
                  images: [a]
            """
        }
    )
    result = run("validate")
    assert result.code == 2
    assert result.err.count("error:") == 1, result.err
    assert "edit cycle: a/a -> a/b -> a/a" in result.err


def test_project_model_shut_down_names_its_origin(project, run):
    """A shut-down model from assetpipe.yaml is one error that says where the name came from."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: a
                prompt: x
              - id: b
                prompt: y
            """,
            "assetpipe.yaml": "model: gpt-image-1\n",
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.count("error:") == 1, result.err
    assert "model 'gpt-image-1' was shut down on 2026-10-23 (the project model" in result.err
    assert "hint: use gpt-image-2.5-sunburst or gpt-image-2.5-flare instead" in result.err


DEPRECATED_SPEC = {
    SPEC: """
    defaults:
      model: gpt-image-1.5
    assets:
      - id: a
        prompt: x
      - id: b
        prompt: y
    """
}


def test_gpt_image_1_5_warns_before_its_shutdown(project):
    """On 2026-11-24 gpt-image-1.5 plans with one warning (at the defaults value) naming
    the shutdown date and the replacements."""
    project.gen(DEPRECATED_SPEC)
    ws = api.open_workspace(api.Request(project=project.root, today=dt.date(2026, 11, 24)))
    assert [j.model for j in ws.plan.jobs] == ["gpt-image-1.5", "gpt-image-1.5"]
    warnings = [str(w) for w in ws.plan.warnings]
    assert warnings == [
        "specs/a.yaml:2:10: warning: model 'gpt-image-1.5' is deprecated and shuts down on "
        "2026-12-01; move to gpt-image-2.6-sunburst or gpt-image-2.6-flare"
    ]


def test_gpt_image_1_5_is_an_error_after_its_shutdown(project):
    """On 2026-12-02 gpt-image-1.5 is a SpecError: shut down on 2026-12-01, use 2.6."""
    project.gen(DEPRECATED_SPEC)
    with pytest.raises(SpecError) as info:
        api.open_workspace(api.Request(project=project.root, today=dt.date(2026, 12, 2)))
    assert info.value.message == "model 'gpt-image-1.5' was shut down on 2026-12-01"
    assert str(info.value.location) == "specs/a.yaml:2:10"
    assert info.value.hint == "use gpt-image-2.6-sunburst or gpt-image-2.6-flare instead"


def test_gpt_image_1_5_shuts_down_on_its_shutdown_day(project):
    """The shutdown date itself is already shut down (lifecycle is judged on `today`)."""
    project.gen(DEPRECATED_SPEC)
    with pytest.raises(SpecError, match="was shut down on 2026-12-01"):
        api.open_workspace(api.Request(project=project.root, today=dt.date(2026, 12, 1)))


def test_deprecated_model_warning_reaches_stderr_with_exit_0(project, run, monkeypatch):
    """validate with a deprecated (not yet shut down) model exits 0 and warns on stderr,
    judged on the date ASSETPIPE_TODAY pins, whatever the machine's calendar says."""
    monkeypatch.setenv("ASSETPIPE_TODAY", "2026-11-30")
    project.gen(DEPRECATED_SPEC)
    result = run("validate")
    assert result.code == 0, result.err
    assert "warning: model 'gpt-image-1.5' is deprecated" in result.err
    assert result.err.count("is deprecated") == 1


def test_the_same_spec_fails_through_the_cli_from_the_shutdown_day(project, run, monkeypatch):
    """ASSETPIPE_TODAY on the shutdown day turns the warning into exit 2 with the hint."""
    monkeypatch.setenv("ASSETPIPE_TODAY", "2026-12-01")
    project.gen(DEPRECATED_SPEC)
    result = run("validate")
    assert result.code == 2
    assert result.err.splitlines()[:2] == [
        "error: specs/a.yaml:2:10: model 'gpt-image-1.5' was shut down on 2026-12-01",
        "  hint: use gpt-image-2.6-sunburst or gpt-image-2.6-flare instead",
    ]


def test_a_malformed_assetpipe_today_is_a_usage_error(project, run, monkeypatch):
    """ASSETPIPE_TODAY that is not YYYY-MM-DD exits 2 and shows the expected form."""
    monkeypatch.setenv("ASSETPIPE_TODAY", "next tuesday")
    project.gen(DEPRECATED_SPEC)
    result = run("validate")
    assert result.code == 2
    assert (
        "ASSETPIPE_TODAY='next tuesday' is not a date; write it as YYYY-MM-DD (e.g. 2026-12-01)"
        in result.err
    )
    assert "Traceback" not in result.err


def test_price_override_fields_match_the_catalog():
    """The fields assetpipe.yaml may override under prices: are the catalog's price fields."""
    assert set(PriceOverride.model_fields) == set(PRICE_FIELDS)
