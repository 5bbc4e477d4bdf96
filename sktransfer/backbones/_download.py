"""Pretrained weights downloaded on first use, into the caches each ecosystem already uses.

Two kinds of source, each with the cache its own library fills, so a file fetched
by torchvision, timm or transformers is reused here and the other way round:

- a URL (torchvision's weights, timm's older ones): into the torch hub cache
  ``$TORCH_HOME/hub/checkpoints`` under the URL's file name, its SHA-256 checked
  against the prefix in that name as ``torch.hub`` does (``check_hash``);
- a Hugging Face Hub repository (``timm/...``, ``hf/<repo_id>``): through
  ``huggingface_hub`` into its cache (``$HF_HOME/hub``, ``snapshots/<revision>/``).

``SKTRANSFER_OFFLINE=1`` (or the Hub's ``HF_HUB_OFFLINE=1``) makes no network
attempt. A URL download goes to a temporary file in the cache folder, renamed into
place only when complete and verified, under a file lock, so processes asking for
the same file at once end with one good file. ``torch.hub.download_url_to_file``
would do the rest, but it opens the URL without a timeout (an unanswering host
hangs it forever) and keeps a body cut short when the file name holds no hash;
hence the few lines of urllib here. The Hub's own client retries an unreachable
host for minutes, so the host is first asked to answer within the timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from .._env import env_flag
from .._files import atomic_output

__all__ = ["WeightsDownloadError", "offline", "offline_reason", "download_timeout",
           "fetch_url", "fetch_hub_file", "hub_cache_dir",
           "torch_checkpoints_in", "hub_cache_in", "copy_file",
           "download_advice"]

TIMEOUT_VARIABLE = "SKTRANSFER_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20


def download_advice(name: str) -> str:
    """How to bring backbone ``name``'s weights to a machine without network, in words."""
    return (f"on a machine with network access run `sktransfer download {name} --to DIR` "
            f"(sktransfer.download_weights({name!r}, to=DIR) in Python), copy DIR here and "
            f"set TORCH_HOME=DIR/torch and HF_HUB_CACHE=DIR/huggingface/hub")


class WeightsDownloadError(ConnectionError):
    """Pretrained weights could not be downloaded (no answer, cut short, wrong hash)."""


def offline() -> bool:
    """Whether downloads are switched off: ``SKTRANSFER_OFFLINE`` or ``HF_HUB_OFFLINE``."""
    return offline_reason() is not None


def offline_reason() -> str | None:
    """``"SKTRANSFER_OFFLINE=1 is set"`` (or the Hub's switch), None when downloads are on."""
    if env_flag("SKTRANSFER_OFFLINE"):
        return "SKTRANSFER_OFFLINE is set"
    # the Hub reads its switch leniently (anything but a true value is off); so do we
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE is set"
    return None


def download_timeout() -> float:
    """Seconds a silent host is waited for (``SKTRANSFER_DOWNLOAD_TIMEOUT``, default 30)."""
    raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"environment variable {TIMEOUT_VARIABLE}={raw!r} is not a positive "
                         f"number of seconds (or leave it unset for {DEFAULT_TIMEOUT:g})")
    return value


def torch_checkpoints_in(folder) -> Path:
    """Where ``download --to folder`` puts URL weights: a ``TORCH_HOME`` of ``folder/torch``."""
    return Path(os.fspath(folder)).expanduser() / "torch" / "hub" / "checkpoints"


def hub_cache_in(folder) -> Path:
    """Where ``download --to folder`` puts Hub weights: an ``HF_HUB_CACHE`` of
    ``folder/huggingface/hub``."""
    return Path(os.fspath(folder)).expanduser() / "huggingface" / "hub"


