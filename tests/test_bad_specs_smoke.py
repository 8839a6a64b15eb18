"""A first bad spec through the whole CLI: the shape every spec error must have."""

from __future__ import annotations


def test_unknown_key_reports_file_line_col_and_suggestion(project, run):
    """A misspelt asset key exits 2 with file:line:col and a did-you-mean, no traceback."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: sword
                prompt: a sword
                sise: 64x64
        """,
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "specs/icons.yaml:4:5: unknown key 'sise'" in result.err
    assert "did you mean 'size'?" in result.err
    assert "Traceback" not in result.err
