"""Models as Hugging Face Hub repos: save -> local-dir: -> load round trips, the real huggingface_hub client against
a stand-in Hub on 127.0.0.1 (download, cache, offline), every bad repo as one clear error, and what a push hands
to HfApi."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import dymn
from dymn.hub.publish import push_to_hub, save_pretrained

from .hubserver import HubStandIn, Repo

hf = pytest.importorskip("huggingface_hub", reason="the [hub] extra is not installed")


def _outputs_equal(a, b, shape=(2, 1, 128, 300)):
    x = torch.randn(*shape)
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            torch.testing.assert_close(u, v, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["mn01_as", "dymn04_as", "fmn04"])
def test_save_and_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = dymn.load(name, pretrained=False)
    folder = model.save_pretrained(tmp_path / "repo")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    for spec in (f"local-dir:{folder}", str(folder)):  # a repo folder also loads by its path
        again = dymn.load(spec)
        _outputs_equal(model, again)
        for field in ("labels", "frontend", "task", "level", "clip_seconds", "arch", "embed_dim"):
            assert getattr(again.info, field) == getattr(model.info, field), field
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "dymn" and config["format_version"] == 1
    assert config["frontend"]["sample_rate"] == model.info.sample_rate and config["level"] == model.info.level
    assert len(config["audioset_ids"]) == model.info.num_classes  # AudioSet (or AudioSet-Strong) labels


def test_ensemble_members_round_trip(tmp_path):
    torch.manual_seed(0)
    a, b = dymn.load("mn01_as", pretrained=False), dymn.load("dymn04_as", pretrained=False)
    pa, pb = a.save_pretrained(tmp_path / "a"), b.save_pretrained(tmp_path / "b")
    ref = dymn.Ensemble([dymn.optimize(a), dymn.optimize(b)])
    again = dymn.load(f"local-dir:{pa},local-dir:{pb}")
    wave = torch.randn(2, 32000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(again(wave)[0], ref(wave)[0], atol=1e-5, rtol=0)
    with pytest.raises(dymn.UsageError, match="ensemble"):
        save_pretrained(ref, tmp_path / "ens")
    with pytest.raises(dymn.UsageError, match="optimized"):  # its state dict is not the network's
        save_pretrained(dymn.optimize(a, backend="torch"), tmp_path / "fast")


def _fine_tuned(tmp_path):
    torch.manual_seed(1)
    model = dymn.load("mn01_as", pretrained=False, num_classes=3)
    results = {"val_accuracy": 0.875, "val_clips": 8}
    model.info = model.info.replace(labels=("dog", "cat", "bird"), task="singlelabel", base_model="mn01_as",
                                    source="file run/model.pt", results=results)  # fmt: skip
    return model


def test_single_label_fine_tune_round_trips_with_its_card(tmp_path):
    model = _fine_tuned(tmp_path)
    folder = model.save_pretrained(tmp_path / "repo")
    again = dymn.load(f"local-dir:{folder}")
    assert again.info.task == "singlelabel" and again.info.labels == ("dog", "cat", "bird")
    assert again.info.results == {"val_accuracy": 0.875, "val_clips": 8} and again.info.base_model == "mn01_as"
    waves = [np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1]
    np.testing.assert_allclose(dymn.Tagger(again).predict(waves), dymn.Tagger(model).predict(waves), atol=1e-6)
    card = hf.ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "dymn" and data["pipeline_tag"] == "audio-classification"
    assert data["license"] == "mit" and data["base_model"] == "mn01_as"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["val_accuracy"] == 0.875
    assert all(lab in card.text for lab in ("dog", "cat", "bird")) and "MIT licence" in card.text
    assert "hf-hub:ORG/NAME" in card.text


def test_a_hub_name_needs_its_prefix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dymn.WeightsError, match="no such weights file; .* hf-hub:someone/some-model"):
        dymn.load("someone/some-model")
    with pytest.raises(dymn.UnknownModelError, match="hf-hub:ORG/NAME"):
        dymn.load("no_such_model")
    with pytest.raises(dymn.UsageError, match="hf-hub:ORG/NAME"):
        dymn.load("hf-hub:just-a-name")


def _env(tmp_path, hub, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HUB_CACHE=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        DYMN_CACHE=str(tmp_path / "dymn"),
        DYMN_BACKEND="torch",
    )
    env.update(extra)
    return env


def _dymn(args, env):
    return subprocess.run([sys.executable, "-m", "dymn.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_tag_downloads_caches_and_then_works_offline(tmp_path, tone_wav):
    torch.manual_seed(0)
    folder = dymn.load("mn01_as", pretrained=False).save_pretrained(tmp_path / "repo")
    with HubStandIn() as hub:
        hub.repos["org/tiny"] = Repo.from_folder(folder)
        online = _dymn(["tag", str(tone_wav), "--model", "hf-hub:org/tiny", "--format", "json"], _env(tmp_path, hub))
        assert online.returncode == 0, online.stderr
        assert any("/resolve/main/model.safetensors" in r for r in hub.requests)
        seen = len(hub.requests)
        offline = _dymn(["tag", str(tone_wav), "--model", "hf-hub:org/tiny", "--format", "json"],
                        _env(tmp_path, hub, HF_HUB_OFFLINE="1"))  # fmt: skip
        assert offline.returncode == 0, offline.stderr
        assert len(hub.requests) == seen  # nothing asked of the network
        assert json.loads(offline.stdout) == json.loads(online.stdout)
        missing = _dymn(["tag", str(tone_wav), "--model", "hf-hub:org/other"], _env(tmp_path, hub, HF_HUB_OFFLINE="1"))
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        assert "offline" in missing.stderr and "huggingface-cli download org/other" in missing.stderr
        pinned = _dymn(["info", "hf-hub:org/tiny@" + hub.repos["org/tiny"].commit], _env(tmp_path, hub))
        assert pinned.returncode == 0 and "mn01_as" in pinned.stdout, pinned.stderr


_TRY = r"""
import json, sys
import dymn
from dymn.hub.publish import push_to_hub, save_pretrained
for spec in sys.argv[1:]:
    try:
        dymn.load(spec)
        print(json.dumps([spec, "loaded", 0, ""]))
    except dymn.DymnError as exc:
        print(json.dumps([spec, type(exc).__name__, exc.exit_code, str(exc)]))
