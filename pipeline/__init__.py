"""assetpipe: a declarative, cached, concurrent batch pipeline for OpenAI image models.

The import package is ``pipeline``; the distribution and the command are ``assetpipe``.
"""

__version__ = "0.1.0"
