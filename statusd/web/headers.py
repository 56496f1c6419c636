"""Security headers on every answer: no MIME sniffing, no full Referer to other sites, and on HTML a CSP.

The pages use no script at all, a stylesheet from /static, and forms that post to themselves; the
policy allows exactly that, and no page may be framed (clickjacking of the console or of the
acknowledge links). The report form hides its honeypot field with one inline `style` attribute;
that attribute alone is allowed by its hash ('unsafe-hashes'), not inline styles in general.
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

#: Inline `style` attributes the templates use, allowed one by one (statusd/reports/templates/report_form.html).
INLINE_STYLE_ATTRIBUTES = ("position:absolute;left:-10000px",)


def _style_hash(style: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "style-src 'self' 'unsafe-hashes' " + " ".join(_style_hash(s) for s in INLINE_STYLE_ATTRIBUTES),
    "img-src 'self' data:",
    "connect-src 'self'",  # the live page's Server-Sent Events
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))

#: On every answer, whatever its type.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}

#: On HTML answers as well.
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` handler: adds the headers to every answer just before it is sent.

    A signal rather than a middleware: it also reaches answers a handler streams itself (live
    events, which are prepared before a middleware would see them) and aiohttp's own 404 and 405.
    A header a handler set itself is kept.
    """
    for name, value in COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)
