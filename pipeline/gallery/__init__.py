"""The review page of the output tree, static (``output/index.html``) or served.

- :mod:`~pipeline.gallery.thumbs`: WebP thumbnails named by content hash;
- :mod:`~pipeline.gallery.review`: picks, rejections and approval from the plan and lock;
- :mod:`~pipeline.gallery.model`: the page as plain values (groups, cards);
- :mod:`~pipeline.gallery.page`: the one template, rendered read-only or interactive.
"""

from pipeline.gallery.model import NOT_DELIVERED, Card, Group, PageModel, page_model
from pipeline.gallery.page import (
    INDEX,
    LIVE_CSP,
    SCRIPT_HASH,
    STATIC_CSP,
    Live,
    render_page,
    write_gallery,
)
from pipeline.gallery.review import AssetReview, ReviewData, review_data
from pipeline.gallery.thumbs import (
    THUMB_EDGE,
    encode_thumbnail,
    has_thumbnail,
    keep_thumbnail,
    link_thumbnail,
    thumbnail_of,
    write_thumbnail,
)
from pipeline.output import THUMB_DIR

__all__ = [
    "INDEX",
    "LIVE_CSP",
    "NOT_DELIVERED",
    "SCRIPT_HASH",
    "STATIC_CSP",
    "THUMB_DIR",
    "THUMB_EDGE",
    "AssetReview",
    "Card",
    "Group",
    "Live",
    "PageModel",
    "ReviewData",
    "encode_thumbnail",
    "has_thumbnail",
    "keep_thumbnail",
    "link_thumbnail",
    "page_model",
    "render_page",
    "review_data",
    "thumbnail_of",
    "write_gallery",
    "write_thumbnail",
]
