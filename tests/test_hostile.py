"""Hostile specs: path traversal, links out of the project, sandbox escapes, resource
bombs and malformed files, each through the CLI.

A spec may come from anyone who can open a pull request, and CI builds it with a real API
key. Every case pins the same contract: ``build --provider preview`` and ``validate``
both exit 2 with the exact message at the exact ``file:line:col``, show no traceback,
leak no file from outside the project, and write nothing — planning fails before the
build takes its lock, so neither ``output/`` nor ``.assetpipe/`` exists afterwards.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from images import png, png_header

from pipeline.errors import Location, SpecError
from pipeline.templating import TemplateEngine

SPEC = "specs/a.yaml"
SECRET = "TOPSECRET-do-not-send"
COMMANDS = (("build", "--provider", "preview"), ("validate",))
PYTHON_M_PIPELINE = (sys.executable, "-m", "pipeline")


def error_line(err: str, location: str) -> tuple[str, str]:
    """The ``error: <location>: ...`` line and the line after it (the hint)."""
    lines = err.splitlines()
    prefix = f"error: {location}: "
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            return line, lines[i + 1] if i + 1 < len(lines) else ""
    raise AssertionError(f"no error at {location} in:\n{err}")


OUTSIDE_FILES = {"secret.txt", "x.png", "a.yaml", "brand.yaml"}


def nothing_written(root: Path) -> None:
    """Planning failed before the build wrote anything: no output tree, no cache, no lock
    in the project, and nothing beside it (the folder ``outside`` holds only what
    :func:`outside` put there)."""
    assert not (root / "output").exists()
    assert not (root / ".assetpipe").exists()
    assert {p.name for p in root.parent.iterdir()} <= {root.name, "outside"}
    if (root.parent / "outside").exists():
        assert {p.name for p in (root.parent / "outside").iterdir()} <= OUTSIDE_FILES


def outside(root: Path) -> Path:
    """A folder beside the project (not inside it) holding a secret and an image."""
    folder = root.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "secret.txt").write_text(SECRET + "\n", "utf-8")
    (folder / "x.png").write_bytes(png(16, 16))
    (folder / "a.yaml").write_text(f"assets:\n  - id: leak\n    prompt: {SECRET}\n", "utf-8")
    (folder / "brand.yaml").write_text(f"name: {SECRET}\n", "utf-8")
    return folder


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def relink(folder: Path, target: Path) -> None:
    """Replace the (empty) folder the fixture made with a link to ``target``."""
    folder.rmdir()
    folder.symlink_to(target)


TEMPLATE_SECRET = "assets:\n  - id: a\n    template: secret.txt\n"
"""A spec whose template is the secret file, should the templates folder reach it."""


@dataclass(frozen=True)
class Hostile:
    """One hostile project: its files, extra set-up (links, sparse files), the error."""

    pins: str
    files: dict[str, str | bytes]
    location: str
    message: str
    hint: str | None
    setup: Callable[[Path], None] | None = None
    args: tuple[str, ...] = field(default=())


def case(id_: str, **kw: Any) -> Any:
    """A parametrize entry with a readable id."""
    return pytest.param(Hostile(**kw), id=id_)


ONE_ASSET = """
assets:
  - id: a
    prompt: {prompt}
"""


def prompt_spec(prompt: str) -> dict[str, str | bytes]:
    """A spec whose only asset has this (quoted) inline prompt, on line 3, column 13."""
    return {SPEC: ONE_ASSET.format(prompt=prompt)}


def edit_spec(images: str, mask: str | None = None) -> str:
    """A spec whose asset edits ``images`` (line 5, column 15) with ``mask`` (line 6,
    column 13)."""
    lines = ["assets:", "  - id: a", "    prompt: x", "    edit:", f"      images: {images}"]
    if mask is not None:
        lines.append(f"      mask: {mask}")
    return "\n".join(lines) + "\n"


def laughs() -> str:
    """The billion laughs: nine levels of nine aliases each, 9**9 strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghi"
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\nassets:\n  - id: x\n    prompt: *i\n"


def fifo(root: Path) -> None:
    os.mkfifo(root / "specs" / "pipe.png")


def sparse(root: Path) -> None:
    with (root / "specs" / "huge.png").open("wb") as handle:
        handle.truncate(50 * 1000 * 1000 + 1)


