"""Models on the Hugging Face Hub: ``hf-hub:ORG/NAME[@REVISION]`` and ``local-dir:PATH`` (a folder in the same
layout, :mod:`dymn.models.repo`). Downloads go through ``huggingface_hub`` (the ``[hub]`` extra), so its cache,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, tokens and revisions behave as users know them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._version import __version__
from ..models.repo import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from ..util.errors import DownloadError, UsageError, WeightsError, first_line, require

HF_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_repo_spec(spec) -> bool:
    """Whether ``spec`` names a repo (``hf-hub:`` or ``local-dir:``)."""
    return isinstance(spec, str) and spec.startswith((HF_PREFIX, LOCAL_PREFIX))


def parse_hf(spec: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/NAME[@REVISION]`` -> (repo id, revision or None)."""
    body = spec[len(HF_PREFIX) :]
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise UsageError(f"{spec!r}: a Hub model is named hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    if "@" in body and not revision:
        raise UsageError(f"{spec!r}: give a revision after @ (a branch, tag or commit) or leave the @ out")
    return repo_id, revision or None


def _hint(repo_id: str) -> str:
    return f"huggingface-cli download {repo_id} (or run once online)"


def download(spec: str) -> Path:
    """The local folder of a repo spec: a ``local-dir:`` folder as it is, a ``hf-hub:`` repo's files fetched into
    (or found in, offline) the Hugging Face cache. Only ``config.json``, ``model.safetensors`` and the card."""
    if spec.startswith(LOCAL_PREFIX):
        folder = Path(spec[len(LOCAL_PREFIX) :]).expanduser()
        if not folder.is_dir():
            raise UsageError(f"{spec}: no such folder")
        return folder
    repo_id, revision = parse_hf(spec)
    require("huggingface_hub", "hub", "loading models from the Hugging Face Hub")
    from huggingface_hub import errors, hf_hub_download

    def fetch(name: str, needed: bool = True) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, name, revision=revision, library_name="dymn",
                                        library_version=__version__))  # fmt: skip
        except errors.GatedRepoError:
            raise DownloadError(f"{spec}: a gated or private repo: log in with `huggingface-cli login` or set "
                                "HF_TOKEN to a token with access") from None  # fmt: skip
        except errors.RepositoryNotFoundError:
            raise DownloadError(f"{spec}: no such repo on {_endpoint()} (or it is private: log in with "
                                "`huggingface-cli login` or set HF_TOKEN)") from None  # fmt: skip
        except errors.RevisionNotFoundError:
            raise DownloadError(f"{spec}: {repo_id} has no revision {revision!r}") from None
        except errors.LocalEntryNotFoundError:
            if not needed:
                return None
            if _offline():
                raise DownloadError(f"{spec}: offline (HF_HUB_OFFLINE) and not in the Hugging Face cache: get it "
                                    f"once with {_hint(repo_id)}") from None  # fmt: skip
            raise DownloadError(f"{spec}: cannot reach {_endpoint()} and the files are not cached: check the "
                                f"network, or get them with {_hint(repo_id)}") from None  # fmt: skip
        except errors.EntryNotFoundError:
            if not needed:
                return None
            if name == WEIGHTS_NAME:
                raise WeightsError(f"{spec}: the repo has no {WEIGHTS_NAME}: dymn loads weights from the Hub only "
                                   "as safetensors, never a pickle (pytorch_model.bin)") from None  # fmt: skip
            raise WeightsError(f"{spec}: the repo has no {name}: not a dymn model repo") from None
        except Exception as exc:  # noqa: BLE001 (a cut download, a server error: the client's HTTP library's own)
            raise DownloadError(f"{spec}: download of {name} failed ({first_line(exc)}); nothing was kept, "
                                "run it again") from None  # fmt: skip

    config = fetch(CONFIG_NAME)
    fetch(WEIGHTS_NAME)
    fetch(CARD_NAME, needed=False)
    return config.parent


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def repo_hint(spec: str) -> str:
    """A hint for a name that is neither a registry name nor a file: how a Hub model is named."""
    if _REPO_ID.match(spec) and not os.path.exists(spec):
        return f"; a model on the Hugging Face Hub is loaded as hf-hub:{spec}"
    return "; a model on the Hugging Face Hub is loaded as hf-hub:ORG/NAME, a repo folder as local-dir:PATH"