def copy_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` through a temporary file renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _unreachable(name: str, url: str, target, exc: BaseException) -> WeightsDownloadError:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        reason = f"no answer within {download_timeout():g} s ({TIMEOUT_VARIABLE})"
    return WeightsDownloadError(
        f"could not download the pretrained weights of backbone {name!r} from {url}: {reason}. "
        f"They go to {str(target)!r}; nothing was saved there. To fetch them, "
        f"{download_advice(name)}; or set SKTRANSFER_OFFLINE=1 to make no "
        f"attempt; weights=None trains from random initialisation.")


def fetch_url(url: str, target: Path, name: str, *, hash_prefix: str | None = None,
              progress: bool = True) -> Path:
    """Download ``url`` to ``target`` unless it is there; return ``target``.

    Under a file lock next to ``target``; into a temporary file renamed into place
    only when the body is complete (``Content-Length``) and, with ``hash_prefix``,
    its SHA-256 starts with it. Anything else raises :class:`WeightsDownloadError`
    and leaves no file behind.
    """
    from filelock import FileLock

    target = Path(target)
    locks = target.parent / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(
            f"cannot write the pretrained weights of backbone {name!r} to {str(target.parent)!r} "
            f"({exc.strerror or exc}); set TORCH_HOME to a writable folder, or pass "
            f"weights='/path/to/file.pth'") from exc
    with FileLock(str(locks / f"{target.name}.lock")):
        if target.is_file():  # another process finished it while we waited
            return target
        with atomic_output(target) as tmp:
            _download(url, Path(tmp), target, name, hash_prefix, progress)
    return target


def _download(url, tmp: Path, target: Path, name, hash_prefix, progress) -> None:
    from tqdm.auto import tqdm

    from .._console import shows_progress

    request = urllib.request.Request(url, headers={"User-Agent": "sktransfer (torch.hub)"})
    sha256, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(request, timeout=download_timeout()) as response, \
                open(tmp, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, disable=not (progress and shows_progress()), unit="B", unit_scale=True,
                      unit_divisor=1024, desc=target.name, leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    sha256.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _unreachable(name, url, target, exc) from exc
    if expected is not None and received != expected:
        raise WeightsDownloadError(
            f"the download of {url} (backbone {name!r}) stopped after {received} of {expected} "
            f"bytes: the connection closed early. Nothing was saved to {str(target)!r}; run "
            f"again to retry.")
    digest = sha256.hexdigest()
    if hash_prefix and not digest.startswith(hash_prefix):
        raise WeightsDownloadError(
            f"the file downloaded from {url} (backbone {name!r}) has SHA-256 {digest}, but its "
            f"name promises one starting with {hash_prefix!r}: it was discarded, nothing was "
            f"saved to {str(target)!r}. A proxy or a captive portal may have answered instead "
            f"of the server; retry on another network.")


_ANSWERED: dict[str, float] = {}  # endpoint -> when it last answered


def _check_hub_reachable(name: str, url: str, target) -> None:
    """Ask the Hub host to answer within the timeout (the Hub client would retry a silent
    host for minutes); an answer counts for a minute, for the next files of a checkpoint."""
    endpoint = (_endpoint() or "https://huggingface.co").rstrip("/")
    if time.monotonic() - _ANSWERED.get(endpoint, -3600.0) < 60:
        return
    probe = urllib.request.Request(endpoint + "/api/whoami-v2", method="HEAD")
    try:
        urllib.request.urlopen(probe, timeout=download_timeout()).close()
    except urllib.error.HTTPError:
        pass  # the host answers (401 without a token): reachable
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _unreachable(name, url, target, exc) from exc
    _ANSWERED[endpoint] = time.monotonic()


def _endpoint() -> str | None:
    # read now, not when huggingface_hub was imported, so a changed HF_ENDPOINT is seen
    return os.environ.get("HF_ENDPOINT") or None


def fetch_hub_file(repo_id: str, filenames, name: str, *, cache_dir=None, missing=None,
                   optional: bool = False) -> Path | None:
    """The first of ``filenames`` in Hub repository ``repo_id``, from the Hub cache or
    downloaded into it.

    Offline and not cached: ``missing()`` (an exception) is raised, or None returned
    when ``optional``. A repository without any of the files: ``FileNotFoundError``,
    or None when ``optional``.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError

    cache_dir = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    if offline():
        if optional:
            return None
        raise missing()
    url = f"{(_endpoint() or 'https://huggingface.co').rstrip('/')}/{repo_id}"
    _check_hub_reachable(name, url, cache_dir)
    for filename in filenames:
        try:
            with _hub_errors(name, url, cache_dir):
                return Path(hf_hub_download(repo_id, filename, cache_dir=str(cache_dir),
                                            endpoint=_endpoint(),
                                            etag_timeout=download_timeout()))
        except EntryNotFoundError:
            continue
    if optional:
        return None
    raise FileNotFoundError(f"Hub repository {repo_id!r} (backbone {name!r}) has none of "
                            f"{list(filenames)}; pass weights='/path/to/file.safetensors'")


@contextlib.contextmanager
def _hub_errors(name, url, cache_dir):
    """The Hub client's errors said with the backbone, the URL and the cache folder.

    A file missing from a repository (``EntryNotFoundError``) passes through: the
    caller tries the next file name.
    """
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError,
                                        LocalEntryNotFoundError, RepositoryNotFoundError)

    try:
        yield
    except GatedRepoError as exc:
        raise PermissionError(
            f"{url} (backbone {name!r}) is a gated repository: accept its terms on the Hub "
            f"and log in (`hf auth login`) first") from exc
    except RepositoryNotFoundError as exc:
        raise ValueError(
            f"no repository {url} on the Hugging Face Hub (backbone {name!r}); check the name, "
            f"or log in (`hf auth login`) for a private one") from exc
    except LocalEntryNotFoundError as exc:  # the Hub stopped answering mid-way
        raise _unreachable(name, url, cache_dir, exc.__cause__ or exc) from exc
    except EntryNotFoundError:
        raise
    except OSError as exc:  # HfHubHTTPError, connection errors, a full disk
        raise _unreachable(name, url, cache_dir, exc) from exc
    except Exception as exc:
        # the Hub client's HTTP library (httpx, or requests in older releases) has its own
        # error classes for a dropped or silent connection
        if type(exc).__module__.split(".")[0] in _HTTP_LIBRARIES:
            raise _unreachable(name, url, cache_dir, exc) from exc
        raise


_HTTP_LIBRARIES = frozenset({"httpx", "httpx2", "httpcore", "requests", "urllib3"})