CASES = [
    # -- ids that would walk out of output/ -------------------------------------------------
    case(
        "id-dotdot",
        pins="an id of ../../evil is refused at the id, before it can become a path",
        files={SPEC: 'assets:\n  - id: "../../evil"\n    prompt: x\n'},
        location="specs/a.yaml:2:9",
        message="id '../../evil' is not a valid asset id",
        hint="use lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, "
        "e.g. 'evil'",
    ),
    case(
        "id-slash",
        pins="an id with a slash (a sub-folder of the collection) is refused",
        files={SPEC: 'assets:\n  - id: "a/b"\n    prompt: x\n'},
        location="specs/a.yaml:2:9",
        message="id 'a/b' is not a valid asset id",
        hint="e.g. 'a-b'",
    ),
    case(
        "id-rendered-literal",
        pins="an id that renders to ../x from a template literal is checked after rendering",
        files={SPEC: "assets:\n  - id: \"{{ '../x' }}\"\n    prompt: x\n"},
        location="specs/a.yaml:2:9",
        message="id '../x' is not a valid asset id",
        hint="e.g. 'x'",
    ),
    case(
        "id-rendered-from-matrix",
        pins="an id that renders to ../x from a matrix value is checked per combination",
        files={
            SPEC: """
            assets:
              - id: "{{ v }}"
                prompt: x
                matrix:
                  v: [ok, "../x"]
            """
        },
        location="specs/a.yaml:2:9",
        message="id '../x' is not a valid asset id",
        hint="e.g. 'x'",
    ),
    case(
        "spec-file-named-dotdot",
        pins="specs/..yaml would be the collection '.', writing to the output root: refused",
        files={"specs/..yaml": "assets:\n  - id: a\n    prompt: x\n"},
        location="specs/..yaml",
        message="the file name '..yaml' gives no collection name",
        hint="name spec files after their collection, e.g. specs/icons.yaml",
    ),
    # -- file references out of the project -------------------------------------------------
    case(
        "file-absolute",
        pins="{file: /etc/passwd} is outside the project",
        files={SPEC: edit_spec("[{file: /etc/passwd}]")},
        location="specs/a.yaml:5:16",
        message="'/etc/passwd' is outside the project folder",
        hint="input images must live inside the project",
    ),
    case(
        "file-dotdot",
        pins="{file: ../../../x.png} is outside the project",
        files={SPEC: edit_spec("[{file: ../../../x.png}]")},
        location="specs/a.yaml:5:16",
        message="'../../../x.png' is outside the project folder",
        hint="input images must live inside the project",
    ),
    case(
        "file-symlink-out",
        pins="{file: link.png} where link.png links to an image outside the project",
        files={SPEC: edit_spec("[{file: link.png}]")},
        setup=lambda root: link(root / "specs" / "link.png", outside(root) / "x.png"),
        location="specs/a.yaml:5:16",
        message="'link.png' is outside the project folder",
        hint="input images must live inside the project",
    ),
    case(
        "mask-symlink-out",
        pins="a mask that links outside the project is refused like an input image",
        files={SPEC: edit_spec("[{file: in.png}]", "{file: m.png}"), "specs/in.png": png(16, 16)},
        setup=lambda root: link(root / "specs" / "m.png", outside(root) / "x.png"),
        location="specs/a.yaml:6:13",
        message="'m.png' is outside the project folder",
        hint="input images must live inside the project",
    ),
    case(
        "spec-folder-symlink-out",
        pins="a folder under specs/ that links outside: an error, not silently skipped or read",
        files={"specs/b.yaml": "assets:\n  - id: b\n    prompt: x\n"},
        setup=lambda root: link(root / "specs" / "ext", outside(root)),
        location="specs/ext",
        message="a symbolic link to a folder outside the specs folder; its files are not read",
        hint="copy them in rather than link them",
    ),
    case(
        "spec-file-symlink-out",
        pins="a spec file that links outside is not read (it used to load, then crash)",
        files={},
        setup=lambda root: link(root / "specs" / "a.yaml", outside(root) / "a.yaml"),
        location="specs/a.yaml",
        message="a symbolic link to a file outside the specs folder; it is not read",
        hint="copy them in rather than link them",
    ),
    case(
        "brand-file-outside",
        pins="brand: ../../outside.yaml is outside the project",
        files={SPEC: "brand: ../../outside.yaml\nassets:\n  - id: a\n    prompt: x\n"},
        location="specs/a.yaml:1:8",
        message="brand file '../../outside.yaml' is outside the project folder",
        hint="keep brand kits inside the project, e.g. brands/acme.yaml",
    ),
    case(
        "brand-file-symlink-out",
        pins="a brand kit that links outside the project is refused before it is read",
        files={SPEC: "brand: ../brands/b.yaml\nassets:\n  - id: a\n    prompt: x\n"},
        setup=lambda root: link(root / "brands" / "b.yaml", outside(root) / "brand.yaml"),
        location="specs/a.yaml:1:8",
        message="brand file '../brands/b.yaml' is outside the project folder",
        hint="keep brand kits inside the project",
    ),
    case(
        "brand-logo-outside-inline",
        pins="an inline brand's logo outside the project is refused at load, even unused",
        files={
            SPEC: """
            brand: {name: Acme, logo: ../../outside.png}
            assets:
              - id: a
                prompt: x
            """
        },
        location="specs/a.yaml:1:27",
        message="brand logo '../../outside.png' is outside the project folder",
        hint="keep the logo inside the project, e.g. brands/acme-logo.png",
    ),
    case(
        "brand-logo-outside-in-brand-file",
        pins="a brand file's logo is relative to the brand file and is located there",
        files={
            SPEC: "brand: ../brands/acme.yaml\nassets:\n  - id: a\n    prompt: x\n",
            "brands/acme.yaml": "name: Acme\nlogo: ../../outside.png\n",
        },
        location="brands/acme.yaml:2:7",
        message="brand logo '../../outside.png' is outside the project folder",
        hint="keep the logo inside the project",
    ),
    case(
        "brand-logo-used-outside",
        pins="{brand: logo} with a logo outside the project: the load-time check reports it",
        files={
            SPEC: """
            brand: {name: Acme, logo: ../../outside.png}
            assets:
              - id: a
                prompt: x
                edit:
                  images: [{brand: logo}]
            """
        },
        location="specs/a.yaml:1:27",
        message="brand logo '../../outside.png' is outside the project folder",
        hint="keep the logo inside the project",
    ),
    case(
        "settings-templates-outside",
        pins="templates: ../outside in assetpipe.yaml would make any file there a template "
        "(a private key as the prompt): refused at the setting",
        files={"assetpipe.yaml": "templates: ../outside\n", SPEC: TEMPLATE_SECRET},
        setup=outside,
        location="assetpipe.yaml:1:12",
        message="'templates: ../outside' leads outside the project folder",
        hint="folders named in assetpipe.yaml stay inside the project",
    ),
    case(
        "templates-folder-symlink-out",
        pins="a templates folder that is a link out of the project is refused the same way",
        files={SPEC: TEMPLATE_SECRET},
        setup=lambda root: relink(root / "templates", outside(root)),
        location="templates",
        message="the templates folder is a symbolic link that leads outside the project folder",
        hint="replace the link with the folder itself",
    ),
    case(
        "specs-folder-symlink-out",
        pins="a specs folder that is a link out of the project is refused before any spec is read",
        files={},
        setup=lambda root: relink(root / "specs", outside(root)),
        location="specs",
        message="the specs folder is a symbolic link that leads outside the project folder",
        hint="replace the link with the folder itself",
    ),
    case(
        "settings-output-outside",
        pins="output: ../outside/out in assetpipe.yaml would write beside the project: "
        "refused, and nothing is created there",
        files={"assetpipe.yaml": "output: ../outside/out\n", SPEC: ONE_ASSET.format(prompt="x")},
        setup=outside,
        location="assetpipe.yaml:1:9",
        message="'output: ../outside/out' leads outside the project folder",
        hint="folders named in assetpipe.yaml stay inside the project; to use one elsewhere, "
        "pass --output",
    ),
    case(
        "settings-cache-dir-absolute",
        pins="cache_dir: /tmp/... in assetpipe.yaml is refused (--cache-dir may point there)",
        files={
            "assetpipe.yaml": "cache_dir: /tmp/assetpipe-hostile\n",
            SPEC: ONE_ASSET.format(prompt="x"),
        },
        location="assetpipe.yaml:1:12",
        message="'cache_dir: /tmp/assetpipe-hostile' leads outside the project folder",
        hint="to use one elsewhere, pass --cache-dir",
    ),
    # -- templates reading files ------------------------------------------------------------
    case(
        "template-symlink-out",
        pins="templates/t.j2 linking to a file outside: refused (it used to become the prompt)",
        files={SPEC: "assets:\n  - id: a\n    template: t.j2\n"},
        setup=lambda root: link(root / "templates" / "t.j2", outside(root) / "secret.txt"),
        location="specs/a.yaml:3:15",
        message="template 't.j2' is a symbolic link to a file outside the templates folder",
        hint="keep templates inside the templates folder; copy the file in rather than link it",
    ),
    case(
        "template-include-symlink-out",
        pins="an {% include %} of a template that links outside is refused at the include",
        files={
            SPEC: "assets:\n  - id: a\n    template: t.j2\n",
            "templates/t.j2": "line one\nx {% include 's.j2' %}\n",
        },
        setup=lambda root: link(root / "templates" / "s.j2", outside(root) / "secret.txt"),
        location="templates/t.j2:2",
        message="template error: template 's.j2' is a symbolic link to a file outside the "
        "templates folder",
        hint="keep templates inside the templates folder",
    ),
    case(
        "template-not-utf8",
        pins="a template file that is not UTF-8 is a located error, not a crash",
        files={
            SPEC: "assets:\n  - id: a\n    template: t.j2\n",
            "templates/t.j2": b"caf\xe9 {{ 1 }}\n",
        },
        location="specs/a.yaml:3:15",
        message="template 't.j2' is not UTF-8 text (byte 3)",
        hint="save the file with the UTF-8 encoding",
    ),
    case(
        "template-too-large",
        pins="a template file over 1 MiB is refused by its size before it is read",
        files={
            SPEC: "assets:\n  - id: a\n    template: t.j2\n",
            "templates/t.j2": "x" * (1024 * 1024 + 1),
        },
        location="specs/a.yaml:3:15",
        message="template 't.j2' is 1,048,577 bytes; a template may have at most 1,048,576",
        hint="split the template or shorten it",
    ),
    # -- Jinja sandbox escapes --------------------------------------------------------------
    case(
        "sandbox-subclasses",
        pins="''.__class__.__mro__[1].__subclasses__() stops at the first dunder",
        files=prompt_spec("\"{{ ''.__class__.__mro__[1].__subclasses__() }}\""),
        location="specs/a.yaml:3:13",
        message="template error: access to attribute '__class__' of 'str' object is unsafe.",
        hint="templates can only use the values they are given",
    ),
    case(
        "sandbox-cycler-globals",
        pins="cycler.__init__.__globals__ (a way to os) is unsafe",
        files=prompt_spec('"{{ cycler.__init__.__globals__ }}"'),
        location="specs/a.yaml:3:13",
        message="template error: access to attribute '__init__' of 'type' object is unsafe.",
        hint="templates can only use the values they are given",
    ),
    case(
        "sandbox-self-context",
        pins="self._TemplateReference__context (the private context) is unsafe",
        files=prompt_spec('"{{ self._TemplateReference__context }}"'),
        location="specs/a.yaml:3:13",
        message="template error: access to attribute '_TemplateReference__context' of "
        "'TemplateReference' object is unsafe.",
        hint="templates can only use the values they are given",
    ),
    case(
        "sandbox-lipsum-globals",
        pins="lipsum is not there at all (lipsum.__globals__ reaches os; lipsum(10**6) takes "
        "minutes)",
        files=prompt_spec('"{{ lipsum.__globals__ }}"'),
        location="specs/a.yaml:3:13",
        message="template error: 'lipsum' is undefined",
        hint="define it under 'vars:', in the matrix, or check its spelling",
    ),
    case(
        "sandbox-config-undefined",
        pins="Flask's config is not a template global here",
        files=prompt_spec('"{{ config }}"'),
        location="specs/a.yaml:3:13",
        message="template error: 'config' is undefined",
        hint="define it under 'vars:'",
    ),
    case(
        "sandbox-request-undefined",
        pins="Flask's request is not a template global here",
        files=prompt_spec('"{{ request.environ }}"'),
        location="specs/a.yaml:3:13",
        message="template error: 'request' is undefined",
        hint="define it under 'vars:'",
    ),
    # -- Jinja resource bombs ---------------------------------------------------------------
    case(
        "range-huge",
        pins="range(10**9) is refused, naming the lowered 10,000 cap in the hint",
        files=prompt_spec('"{% for i in range(10**9) %}x{% endfor %}"'),
        location="specs/a.yaml:3:13",
        message="template error: range too large: 1,000,000,000 items (at most 10,000)",
        hint="templates are sandboxed: range() takes at most 10,000 items (100,000 per "
        "template), and the rendered text at most 200,000 characters",
    ),
    case(
        "range-just-over",
        pins="the cap is 10,000 items (Jinja's own is 100,000): 10,001 is refused",
        files=prompt_spec('"{{ range(10001)|length }}"'),
        location="specs/a.yaml:3:13",
        message="template error: range too large: 10,001 items (at most 10,000)",
        hint="range() takes at most 10,000 items",
    ),
    case(
        "nested-loop-without-output",
        pins="nested loops that print nothing are bounded by range() items per render",
        files=prompt_spec(
            '"{% set ns = namespace(n=0) %}{% for i in range(10000) %}'
            '{% for j in range(10000) %}{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}x"'
        ),
        location="specs/a.yaml:3:13",
        message="template error: range too large: the loops of this template go over 100,000 "
        "range() items in all",
        hint="range() takes at most 10,000 items (100,000 per template)",
    ),
    case(
        "rendered-output-too-long",
        pins="a loop over a 2,000-item list inside another prints 4,000,000 characters: "
        "rendering stops past 200,000, at the template line",
        files={
            SPEC: "vars:\n  xs: [" + ", ".join(["1"] * 2000) + "]\nassets:\n  - id: a\n"
            "    template: t.j2\n",
            "templates/t.j2": "line one\n"
            "{% for a in xs %}{% for b in xs %}x{% endfor %}{% endfor %}\n",
        },
        location="templates/t.j2:2",
        message="template error: the rendered text is over 200,000 characters",
        hint="a prompt takes at most 32,000 characters; look for a loop that repeats too often",
    ),
    case(
        "string-repeat-bomb",
        pins="'x' * 10**9 is refused before a gigabyte is allocated",
        files=prompt_spec("\"{{ 'x' * 10**9 }}\""),
        location="specs/a.yaml:3:13",
        message="template error: 'x' * 1,000,000,000 would make 1,000,000,000 characters "
        "(at most 200,000)",
        hint="a rendered template has at most 200,000 characters, and a prompt at most "
        "32,000; repeat less",
    ),
    case(
        "power-bomb",
        pins="9 ** (9 ** 10) is refused (Jinja would fold it at compile time and never finish)",
        files=prompt_spec('"{{ 9 ** (9 ** 10) }}"'),
        location="specs/a.yaml:3:13",
        message="template error: the number 9 ** 3486784401 is too large",
        hint="numbers in templates stay under 10,000 bits",
    ),
    case(
        "recursive-macro",
        pins="a macro calling itself is a spec error, not a RecursionError traceback",
        files=prompt_spec('"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"'),
        location="specs/a.yaml:3:13",
        message="template error: the template recurses too deeply",
        hint="a macro that calls itself needs a condition that stops it",
    ),
    case(
        "expression-nested-too-deep",
        pins="thousands of nested parentheses overflow Jinja's parser: a located error",
        files=prompt_spec('"{{ ' + "(" * 3000 + "1" + ")" * 3000 + ' }}"'),
        location="specs/a.yaml:3:13",
        message="template syntax error: the template nests too deeply to compile",
        hint="write expressions and blocks a few levels deep",
    ),
    case(
        "prompt-over-32000",
        pins="a rendered prompt over 32,000 characters is refused before any request",
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
        hint="shorten the prompt or the values it includes",
    ),
    # -- YAML bombs and malformed files -----------------------------------------------------
    case(
        "yaml-billion-laughs",
        pins="an alias bomb stops at 200,000 values, not after 387 million, at the first "
        "list whose aliases pass the limit (f: &f [*e, ...] on line 6)",
        files={SPEC: laughs()},
        location="specs/a.yaml:6:4",
        message="the document expands to more than 200,000 values",
        hint="YAML aliases that refer to each other multiply",
    ),
    case(
        "yaml-alias-to-itself",
        pins="&a [*a] (a list containing itself) is refused by depth, not a RecursionError",
        files={SPEC: "vars:\n  a: &a [*a]\nassets:\n  - id: a\n    prompt: x\n"},
        location="specs/a.yaml:2:6",
        message="the document nests more than 100 levels deep",
        hint="an alias inside the value it names (&a [*a]) also nests without end",
    ),
    case(
        "yaml-oversized",
        pins="a spec over 2 MiB is refused by size before it is parsed",
        files={SPEC: "# " + "x" * (2 * 1024 * 1024) + "\nassets: []\n"},
        location="specs/a.yaml",
        message="the file is 2,097,166 bytes; a spec may have at most 2,097,152",
        hint="split it into several spec files",
    ),
    case(
        "yaml-two-documents",
        pins="a stream of two documents is one document too many, at the second '---'",
        files={
            SPEC: """
            ---
            assets:
              - id: a
                prompt: x
            ---
            assets:
              - id: b
                prompt: y
            """
        },
        location="specs/a.yaml:5:1",
        message="a spec file holds one YAML document; a second one starts here",
        hint="remove this '---' line (and the document after it, or move that document to a "
        "spec file of its own)",
    ),
    case(
        "yaml-not-utf8",
        pins="a Latin-1 byte is located at its line and character column",
        files={SPEC: b'assets:\n  - id: a\n    prompt: "caf\xe9"\n'},
        location="specs/a.yaml:3:17",
        message="the file is not UTF-8 text: byte 0xE9 cannot be decoded",
        hint="save the file with the UTF-8 encoding",
    ),
    case(
        "yaml-impossible-date",
        pins="an unquoted 2001-13-45 is read as a date and fails: a located error, not a crash",
        files={SPEC: "assets:\n  - id: a\n    prompt: x\n    tags: [2001-13-45]\n"},
        location="specs/a.yaml:4:12",
        message="cannot read '2001-13-45' as a date: month must be in 1..12",
        hint='if it is text, quote it: "2001-13-45"',
    ),
    case(
        "yaml-bad-explicit-tag",
        pins="!!int on text that is not a number is a located error, not a ValueError",
        files={SPEC: "assets:\n  - id: a\n    prompt: x\n    variants: !!int two\n"},
        location="specs/a.yaml:4:15",
        message="cannot read 'two' as a whole number",
        hint='if it is text, quote it: "two"',
    ),
    case(
        "settings-impossible-date",
        pins="assetpipe.yaml goes through the same reader: a located error, not a traceback",
        files={"assetpipe.yaml": "model: 2001-13-45\n", SPEC: ONE_ASSET.format(prompt="x")},
        location="assetpipe.yaml:1:8",
        message="cannot read '2001-13-45' as a date: month must be in 1..12",
        hint="quote it",
    ),
    # -- plan size --------------------------------------------------------------------------
    case(
        "matrix-100x100x100",
        pins="a million-combination matrix is refused by the job limit, naming --max-jobs",
        files={
            SPEC: 'assets:\n  - id: "a{{ x }}-{{ y }}-{{ z }}"\n    prompt: x\n    matrix:\n'
            + "".join(f"      {v}: {list(range(100))}\n" for v in "xyz")
        },
        location="specs/a.yaml:2:5",
        message="the plan has more than 10,000 jobs (API jobs, renditions and sheets): this "
        "asset takes it to at least 10,001",
        hint="shrink the matrix, variants or renditions, or raise the limit with --max-jobs "
        "(max_jobs in assetpipe.yaml)",
    ),
    case(
        "matrix-3x3-max-jobs-5",
        pins="--max-jobs 5 refuses a 3x3 matrix",
        files={
            SPEC: """
            assets:
              - id: "a-{{ x }}-{{ y }}"
                prompt: x
                matrix:
                  x: [1, 2, 3]
                  y: [1, 2, 3]
            """
        },
        args=("--max-jobs", "5"),
        location="specs/a.yaml:2:5",
        message="the plan has more than 5 jobs (API jobs, renditions and sheets): this asset "
        "takes it to at least 6",
        hint="raise the limit with --max-jobs",
    ),
    # -- edit inputs ------------------------------------------------------------------------
    case(
        "edit-input-not-an-image",
        pins="a text file named .png is not a usable image",
        files={SPEC: edit_spec("[{file: n.png}]"), "specs/n.png": "hello\n"},
        location="specs/a.yaml:5:16",
        message="'n.png' is not a usable image: it is not an image Pillow can read",
        hint="edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
    ),
    case(
        "edit-input-over-50mb",
        pins="a 50,000,001-byte input is refused by its size, without reading it",
        files={SPEC: edit_spec("[{file: huge.png}]")},
        setup=sparse,
        location="specs/a.yaml:5:16",
        message="'huge.png' is not a usable image: it is 50,000,001 bytes; edit inputs must "
        "be under 50 MB",
        hint="edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
    ),
    case(
        "edit-input-decompression-bomb",
        pins="a PNG header claiming 100000x100000 pixels is refused (Pillow raised its own "
        "DecompressionBombError through the CLI)",
        files={SPEC: edit_spec("[{file: bomb.png}]"), "specs/bomb.png": png_header(100000, 100000)},
        location="specs/a.yaml:5:16",
        message="'bomb.png' is not a usable image: its header claims more than 89,478,485 pixels",
        hint="edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
    ),
    case(
        "edit-input-over-pixel-limit",
        pins="10000x10000 is between Pillow's warning and error limits: refused the same way "
        "(Pillow only warned, and a validate would go on to hash it)",
        files={SPEC: edit_spec("[{file: big.png}]"), "specs/big.png": png_header(10000, 10000)},
        location="specs/a.yaml:5:16",
        message="'big.png' is not a usable image: its header claims more than 89,478,485 pixels",
        hint="edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
    ),
    case(
        "edit-input-fifo",
        pins="a FIFO named .png is refused instead of blocking validate forever",
        files={SPEC: edit_spec("[{file: pipe.png}]")},
        setup=fifo,
        location="specs/a.yaml:5:16",
        message="'pipe.png' is not a usable image: it is not a regular file",
        hint="edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
    ),
    case(
        "edit-17-inputs",
        pins="17 input images: the model takes at most 16",
        files={
            SPEC: edit_spec("[" + ", ".join(["{file: i.png}"] * 17) + "]"),
            "specs/i.png": png(16, 16),
        },
        location="specs/a.yaml:5:15",
        message="17 input images; gpt-image-2.5-flare takes at most 16",
        hint="list at most 16 images (the mask is not one of them)",
    ),
    case(
        "edit-mask-size-differs",
        pins="a mask of another size than the first image is refused at the mask",
        files={
            SPEC: edit_spec("[{file: img.png}]", "{file: mask.png}"),
            "specs/img.png": png(32, 32),
            "specs/mask.png": png(16, 16),
        },
        location="specs/a.yaml:6:13",
        message="the mask is 16x16 but the first image is 32x32",
        hint="a mask must have the same size as the first input image",
    ),
]


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail a test that blocks (a FIFO read) after 60 s instead of hanging the suite."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("the command blocked")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("bad", CASES)
def test_hostile_spec_is_refused_and_nothing_is_written(project, run, no_hang, bad: Hostile):
    """Each hostile input (see its ``pins``): build and validate exit 2 without a
    traceback, with the exact message at the exact place and its hint; nothing from
    outside the project shows up; no output/ or .assetpipe/ is created."""
    project.gen(bad.files)
    if bad.setup is not None:
        bad.setup(project.root)
    for command in COMMANDS:
        result = run(*command, *bad.args)
        assert result.code == 2, (bad.pins, command, result.err)
        assert "Traceback" not in result.err, bad.pins
        line, after = error_line(result.err, bad.location)
        assert line == f"error: {bad.location}: {bad.message}", (bad.pins, line)
        if bad.hint is not None:
            assert after.startswith("  hint: "), (bad.pins, result.err)
            assert bad.hint in after, (bad.pins, after)
        assert SECRET not in result.out + result.err, bad.pins
        assert str(project.root.parent / "outside") not in result.err, bad.pins
        nothing_written(project.root)


