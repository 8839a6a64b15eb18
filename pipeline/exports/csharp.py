"""``format: csharp``: a static class of the assets for Unity (or any .NET game).

``Assets/Scripts/GameAssets.cs`` holds ``GameAssets`` (the file's name, or
``class_name``), in ``namespace`` when one is set, with one ``static readonly Entry``
field per asset, variant, rendition, sheet and frame, named by the PascalCase rule of
:mod:`pipeline.exports.identifiers`, and ``All``, every entry by its id. ``Path`` is where
the file lies in the Unity project (``root`` + the output-relative path, for
``AssetDatabase``); ``ResourcePath`` is what ``Resources.Load`` takes when ``root`` is in
a ``Resources`` folder (else null). The file is plain C# 6: Unity's compiler and Mono's
``mcs`` both take it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import ClassVar, cast

from pydantic import field_validator, model_validator

from pipeline.exports.base import ExportOptions, path_problem
from pipeline.exports.identifiers import Case, identifier
from pipeline.exports.indexing import IndexExporter, IndexOptions, Item, Named

KEYWORDS = frozenset(
    [
        "abstract",
        "as",
        "base",
        "bool",
        "break",
        "byte",
        "case",
        "catch",
        "char",
        "checked",
        "class",
        "const",
        "continue",
        "decimal",
        "default",
        "delegate",
        "do",
        "double",
        "else",
        "enum",
        "event",
        "explicit",
        "extern",
        "false",
        "finally",
        "fixed",
        "float",
        "for",
        "foreach",
        "goto",
        "if",
        "implicit",
        "in",
        "int",
        "interface",
        "internal",
        "is",
        "lock",
        "long",
        "namespace",
        "new",
        "null",
        "object",
        "operator",
        "out",
        "override",
        "params",
        "private",
        "protected",
        "public",
        "readonly",
        "ref",
        "return",
        "sbyte",
        "sealed",
        "short",
        "sizeof",
        "stackalloc",
        "static",
        "string",
        "struct",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "uint",
        "ulong",
        "unchecked",
        "unsafe",
        "ushort",
        "using",
        "virtual",
        "void",
        "volatile",
        "while",
    ]
)
MEMBERS = frozenset(
    [
        "Entry",
        "All",
        "Equals",
        "GetHashCode",
        "GetType",
        "ToString",
        "ReferenceEquals",
        "MemberwiseClone",
        "Finalize",
    ]
)
"""Names the generated class already has (or inherits from ``object``)."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DICT = "global::System.Collections.Generic"

ENTRY = """\
public sealed class Entry
{
    public readonly string Id;
    public readonly string Kind;
    public readonly string Path;
    public readonly string ResourcePath;
    public readonly int Width;
    public readonly int Height;
    public readonly string Format;
    public readonly global::System.Collections.Generic.IReadOnlyList<string> Tags;
    public readonly string Sha256;
    public readonly string Sheet;
    public readonly int X;
    public readonly int Y;

    public Entry(string id, string kind, string path, string resourcePath, int width,
        int height, string format, string[] tags, string sha256, string sheet, int x, int y)
    {
        Id = id;
        Kind = kind;
        Path = path;
        ResourcePath = resourcePath;
        Width = width;
        Height = height;
        Format = format;
        Tags = tags;
        Sha256 = sha256;
        Sheet = sheet;
        X = x;
        Y = y;
    }
}
"""


def literal(value: str | None) -> str:
    """A C# string literal of ``value`` (``null`` for None): ASCII only, every other
    character as ``\\uXXXX`` UTF-16 units, so no text can end the string or the line."""
    if value is None:
        return "null"
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be", "surrogatepass")
            out.extend(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
    out.append('"')
    return "".join(out)


def _name_problem(value: str) -> str | None:
    if not _NAME.fullmatch(value):
        return f"'{value}' is not a C# name (letters, digits and _, not first a digit)"
    if value in KEYWORDS:
        return f"'{value}' is a C# keyword"
    return None


class CSharpOptions(IndexOptions):
    """``path`` (in the project, ``.cs``); ``namespace`` (dotted, none by default);
    ``class_name`` (the file's name by default); ``root``, where the output folder's files
    lie in the Unity project (``Assets`` by default; ``Assets/Resources/Art`` for
    ``Resources.Load``)."""

    suffix: ClassVar[str] = ".cs"
    namespace: str | None = None
    class_name: str | None = None
    root: str = "Assets"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        for part in (value or "").split(".") if value is not None else ():
            problem = _name_problem(part)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        problem = path_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _class(self) -> CSharpOptions:
        name = self.class_name or PurePosixPath(self.path).stem
        problem = _name_problem(name)
        if problem is not None:
            hint = "" if self.class_name else "; set class_name"
            raise ValueError(f"{problem}{hint}")
        return self

    @property
    def type_name(self) -> str:
        """The generated class's name."""
        return self.class_name or PurePosixPath(self.path).stem


def unity_paths(root: str, path: str) -> tuple[str, str | None]:
    """``(Path, ResourcePath)`` of an output-relative file under ``root``."""
    full = f"{root}/{path}" if root else path
    parts = root.split("/") if root else []
    if "Resources" not in parts:
        return full, None
    inside = parts[len(parts) - parts[::-1].index("Resources") :]
    stem = str(PurePosixPath(path).with_suffix(""))
    return full, "/".join([*inside, stem])


class CSharpIndex(IndexExporter):
    """``public static class GameAssets`` with one field per item, and ``All``."""

    name: ClassVar[str] = "csharp"
    Options: ClassVar[type[ExportOptions]] = CSharpOptions
    case: ClassVar[Case] = "pascal"
    keywords: ClassVar[frozenset[str]] = MEMBERS

    def identifier(self, asset_id: str) -> str:
        """PascalCase; the class's own name and its members' get a trailing ``_``."""
        type_name = cast(CSharpOptions, self.options).type_name
        return identifier(asset_id, "pascal", MEMBERS | {type_name})

    def text(self, named: Sequence[Named]) -> str:
        """The file: the class, nested in its namespace when one is set."""
        options = cast(CSharpOptions, self.options)
        body = [f"public static class {options.type_name}", "{"]
        body += _indent(ENTRY.splitlines())
        body += [
            f"    public static readonly Entry {n.name} = {_new(n.item, options)};" for n in named
        ]
        body += [
            "",
            f"    public static readonly {_DICT}.IReadOnlyDictionary<string, Entry> All =",
            f"        new {_DICT}.Dictionary<string, Entry>",
            "        {",
            *(f"            {{ {literal(n.item.id)}, {n.name} }}," for n in named),
            "        };",
            "}",
        ]
        if options.namespace:
            body = [f"namespace {options.namespace}", "{", *_indent(body), "}"]
        head = [
            "// <auto-generated>",
            "// Generated by assetpipe from the manifest; the next build rewrites it: do not edit.",
            "// </auto-generated>",
        ]
        return "\n".join([*head, *body]) + "\n"


def _new(item: Item, options: CSharpOptions) -> str:
    path, resource = unity_paths(options.root, item.path)
    tags = "new string[] { " + ", ".join(literal(t) for t in item.tags) + " }"
    args = [
        literal(item.id),
        literal(item.kind),
        literal(path),
        literal(resource),
        str(item.width),
        str(item.height),
        literal(item.format),
        tags if item.tags else "new string[0]",
        literal(item.sha256),
        literal(item.sheet),
        str(item.x),
        str(item.y),
    ]
    return f"new Entry({', '.join(args)})"


def _indent(lines: Sequence[str]) -> list[str]:
    return [f"    {line}" if line else "" for line in lines]
