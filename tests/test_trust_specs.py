"""Specs and templates from untrusted hands: the findings of a security review, each
pinned through the CLI.

A spec may come from anyone who can open a pull request, and CI builds it with a real
API key. Every case here exits 2 with the exact message at the exact place, shows no
traceback and writes nothing (no ``output/``, no ``.assetpipe/``):

- templates never read hidden files (``.env``, ``.git/config``), even with
  ``templates: .``;
- whatever Python raises inside a template is a located spec error;
- width, count and doubling bombs are refused before they allocate (proved in a child
  process whose address space is capped at 1 GiB), and one load has a rendering budget;
- ``--max-jobs`` counts renditions and sheets;
- control characters in collection names, ids and quoted values are never echoed raw;
- two jobs never write one output file (also where case does not count).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import PINNED_TODAY

from pipeline.errors import Location, SpecError
from pipeline.templating import TemplateEngine

SPEC = "specs/a.yaml"
SECRET = "sk-TOPSECRET-in-dotenv"
COMMANDS = (("build", "--provider", "preview"), ("validate",))
RENDER_HINT = "  hint: check the values the template uses and the arguments it passes"
SIZE_HINT = (
    "  hint: a rendered template has at most 200,000 characters, and a prompt at most "
    "32,000; ask for less"
)
WORK_HINT = (
    "  hint: look for loops inside loops over long lists, text or lists that grow in a "
    "loop, or a macro that calls itself more often than it needs"
)
HIDDEN_HINT = (
    "  hint: hidden files and folders (.env, .git/) hold settings and secrets, not prompts; "
    "give the template a name that does not start with '.'"
)
COLLISION_HINT = (
    "  hint: give one of the assets (or sheets) another id: variant k of an asset writes "
    "<id>.v<k>, keep_original writes <id>.original.<ext>, and a sheet writes <id>.png "
    "and <id>.json"
)


@pytest.fixture(autouse=True)
def pinned_today(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Model lifecycles are judged on a fixed day, not on the day the suite runs."""
    monkeypatch.setenv("ASSETPIPE_TODAY", PINNED_TODAY)
    yield


def errors_of(err: str) -> list[tuple[str, str]]:
    """Each ``error: ...`` line of stderr with the line after it (its hint, or '')."""
    lines = err.splitlines()
    return [
        (line, lines[i + 1] if i + 1 < len(lines) else "")
        for i, line in enumerate(lines)
        if line.startswith("error: ")
    ]


def nothing_written(root: Path) -> None:
    """Planning failed before the build took its lock: no output tree, no cache."""
    assert not (root / "output").exists()
    assert not (root / ".assetpipe").exists()


def refused(run, root: Path, expected: list[tuple[str, str]], *args: str) -> None:
    """Build and validate both exit 2 with exactly ``expected`` (error, hint) pairs, no
    traceback, no secret, and nothing written."""
    for command in COMMANDS:
        result = run(*command, *args)
        assert result.code == 2, (command, result.err)
        assert "Traceback" not in result.err
        assert SECRET not in result.out + result.err
        assert errors_of(result.err) == expected, result.err
        nothing_written(root)


# -- 1. hidden files are never templates ---------------------------------------------------

HIDDEN_FILES = {
    "assetpipe.yaml": "templates: .\n",
    ".env": f"OPENAI_API_KEY={SECRET}\n",
    ".git/config": f"[remote]\n  url = https://x:{SECRET}@example.com\n",
    "parts/.secret.j2": f"{SECRET}\n",
    "parts/ok.j2": "a red fox",
}


@pytest.mark.parametrize(
    ("tag", "refusal"),
    [
        ("{% include '.env' %}", "template '.env' is a hidden file"),
        ("{% include './.env' %}", "template './.env' is a hidden file"),
        (
            "{% include '.git/config' %}",
            "template '.git/config' is inside the hidden folder '.git'",
        ),
        ("{% import '.env' as env %}x", "template '.env' is a hidden file"),
        (
            "{% extends '.git/config' %}",
            "template '.git/config' is inside the hidden folder '.git'",
        ),
        ("{% from 'parts/.secret.j2' import x %}x", "template 'parts/.secret.j2' is a hidden file"),
    ],
    ids=["include", "include-dot-slash", "include-git", "import", "extends", "from-import"],
)
def test_templates_cannot_include_hidden_files(project, run, tag: str, refusal: str):
    """With ``templates: .`` the templates folder is the project; an include, import or
    extends of a hidden file or folder is refused at the tag, and its text (an API key,
    a remote URL with a token) is never read into a prompt."""
    project.gen({**HIDDEN_FILES, SPEC: f'assets:\n  - id: a\n    prompt: "{tag}"\n'})
    refused(
        run,
        project.root,
        [
            (
                f"error: specs/a.yaml:3:13: template error: {refusal}; templates never read "
                "hidden files or folders",
                HIDDEN_HINT,
            )
        ],
    )