def test_nested_loop_cpu_bomb_fails_fast(project, run):
    """The 10,000 x 10,000 nested loop (10**8 steps, formerly seconds and 100 MB) fails
    with the range error at the prompt: the guard counts range() items before a loop
    runs, so it fires after no template work at all (not a timer: the message shows it)."""
    project.gen(
        prompt_spec(
            '"{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"'
        )
    )
    result = run("build", "--provider", "preview")
    assert result.code == 2
    line, _ = error_line(result.err, "specs/a.yaml:3:13")
    assert line == (
        "error: specs/a.yaml:3:13: template error: range too large: the loops of this template "
        "go over 100,000 range() items in all"
    )
    nothing_written(project.root)


def test_output_guard_stops_a_nested_loop_over_lists(project, run):
    """Loops over lists (not range) printing 100,000,000 characters stop at the output
    guard (at 200,000 characters, not after the full render), and build nothing."""
    xs = "[" + ", ".join(["1"] * 10000) + "]"
    project.gen(
        {
            SPEC: f"vars:\n  xs: {xs}\nassets:\n  - id: a\n    prompt: "
            '"{% for a in xs %}{% for b in xs %}x{% endfor %}{% endfor %}"\n'
        }
    )
    result = run("build", "--provider", "preview")
    assert result.code == 2
    line, hint = error_line(result.err, "specs/a.yaml:5:13")
    assert line.endswith("template error: the rendered text is over 200,000 characters")
    assert hint.startswith("  hint: a prompt takes at most 32,000 characters")
    nothing_written(project.root)


