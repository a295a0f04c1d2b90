"""Where ogdata keeps data and which Hub it talks to, read from the environment at call time.

Every value is read when asked for (not at import), so a test or a long-lived process can
change OGDATA_HOME, HF_ENDPOINT or HF_HUB_OFFLINE and the next call follows.
"""

from __future__ import annotations

import os
from pathlib import Path

from ogdata.errors import InvalidArgumentError

DEFAULT_HOME = "~/.cache/ogdata"
DEFAULT_HUB_ORG = "ogdata"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_STREAM_CACHE = 1 << 30    # bytes of whole shard files a streamed dataset may keep on disk
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_TRUE = {"1", "on", "yes", "true"}


def home() -> Path:
    """The cache root: $OGDATA_HOME, else ~/.cache/ogdata."""
    return Path(os.environ.get("OGDATA_HOME") or DEFAULT_HOME).expanduser()


def datasets_dir() -> Path:
    """Installed datasets live at <home>/datasets/<env-id>/<tier>-v<N>/."""
    return home() / "datasets"


def hub_org() -> str:
    """The Hub organisation (or user) that hosts one dataset repo per environment: $OGDATA_HUB_ORG."""
    return (os.environ.get("OGDATA_HUB_ORG") or DEFAULT_HUB_ORG).strip("/")


def hub_endpoint() -> str:
    """The Hub's base URL: $HF_ENDPOINT (a mirror or a local server), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    """$HF_TOKEN, or None to let huggingface_hub use the saved login."""
    return os.environ.get("HF_TOKEN") or None


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: no network calls at all."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def stream_cache_dir() -> Path:
    """Where streamed datasets keep the shards they fetched: <home>/stream-cache (shared by all of them)."""
    return home() / "stream-cache"


def stream_cache_bytes() -> int:
    """The stream cache's bound: $OGDATA_STREAM_CACHE (bytes, or with a K/M/G/T suffix, e.g. 512M), else 1 GiB."""
    raw = (os.environ.get("OGDATA_STREAM_CACHE") or "").strip()
    if not raw:
        return DEFAULT_STREAM_CACHE
    num, unit = raw.rstrip("bBiI"), ""
    if num and num[-1].lower() in _UNITS:
        num, unit = num[:-1], num[-1].lower()
    try:
        value = int(float(num) * _UNITS[unit])
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidArgumentError(f"OGDATA_STREAM_CACHE={raw!r} is not a size; set it to bytes or a size such as "
                                   "'512M' or '4G'")
    return value