def test_a_hidden_file_is_not_an_assets_template(project, run):
    """``template: .env`` names a hidden file: refused at the spec value."""
    project.gen({**HIDDEN_FILES, SPEC: "assets:\n  - id: a\n    template: .env\n"})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:3:15: template '.env' is a hidden file; templates never "
                "read hidden files or folders",
                HIDDEN_HINT,
            )
        ],
    )


def test_hints_never_list_hidden_files(project, run):
    """A misspelt template name lists the templates there are: with ``templates: .``
    that is every file of the project except the hidden ones."""
    project.gen({**HIDDEN_FILES, SPEC: "assets:\n  - id: a\n    template: missing.j2\n"})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:3:15: template 'missing.j2' not found",
                "  hint: templates are files in proj/; there are: assetpipe.yaml, parts/ok.j2, "
                "specs/a.yaml",
            )
        ],
    )


def test_templates_that_are_not_hidden_still_include(project, run):
    """Only hidden names are refused: ``parts/ok.j2`` beside ``.env`` is included."""
    project.gen(
        {**HIDDEN_FILES, SPEC: "assets:\n  - id: a\n    prompt: \"{% include 'parts/ok.j2' %}\"\n"}
    )
    result = run("plan", "--json")
    assert result.code == 0, result.err
    assert '"prompt": "a red fox"' in result.out


# -- 2. whatever a template raises is a spec error -----------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{{ '{0}'.format() }}", "IndexError: tuple index out of range"),
        ("{{ xs.pop(10) }}", "IndexError: pop index out of range"),
        ("{{ d.pop('k') }}", "KeyError: 'k'"),
        ("{{ 'abc'.index('z') }}", "ValueError: substring not found"),
        ("{{ 'a' + 1 }}", 'TypeError: can only concatenate str (not "int") to str'),
        ("{{ 1 // 0 }}", "ZeroDivisionError: integer division or modulo by zero"),
        (
            "{{ '{:d}'.format('x') }}",
            "ValueError: Unknown format code 'd' for object of type 'str'",
        ),
        (
            "{% for k in d %}{{ d.update({k ~ '2': 1}) }}{% endfor %}",
            "RuntimeError: dictionary changed size during iteration",
        ),
    ],
    ids=["format-index", "pop-index", "pop-key", "index", "add", "divide", "format-code", "mutate"],
)
def test_python_exceptions_in_templates_are_spec_errors(project, run, expression, message):
    """Python errors raised inside the sandbox (they used to escape as tracebacks) are
    spec errors at the template's spec value, naming the exception and its words."""
    project.gen(
        {SPEC: f'vars:\n  xs: [1]\n  d: {{a: 1}}\nassets:\n  - id: a\n    prompt: "{expression}"\n'}
    )
    refused(
        run,
        project.root,
        [(f"error: specs/a.yaml:6:13: template error: the template raised {message}", RENDER_HINT)],
    )


def test_an_exception_in_a_template_file_is_at_its_line(project, run):
    """In a template file the error names the file and the line that raised."""
    project.gen(
        {
            SPEC: "vars:\n  xs: [1]\nassets:\n  - id: a\n    template: t.j2\n",
            "templates/t.j2": "first line\nsecond {{ xs.pop(10) }}\n",
        }
    )
    refused(
        run,
        project.root,
        [
            (
                "error: templates/t.j2:2: template error: the template raised IndexError: pop "
                "index out of range",
                RENDER_HINT,
            )
        ],
    )


# -- 3. bombs are refused before they allocate ---------------------------------------------

