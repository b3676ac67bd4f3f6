"""Fetching a message's remote images, once a person allowed it for that message or sender.

Bounded in every direction, because the URLs come from a stranger's message: http(s) only, a few
seconds per image, a size cap, a count cap, redirects followed only to http(s), certificates verified.
A failure leaves that image out; it never raises.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from deskmail.net.tls import client_context

MAX_IMAGES = 50
MAX_BYTES = 5 * 1024 * 1024
TIMEOUT = 8.0


def _fetch(url: str) -> tuple[str, str, bytes] | None:
    if not url.lower().startswith(("http://", "https://")):
        return None
    request = urllib.request.Request(url, headers={"User-Agent": "deskmail", "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=client_context()) as reply:
            if not reply.geturl().lower().startswith(("http://", "https://")):
                return None
            data = reply.read(MAX_BYTES + 1)
            kind = reply.headers.get_content_type()
    except (OSError, ValueError):
        return None
    if len(data) > MAX_BYTES or not kind.startswith("image/"):
        return None
    return url, kind, data


def fetch_images(urls: Sequence[str]) -> dict[str, tuple[str, bytes]]:
    """url -> (content type, bytes) for the images that could be fetched (at most :data:`MAX_IMAGES`)."""
    wanted = list(dict.fromkeys(urls))[:MAX_IMAGES]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(6, len(wanted))) as pool:
        found = [r for r in pool.map(_fetch, wanted) if r is not None]
    return {url: (kind, data) for url, kind, data in found}