def test_deep_nesting_is_an_error_not_a_segfault(project):
    """200,000 nested '[' crashed libyaml's C composer (SIGSEGV). Run in a child process
    so a regression fails this test instead of killing the suite: exit 2, the depth
    error at the 101st bracket, nothing written."""
    project.gen({SPEC: "a: " + "[" * 200_000 + "]" * 200_000 + "\n"})
    proc = subprocess.run(
        [*PYTHON_M_PIPELINE, "build", "--provider", "preview", "--project", str(project.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    line, hint = error_line(proc.stderr, "specs/a.yaml:1:103")
    assert line == "error: specs/a.yaml:1:103: the document nests more than 100 levels deep"
    assert hint.startswith("  hint: a spec needs only a few levels")
    nothing_written(project.root)


def test_nesting_at_the_limit_is_accepted(project, run):
    """100 levels (the top mapping and 99 lists in a var) is allowed: the limit is not
    off by one against a legitimate deep value."""
    project.gen(
        {SPEC: "vars:\n  deep: " + "[" * 98 + "]" * 98 + "\nassets:\n  - id: a\n    prompt: x\n"}
    )
    result = run("validate")
    assert result.code == 0, result.err
    assert result.out.startswith("ok: 1 spec file, 1 API job,")


def test_template_symlink_inside_the_folder_still_works(project, run):
    """A template that links to another file inside templates/ is fine: only links that
    leave the folder are refused."""
    project.gen(
        {SPEC: "assets:\n  - id: a\n    template: alias.j2\n", "templates/real.j2": "a red fox\n"}
    )
    link(project.root / "templates" / "alias.j2", project.root / "templates" / "real.j2")
    result = run("plan", "--json")
    assert result.code == 0, result.err
    assert '"prompt": "a red fox"' in result.out


def test_spec_path_outside_the_specs_folder(project, run):
    """`validate README.md` named a file outside specs/ and crashed in collection_name;
    now it is a usage error saying where spec files live."""
    project.gen({SPEC: ONE_ASSET.format(prompt="x"), "README.md": "# hi\n"})
    result = run("validate", str(project.root / "README.md"))
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"error: {project.root / 'README.md'} is not in the specs folder" in result.err
    assert f"hint: spec files live under {project.root / 'specs'}" in result.err


def test_non_spec_file_inside_the_specs_folder(project, run):
    """A path inside specs/ that is not .yaml is refused rather than silently matching
    no collection."""
    project.gen({SPEC: ONE_ASSET.format(prompt="x"), "specs/notes.txt": "hi\n"})
    result = run("validate", str(project.root / "specs" / "notes.txt"))
    assert result.code == 2
    assert f"error: {project.root / 'specs' / 'notes.txt'} is not a spec file" in result.err
    assert "hint: spec files are .yaml (or .yml) files" in result.err


def test_memory_error_while_rendering_is_a_spec_error():
    """Running out of memory inside a template (in a way the sandbox's bounds did not
    foresee) is a located SpecError with the sandbox hint, not a MemoryError traceback."""

    def greedy() -> str:
        raise MemoryError

    engine = TemplateEngine(None)
    engine.env.globals["greedy"] = greedy
    prompt = engine.inline("{{ greedy() }}", Location("specs/a.yaml", 3, 13))
    with pytest.raises(SpecError) as info:
        prompt.render({})
    assert info.value.render() == (
        "specs/a.yaml:3:13: template error: the template needs too much memory\n"
        "  hint: templates are sandboxed: range() takes at most 10,000 items (100,000 per "
        "template), and the rendered text at most 200,000 characters; loop over a list from "
        "vars or the matrix instead"
    )


def test_output_and_cache_flags_may_point_outside_the_project(project, run, tmp_path):
    """--output and --cache-dir are the operator's choice, not the project's: a build may
    write beside the project when the command line says so."""
    project.gen({SPEC: ONE_ASSET.format(prompt="a red fox")})
    out, cache = tmp_path / "elsewhere" / "out", tmp_path / "elsewhere" / "cache"
    result = run("build", "--provider", "preview", "--output", str(out), "--cache-dir", str(cache))
    assert result.code == 0, result.err
    assert (out / "manifest.json").is_file()
    assert (out / "a" / "a.png").is_file()
    assert cache.is_dir()
    assert not (project.root / "output").exists()