BOMBS = [
    (
        "{{ '%1000000000d' % 1 }}",
        "the format '%1000000000d' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '%*d' % (1000000000, 1) }}",
        "the format '%*d' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '%.1000000000f' % 1.5 }}",
        "the format '%.1000000000f' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '{:>1000000000}'.format(1) }}",
        "the format '{:>1000000000}' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '{:{w}}'.format(1, w=10**9) }}",
        "the format '{:1000000000}' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '{x:>1000000000}'.format_map({'x': 1}) }}",
        "the format '{:>1000000000}' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ '%1000000000d'|format(1) }}",
        "the format '%1000000000d' asks for 1,000,000,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ 'x'.zfill(10**9) }}",
        "'x'.zfill(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'.ljust(10**9) }}",
        "'x'.ljust(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'.rjust(10**9, '-') }}",
        "'x'.rjust(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'.center(10**9) }}",
        "'x'.center(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'a\\tb'.expandtabs(10**9) }}",
        "'a\\tb'.expandtabs(1,000,000,000) would make 1,000,000,003 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ 'x'|indent(10**9) }}",
        "indent(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'|center(1000000000) }}",
        "center(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'|wordwrap(10**9) }}",
        "wordwrap(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ 'x'|truncate(10**9) }}",
        "truncate(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ ('x' * 1000).replace('', 'y' * 1000) }}",
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx....replace would make 1,002,000 characters "
        "(at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ ('y' * 100000).join(['a'] * 10000) }}",
        "joining 10,000 items with 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy... would make "
        "999,900,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ (['a'] * 10000)|join('y' * 100000) }}",
        "joining 10,000 items with 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy... would make "
        "999,900,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ (10).to_bytes(10**9, 'big') }}",
        "to_bytes(1,000,000,000) asks for more than 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{{ [1, 2]|tojson(indent=10**9) }}",
        "tojson would make 2,000,000,012 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ [1]|batch(10**9, 0)|list }}",
        "batch(1,000,000,000) would make 1,000,000,000 items (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ [1]|slice(10**9)|list }}",
        "slice(1,000,000,000) would make 1,000,000,000 items (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{{ ([[1] * 200000] * 200000)|sum(start=[]) }}",
        "sum of lists would make 40,000,000,000 items (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
        "a list + a list would make 262,144 items (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) or '' }}{% endfor %}",
        "extending a list of 131,072 items would make 262,144 items (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
        "printing a list would make over 200,000 characters",
        SIZE_HINT,
    ),
    (
        "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}"
        "{% endif %}{% endmacro %}{{ f('x', 40) }}",
        "joining text with ~ would make 262,144 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% macro f(s, n) %}{% if n %}{{ f(s + s, n - 1) }}{% endif %}{% endmacro %}"
        "{{ f('x', 40) }}",
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... + 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... "
        "would make 262,144 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}"
        "{% else %}{{ 'x' * 150000 }}{% endif %}{% endmacro %}{{ d(40)|length }}",
        "the text of a macro or block would make 300,000 characters (at most 200,000)",
        SIZE_HINT,
    ),
    (
        "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}{% endmacro %}"
        "{{ d(40) }}",
        "the template takes over 1,000,000 loop steps and calls",
        WORK_HINT,
    ),
    (
        "{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}",
        "the template takes over 1,000,000 loop steps and calls",
        WORK_HINT,
    ),
    (
        "{% set s = 'x' * 200000 %}{% set l = [] %}{% for i in range(10000) %}"
        "{{ l.append(s.upper()) or '' }}{% endfor %}",
        "the template creates over 2,000,000 characters and list items while rendering",
        WORK_HINT,
    ),
    (
        "{% set s = 'x' * 200000 %}{% set l = [] %}{% for i in range(10000) %}"
        "{{ l.append(s[i:]) or '' }}{% endfor %}",
        "the template creates over 2,000,000 characters and list items while rendering",
        WORK_HINT,
    ),
    (
        "{% set s = 'x' * 200000 %}{% set b %}{% for i in range(10000) %}{{ s }}"
        "{% endfor %}{% endset %}{{ b|length }}",
        "the template creates over 2,000,000 characters and list items while rendering",
        WORK_HINT,
    ),
]
"""(template, the error it must give, hint): each allocated gigabytes (or ran for hours)
before the sandbox bounded it."""

CAPPED_CLI = (
    "import resource, runpy, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))\n"
    "sys.argv = ['assetpipe', *sys.argv[1:]]\n"
    "runpy.run_module('pipeline', run_name='__main__')\n"
)
"""``python -m pipeline`` with its address space capped at 1 GiB."""