"""


def test_every_bad_repo_is_one_clear_error(tmp_path):
    torch.manual_seed(0)
    good = dymn.load("mn01_as", pretrained=False).save_pretrained(tmp_path / "good")
    files = {p.name: p.read_bytes() for p in good.iterdir()}
    config = json.loads(files["config.json"])

    def with_config(**changes):
        cfg = {k: v for k, v in {**config, **changes}.items() if v is not None}
        return {**files, "config.json": json.dumps(cfg).encode()}

    other = tmp_path / "dymn.safetensors"
    save_file({k: v.contiguous() for k, v in dymn.load("dymn04_as", pretrained=False).state_dict().items()}, other)
    repos = {
        "org/pickle": Repo({"config.json": files["config.json"], "pytorch_model.bin": b"\x80\x04pickle"}),
        "org/absurd": Repo(with_config(frontend={**config["frontend"], "n_mels": 10**9})),
        "org/nolabels": Repo(with_config(labels=None)),
        "org/noarch": Repo(with_config(arch=None)),
        "org/misfit": Repo({**files, "model.safetensors": other.read_bytes()}),
        "org/labels": Repo(with_config(labels=["a", "b", "c"])),
        "org/gated": Repo(files, gated=True),
        "org/cut": Repo(files),
        "org/good": Repo(files),
    }
    repos["org/cut"].cut.add("model.safetensors")
    expected = {
        "hf-hub:org/pickle": ("WeightsError", "never a pickle"),
        "hf-hub:org/absurd": ("WeightsError", "n_mels"),
        "hf-hub:org/nolabels": ("WeightsError", "no labels"),
        "hf-hub:org/noarch": ("WeightsError", "architecture"),
        "hf-hub:org/misfit": ("WeightsError", "do not fit"),
        "hf-hub:org/labels": ("WeightsError", "3 labels for a model with 527 outputs"),
        "hf-hub:org/gated": ("DownloadError", "HF_TOKEN"),
        "hf-hub:org/cut": ("DownloadError", "nothing was kept"),
        "hf-hub:org/nothing-here": ("DownloadError", "no such repo"),
        "hf-hub:org/good@no-such-branch": ("DownloadError", "no revision 'no-such-branch'"),
        "hf-hub:org/good": ("loaded", ""),
    }
    with HubStandIn() as hub:
        hub.repos.update(repos)
        env = _env(tmp_path, hub, HF_HUB_DOWNLOAD_TIMEOUT="5", HF_HUB_ETAG_TIMEOUT="5")
        proc = subprocess.run([sys.executable, "-c", _TRY, *expected], capture_output=True, text=True, env=env,
                              timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {row[0]: row for row in map(json.loads, proc.stdout.splitlines())}
    for spec, (kind, words) in expected.items():
        assert got[spec][1] == kind and words in got[spec][3], (spec, got[spec])
        assert "\n" not in got[spec][3] and got[spec][2] in (0, 1)
    # the cut download left no file in the cache's snapshots: a later run downloads it again
    snapshots = list((tmp_path / "hf").glob("models--org--cut/snapshots/*/model.safetensors"))
    assert snapshots == []


class _FakeApi:
    """Stands in for HfApi at the boundary: records what a push would send (the files, with their content)."""

    calls: list = []
    has_card = False

    def __init__(self, token=None, library_name=None, library_version=None, **kw):
        self.calls.append(("init", library_name, library_version))

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None):
        self.calls.append(("create_repo", repo_id, private))

    def create_branch(self, repo_id, branch, exist_ok=False):
        self.calls.append(("create_branch", repo_id, branch))

    def file_exists(self, repo_id, filename, revision=None):
        return self.has_card and filename == "README.md"

    def upload_folder(self, repo_id, folder_path, revision=None, ignore_patterns=None, commit_message=None):
        files = {str(p.relative_to(folder_path)): p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()}
        files = {k: v for k, v in files.items() if not (ignore_patterns and k in ignore_patterns)}
        self.calls.append(("upload_folder", repo_id, revision, files))
        return f"https://hub.example/{repo_id}/commit/abc"


@pytest.fixture
def fake_api(monkeypatch):
    _FakeApi.calls = []
    _FakeApi.has_card = False
    monkeypatch.setattr(hf, "HfApi", _FakeApi)
    return _FakeApi


def test_push_hands_the_repo_and_its_card_to_hfapi(tmp_path, fake_api):
    model = _fine_tuned(tmp_path)
    url = model.push_to_hub("me/pets", private=True, revision="v1")
    assert url.endswith("/commit/abc")
    assert fake_api.calls[0] == ("init", "dymn", dymn.__version__)
    assert ("create_repo", "me/pets", True) in fake_api.calls and ("create_branch", "me/pets", "v1") in fake_api.calls
    ((_, repo_id, revision, files),) = [c for c in fake_api.calls if c[0] == "upload_folder"]
    assert (repo_id, revision) == ("me/pets", "v1")
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    card = hf.ModelCard(files["README.md"].decode())
    assert card.data.library_name == "dymn" and "hf-hub:me/pets" in card.text
    # a repo that has a card keeps it unless asked
    fake_api.has_card = True
    push_to_hub(model, "me/pets", with_onnx=True)
    files = [c for c in fake_api.calls if c[0] == "upload_folder"][-1][3]
    assert "README.md" not in files and "onnx/model.onnx" in files
    push_to_hub(model, "me/pets", card=True)
    assert "README.md" in [c for c in fake_api.calls if c[0] == "upload_folder"][-1][3]


def test_hub_save_all_writes_every_cached_release(tmp_path, release_cache):
    cache = release_cache("mn01_as", "dymn04_as")
    from dymn.cli.main import main

    assert main(["hub", "save", "--all", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["dymn04_as", "mn01_as"]
    for name in written:
        _outputs_equal(dymn.load(name), dymn.load(f"local-dir:{tmp_path / 'out' / name}"))
    shutil.rmtree(cache)


def test_finetune_pushes_a_repo_that_scores_as_the_run(tmp_path, fake_api):
    pytest.importorskip("lightning", reason="the [train] extra is not installed")
    from dymn.cli.main import main

    from ..train.tinydata import write_folder

    data = write_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["finetune", "folder", "--data", str(data), "--model", "mn", "--width-mult", "0.1", "--out", str(run),
            "--epochs", "1", "--batch-size", "4", "--num-workers", "0", "--push-to-hub", "me/tones"]  # fmt: skip
    assert main(args) == 0
    ((_, repo_id, _, files),) = [c for c in fake_api.calls if c[0] == "upload_folder"]
    assert repo_id == "me/tones"
    folder = tmp_path / "pulled"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    config = json.loads(files["config.json"])
    assert "val_accuracy" in config["results"] and config["results"]["train_clips"] > 0
    card = hf.ModelCard(files["README.md"].decode())
    assert "high" in card.text and "low" in card.text and "val_accuracy" in card.text and "MIT" in card.text
    assert card.data.license == "mit" and card.data.base_model == "mn"
    clips = sorted(p for p in data.rglob("*.wav"))[:4]
    first = [r.to_dict() for r in dymn.Tagger(str(run / "model.pt")).tag_files(clips)]
    second = [r.to_dict() for r in dymn.Tagger(f"local-dir:{folder}").tag_files(clips)]
    assert first == second
