"""User-written Markdown (postmortems) to HTML that is safe to put on the public page.

markdown-it-py renders CommonMark with raw HTML switched off, and nh3 (the Rust ammonia
sanitiser) then keeps only a small allow-list of tags and attributes, so neither a
stray <script> nor a javascript: link survives, however the Markdown is written.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_TAGS = {"p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre",
         "blockquote", "a", "hr", "table", "thead", "tbody", "tr", "th", "td"}


def render_markdown(text: str) -> Markup:
    """Sanitised HTML for `text`; links keep only http(s) and mailto targets and open nothing on their own."""
    html = _MD.render(text)
    clean = nh3.clean(html, tags=_TAGS, attributes={"a": {"href", "title"}}, url_schemes={"http", "https", "mailto"},
                      link_rel="nofollow noopener noreferrer")
    return Markup(clean)