@pytest.mark.parametrize("command", COMMANDS, ids=["build", "validate"])
def test_bombs_are_refused_before_they_allocate(project, command):
    """Every bomb of BOMBS, one asset each, in a child process that may not map more than
    1 GiB: it exits 2 with each bomb's own message at its template file (a bomb that
    allocated a gigabyte would end as "needs too much memory", or another message), and
    nothing is written."""
    xs = "[" + ", ".join(["1"] * 10000) + "]"
    files: dict[str, str | bytes] = {
        f"templates/b{i}.j2": template for i, (template, _, _) in enumerate(BOMBS)
    }
    assets = "".join(f"  - id: b{i}\n    template: b{i}.j2\n" for i in range(len(BOMBS)))
    project.gen({**files, SPEC: f"vars:\n  xs: {xs}\nassets:\n{assets}"})
    proc = subprocess.run(
        [sys.executable, "-c", CAPPED_CLI, *command, "--project", str(project.root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ASSETPIPE_TODAY": PINNED_TODAY},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    expected = [
        (f"error: templates/b{i}.j2:1: template error: {message}", hint)
        for i, (_, message, hint) in enumerate(BOMBS)
    ]
    assert errors_of(proc.stderr) == expected, proc.stderr
    nothing_written(project.root)


def test_ordinary_templates_still_render(project, run):
    """The bounded operations give Python's own results at ordinary sizes."""
    template = (
        "{{ 'a %s b'|format('c') }}|{{ 'x'|center(5) }}|{{ '{:>4}'.format(1) }}|"
        "{{ '%03d' % 7 }}|{{ [1, 2]|join(',') }}|{{ 'a' ~ 'b' }}|{{ [1] + [2] }}|"
        "{{ 'abc'[1:] }}|{{ 'ab' * 2 }}|{{ 'x'.zfill(3) }}|{{ 'a-b'.replace('-', '+') }}|"
        "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}|"
        "{{ [1, 2, 3]|slice(2)|list }}|{{ {'a': 1}|tojson(indent=1) }}"
    )
    project.gen({SPEC: "assets:\n  - id: a\n    template: t.j2\n", "templates/t.j2": template})
    result = run("plan", "--json")
    assert result.code == 0, result.err
    assert (
        '"prompt": "a c b|  x  |   1|007|1,2|ab|[1, 2]|bc|abab|00x|a+b|1/3 2/3 3/3 |'
        '[[1, 2], [3]]|{\\n \\"a\\": 1\\n}"'
    ) in result.out


class ManualClock:
    """A clock that moves only when a template calls ``tick()``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> str:
        self.now += 0.1
        return ""


def test_one_load_has_a_rendering_time_budget():
    """All renders of one engine (one load) share its rendering time: a render that
    passes the budget stops at a step check, and later renders of the same load fail
    at once; a new load starts with the whole budget."""
    clock = ManualClock()
    engine = TemplateEngine(None, clock=clock, render_seconds=60)
    engine.env.globals["tick"] = clock.tick
    slow = engine.inline(
        "{% for i in range(3000) %}{{ tick() }}{% endfor %}", Location("specs/a.yaml", 3, 13)
    )
    message = (
        "specs/a.yaml:{}: template error: rendering the templates of this load took over 60 "
        "seconds in all\n" + WORK_HINT
    )
    with pytest.raises(SpecError, match="took over 60 seconds in all") as info:
        slow.render({})
    assert info.value.render() == message.format("3:13")
    quick = engine.inline("{{ 'x' }}", Location("specs/a.yaml", 4, 13))
    with pytest.raises(SpecError, match="took over 60 seconds in all") as info:
        quick.render({})
    assert info.value.render() == message.format("4:13")
    fresh = TemplateEngine(None, clock=clock)
    assert fresh.inline("{{ 'x' }}", Location("specs/a.yaml", 4, 13)).render({}) == "x"


# -- 4. --max-jobs counts every job --------------------------------------------------------


def test_max_jobs_counts_renditions(project, run):
    """100 assets of 200 renditions each are 20,100 jobs: refused at the 50th asset,
    which takes the count past 10,000, before any job or rendition is built."""
    renditions = ", ".join(f"{{size: {k}x{k}}}" for k in range(1, 201))
    assets = "".join(
        f"  - id: a{i}\n    prompt: x\n    renditions: [{renditions}]\n" for i in range(100)
    )
    project.gen({SPEC: f"assets:\n{assets}"})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:149:5: the plan has more than 10,000 jobs (API jobs, "
                "renditions and sheets): this asset takes it to 10,050",
                "  hint: each variant of each matrix combination is an API job, plus a job per "
                "rendition; shrink the matrix, variants or renditions, or raise the limit with "
                "--max-jobs (max_jobs in assetpipe.yaml)",
            )
        ],
    )


SHEETS_SPEC = """
assets:
  - id: a
    prompt: x
    renditions: [{size: 64x64}]
sheets:
  - {id: s1, assets: [a]}
  - {id: s2, assets: [a]}
"""


def test_max_jobs_counts_sheets(project, run):
    """Two sheets, an API job and a rendition are four jobs: over --max-jobs 3."""
    project.gen({SPEC: SHEETS_SPEC})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:2:5: the plan has more than 3 jobs (API jobs, renditions "
                "and sheets): this asset takes it to 4",
                "  hint: each variant of each matrix combination is an API job, plus a job per "
                "rendition; shrink the matrix, variants or renditions, or raise the limit with "
                "--max-jobs (max_jobs in assetpipe.yaml)",
            )
        ],
        "--max-jobs",
        "3",
    )


def test_max_jobs_allows_exactly_the_limit(project, run):
    """Four jobs pass --max-jobs 4: the count is not off by one."""
    project.gen({SPEC: SHEETS_SPEC})
    result = run("validate", "--max-jobs", "4")
    assert result.code == 0, result.err
    assert result.out.startswith("ok: 1 spec file, 1 API job, 3 renditions")


# -- 5. control characters are never echoed raw --------------------------------------------

ONE_ASSET = "assets:\n  - id: a\n    prompt: x\n"


@pytest.mark.parametrize(
    ("name", "shown", "char"),
    [
        ("a\nfailed: x.yaml", "a\\nfailed: x.yaml", "'\\n'"),
        ("b\x1b[31mred.yaml", "b\\x1b[31mred.yaml", "'\\x1b'"),
        ("c\u202eevil.yaml", "c\\u202eevil.yaml", "'\\u202e'"),
        ("d\tx/e.yaml", "d\\tx/e.yaml", "'\\t'"),
    ],
    ids=["newline", "ansi", "bidi", "tab-in-folder"],
)
def test_collection_names_with_control_characters_are_refused(project, run, name, shown, char):
    """A spec file (or folder) named with a newline, an ANSI escape or a bidi override
    would name a collection whose ids and paths are echoed into logs (a forged "failed"
    line): refused, and the name is shown escaped."""
    project.gen({f"specs/{name}": ONE_ASSET})
    collection = shown.removesuffix(".yaml")
    for command in COMMANDS:
        result = run(*command)
        assert result.code == 2, result.err
        assert errors_of(result.err) == [
            (
                f"error: specs/{shown}: the path of this spec file has the control character "
                f"{char}, and the path names the collection ('{collection}')",
                "  hint: rename the file (and its folders) with letters, digits, '-', '_' and '.'",
            )
        ]
        assert not any(c in result.err for c in "\x1b\t\u202e")
        assert [line for line in result.err.splitlines() if line.startswith("failed")] == []
        nothing_written(project.root)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            'assets:\n  - id: "hero\\n"\n    prompt: x\n',
            "error: specs/a.yaml:2:9: id 'hero\\n' is not a valid asset id",
        ),
        (
            'assets:\n  - id: "\\e[31mred"\n    prompt: x\n',
            "error: specs/a.yaml:2:9: id '\\x1b[31mred' is not a valid asset id",
        ),
        (
            'assets:\n  - id: a\n    prompt: x\n    edit:\n      images: ["b\\e[2J\\nfailed"]\n',
            "error: specs/a.yaml:5:16: 'b\\x1b[2J\\nfailed' is not an asset reference",
        ),
        (
            'assets:\n  - id: a\n    prompt: x\n    "siz\\e[8me": 1\n',
            "error: specs/a.yaml:4:5: unknown key 'siz\\x1b[8me'",
        ),
        (
            'assets:\n  - id: a\n    template: "t\\n.j2"\n',
            "error: specs/a.yaml:3:15: template 't\\n.j2' not found",
        ),
    ],
    ids=["id-trailing-newline", "id-ansi", "edit-reference", "unknown-key", "template-name"],
)
def test_user_text_in_errors_is_escaped(project, run, spec, expected):
    """Error messages quote what the user wrote with its control characters escaped, so
    an id, a reference, a key or a file name cannot write raw escapes or forged lines to
    the terminal or a CI log. ``hero\\n`` is no valid id (``$`` once let it pass)."""
    project.gen({SPEC: spec})
    for command in COMMANDS:
        result = run(*command)
        assert result.code == 2, result.err
        assert [line for line, _ in errors_of(result.err)] == [expected]
        assert "\x1b" not in result.err
        assert [line for line in result.err.splitlines() if line.startswith("failed")] == []
        nothing_written(project.root)


# -- 6. one file, one job ------------------------------------------------------------------


def test_a_variant_and_an_asset_cannot_write_one_file(project, run):
    """Variant 2 of ``x`` is ``x.v2.png``, and so is an asset ``x.v2``; their renditions
    collide too, but the pair is reported once."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: x
                prompt: a fox
                variants: 2
                renditions: [{size: 64x64}]
              - id: x.v2
                prompt: a dog
                renditions: [{size: 64x64}]
            """
        }
    )
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:6:5: two jobs write 'a/x.v2.png': a/x#2 (from "
                "specs/a.yaml:2) and a/x.v2 (from specs/a.yaml:6)",
                COLLISION_HINT,
            )
        ],
    )


def test_a_kept_original_and_an_asset_cannot_write_one_file(project, run):
    """``keep_original`` keeps ``y.original.<ext>`` (the API's format, known only after
    the call), so an asset ``y.original`` is refused whatever its format."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: y
                prompt: a cat
                keep_original: true
              - id: y.original
                prompt: a cow
                format: webp
            """
        }
    )
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:5:5: two jobs write 'a/y.original.webp': a/y (from "
                "specs/a.yaml:2) and a/y.original (from specs/a.yaml:5)",
                COLLISION_HINT,
            )
        ],
    )


def test_a_sheet_and_a_variant_cannot_write_one_file(project, run):
    """A sheet ``x.v2`` writes ``x.v2.png``, which variant 2 of ``x`` writes too."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: x
                prompt: a fox
                variants: 2
            sheets:
              - {id: x.v2, assets: [x]}
            """
        }
    )
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:6: two jobs write 'a/x.v2.png': a/x#2 (from "
                "specs/a.yaml:2) and a/x.v2 (from specs/a.yaml:6)",
                COLLISION_HINT,
            )
        ],
    )


def test_paths_that_differ_only_in_case_are_one_file(project, run):
    """``Icons/a.png`` and ``icons/a.png`` are one file on macOS and Windows."""
    project.gen({"specs/Icons.yaml": ONE_ASSET, "specs/icons.yaml": ONE_ASSET})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/icons.yaml:2:5: two jobs write 'Icons/a.png' and 'icons/a.png', "
                "one file where case does not count: Icons/a (from specs/Icons.yaml:2) and "
                "icons/a (from specs/icons.yaml:2)",
                "  hint: macOS and Windows do not tell these names apart; rename one of the "
                "spec files or assets so that they differ in more than case",
            )
        ],
    )


def test_a_file_cannot_be_a_collections_folder(project, run):
    """Asset ``b`` of ``a`` writes the file ``a/b.png``; the collection ``a/b.png`` (from
    ``specs/a/b.png.yaml``) needs a folder of that name."""
    project.gen(
        {
            SPEC: "assets:\n  - id: b\n    prompt: x\n",
            "specs/a/b.png.yaml": ONE_ASSET,
        }
    )
    refused(
        run,
        project.root,
        [
            (
                "error: specs/a.yaml:2:5: a/b (from specs/a.yaml:2) writes the file 'a/b.png', "
                "but a/b.png/a (from specs/a/b.png.yaml:2) writes 'a/b.png/a.png' into a "
                "folder of that name",
                "  hint: rename the spec file or the asset so that no file is named like a "
                "collection's folder",
            )
        ],
    )


def test_a_collection_cannot_be_named_like_the_manifest(project, run):
    """``specs/manifest.json.yaml`` would make ``output/manifest.json`` a folder."""
    project.gen({"specs/manifest.json.yaml": ONE_ASSET})
    refused(
        run,
        project.root,
        [
            (
                "error: specs/manifest.json.yaml:2:5: the collection 'manifest.json' would "
                "write into 'manifest.json', where assetpipe keeps the manifest",
                "  hint: rename the spec file (its path names the collection)",
            )
        ],
    )


def test_names_that_only_look_alike_are_fine(project, run):
    """``x.v3`` beside ``x`` with two variants, and ``y.original`` beside a ``y`` that
    keeps no original, write files of their own: validate passes."""
    project.gen(
        {
            SPEC: """
            assets:
              - id: x
                prompt: a fox
                variants: 2
              - id: x.v3
                prompt: a dog
              - id: y
                prompt: a cat
              - id: y.original
                prompt: a cow
            """
        }
    )
    result = run("validate")
    assert result.code == 0, result.err
    assert result.out.startswith("ok: 1 spec file, 5 API jobs")
