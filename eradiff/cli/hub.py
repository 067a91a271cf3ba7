"""Model specs on the command line, checked before torch is imported: local paths and hub ids.

A spec that names no local file or folder must be a hub id (``owner/name``, the loader's rule in
:mod:`eradiff.models.loading`). Unless the hub is off (``--offline`` or ``HF_HUB_OFFLINE``), one
short probe asks whether the hub answers at all: when it does not, a model in the local cache
loads from there (as with ``--offline``), and a model that is not cached fails at once with one
line, instead of huggingface_hub's five retries (about 30 s of retry messages).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from eradiff.options import CLASSICAL_MODELS

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PROBE_TIMEOUT = 3.0
_TRUE = ("1", "on", "yes", "true")


class ModelSpecError(ValueError):
    """A ``--model`` that names nothing loadable, found before any model code runs."""


def hub_disabled() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids the hub in this process."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def probe_hub(endpoint: str, *, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the hub at ``endpoint`` cannot be reached (one HEAD request), or None when it answers.

    Any HTTP status counts as an answer; proxies from the environment are used as the hub's client
    would use them.
    """
    request = urllib.request.Request(endpoint, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed HF_ENDPOINT
        return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _in_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)


def check_model_spec(spec: str | None, *, offline: bool) -> bool:
    """Check ``--model`` before loading; returns whether to load offline.

    Args:
        spec: the ``--model`` value (None or ``"default"``: the built-in model).
        offline: the user's ``--offline``.

    Returns:
        ``offline``, or True when the hub cannot be reached but the model is in the local cache.

    Raises:
        ModelSpecError: no such local path and not a hub id, or a hub id that is neither
            reachable nor cached (one line).
    """
    if spec is None or spec in ("default", *CLASSICAL_MODELS) or Path(spec).expanduser().exists():
        return offline
    if Path(spec).suffix.lower() == ".safetensors" or not HUB_ID.match(spec):
        raise ModelSpecError(f"model {spec!r}: no such file or folder, and not a hub id (owner/name)")
    if offline or hub_disabled():
        return offline
    from huggingface_hub import constants

    reason = probe_hub(constants.ENDPOINT)
    if reason is None:
        return offline
    if _in_cache(spec):
        return True
    raise ModelSpecError(
        f"model {spec!r}: the Hugging Face hub ({constants.ENDPOINT}) cannot be reached ({reason}) and the model "
        "is not in the local cache; connect to the internet, or pass a local folder or .safetensors file"
    )


__all__ = ["HUB_ID", "ModelSpecError", "check_model_spec", "hub_disabled", "probe_hub"]
