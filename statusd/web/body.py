"""Request bodies as sent: read within a size limit and decoded from their Content-Encoding here.

aiohttp's own decoding is off (`web_application` in statusd.web.application). With it on, a body that is
not the gzip (deflate, br, zstd) it claims to be failed in aiohttp's parser when the error
showed only at the body's end: the client got a plain-text 400 and the log a traceback of its
mistake, and the connection was dropped. Decoding here answers every such body with a 400
naming "body", caps the decoded size as well as the sent one (a small gzip can hold a
gigabyte of zeros), and leaves the connection usable.
"""

from __future__ import annotations

import sys
import zlib

import brotli
from aiohttp import web

from statusd.core.errors import ValidationError

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

#: Content codings a request body may come in (case-insensitive); "identity" is the body as it is.
CODINGS = ("identity", "gzip", "deflate", "br", "zstd")


class UnsupportedCoding(ValidationError):
    """A Content-Encoding not in CODINGS (e.g. "compress", or two codings such as "gzip, br")."""

    status = 415


class TooLarge(ValidationError):
    """The body, as sent or once decoded, is over the limit."""

    status = 413


def content_coding(request: web.Request) -> str:
    """The request's Content-Encoding, one of CODINGS ("identity" when there is none); else UnsupportedCoding."""
    given = ", ".join(request.headers.getall("Content-Encoding", ()))  # two headers are two codings
    coding = (given or "identity").strip().lower()
    coding = {"x-gzip": "gzip"}.get(coding, coding)  # RFC 9110 8.4.1.3: a recipient should take it as gzip
    if coding not in CODINGS:
        raise UnsupportedCoding("Content-Encoding", f"{given!r} is not supported; "
                                                    f"send the body as it is or in one of: {', '.join(CODINGS[1:])}")
    return coding


async def read_body(request: web.Request, limit: int, setting: str) -> bytes:
    """The request's body decoded from its Content-Encoding, at most `limit` bytes as sent and once decoded.

    `setting` names the limit's config key in the error. Raises UnsupportedCoding, TooLarge, or
    ValidationError on "body" when the bytes cannot be read or are not what the coding says.
    """
    coding = content_coding(request)
    too_large = TooLarge("body", f"is larger than {limit} bytes ({setting})")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = bytearray()
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            raw += chunk
            if len(raw) > limit:
                raise too_large
    except (TooLarge, web.HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - aiohttp's payload errors (e.g. bad chunked framing): the sender's
        raise ValidationError("body", f"could not be read: {getattr(exc, 'message', None) or exc}") from None
    if coding == "identity" or not raw:
        return bytes(raw)
    try:
        decoded = _decode(bytes(raw), coding, limit)
    except (zlib.error, brotli.error, zstd.ZstdError) as exc:
        raise ValidationError("body", f"is not valid {coding} data, as its Content-Encoding says ({exc})") from None
    except _TooManyFrames:
        raise ValidationError("body", f"is more than {MAX_FRAMES} {coding} streams run together; send one") from None
    if decoded is None:
        raise ValidationError("body", f"is not valid {coding} data, as its Content-Encoding says (it ends early)")
    if len(decoded) > limit:
        raise TooLarge("body", f"is larger than {limit} bytes once decoded ({setting})")
    return decoded


MAX_FRAMES = 16  # concatenated gzip members or zstd frames in one body


class _TooManyFrames(Exception):
    pass


def _decode(raw: bytes, coding: str, limit: int) -> bytes | None:
    """`raw` decoded, or None if it ends before its last frame does; stops soon after `limit` bytes of output.

    Concatenated gzip members and zstd frames decode one after the other, as a stream would, up
    to MAX_FRAMES: each one copies what is left of the body, so a megabyte of empty frames would
    otherwise hold the event loop for seconds.
    """
    if coding == "br":  # one stream: brotli has no members or frames to run together
        brotli_stream = brotli.Decompressor()
        out = brotli_stream.process(raw, output_buffer_limit=limit + 1)
        return out if brotli_stream.is_finished() or len(out) > limit else None
    out = bytearray()
    rest = raw
    frames = 0
    while rest and len(out) <= limit:
        frames += 1
        if frames > MAX_FRAMES:
            raise _TooManyFrames()
        room = limit + 1 - len(out)
        if coding == "zstd":
            frame = zstd.ZstdDecompressor()
            out += frame.decompress(rest, max_length=room)
            done, rest = frame.eof, frame.unused_data
        else:
            # "deflate" is meant to be zlib-wrapped (RFC 9110) but is often sent raw, as browsers accept it.
            wbits = zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS if rest[0] & 0x0F == 8 else -zlib.MAX_WBITS
            stream = zlib.decompressobj(wbits)
            out += stream.decompress(rest, room)
            done, rest = stream.eof, stream.unused_data
        if not done:
            return bytes(out) if len(out) > limit else None
    return bytes(out)
