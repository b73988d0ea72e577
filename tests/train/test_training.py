"""End-to-end runs on tiny generated data (CPU, seconds each)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import dymn
from dymn.datasets.common import DataError

from .tinydata import write_csv_set, write_esc50, write_folder, write_hdf5

L = pytest.importorskip("lightning", reason="training tests need the [train] extra")
from dymn.train.config import DataConfig, TrainConfig  # noqa: E402
from dymn.train.datamodule import TaskDataModule  # noqa: E402
from dymn.train.recipes import data_config, train_config  # noqa: E402
from dymn.train.runner import evaluate, fit  # noqa: E402
from dymn.train.tasks import read_task  # noqa: E402
from dymn.train.teacher import LogitsTable, OnlineTeacher  # noqa: E402

TINY = dict(epochs=2, batch_size=4, lr=1e-3, warm_up_len=1, ramp_down_start=1, ramp_down_len=2)


@pytest.fixture(scope="module")
def audioset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audioset")
    ids = write_hdf5(root / "balanced_train_segments_mp3.hdf", 6, seed=1)
    ids += write_hdf5(root / "unbalanced_train_segments_mp3.hdf", 6, corrupt=3, prefix="00/Y", seed=2)
    write_hdf5(root / "eval_segments_mp3.hdf", 6, seed=3)
    # teacher table for all but one training clip
    np.save(root / "teacher.npy", np.random.default_rng(0).standard_normal((len(ids), 527)).astype(np.float32))
    (root / "index.json").write_text(json.dumps({cid: i for i, cid in enumerate(ids) if i != 0}))
    return root


def _mn(num_classes):
    torch.manual_seed(0)  # the same initial weights in every run
    return dymn.load("mn", width_mult=0.1, num_classes=num_classes, pretrained=False)


def _audioset(root, **kw):
    return TaskDataModule("audioset", root, DataConfig(**{"clip_seconds": 1.0, "epoch_len": 8, "roll": 0, "gain": 0,
                                                         "num_workers": 0, **kw}))  # fmt: skip


def _setup(task, data, arch, overrides):
    """The data module and the resolved TrainConfig, as ``dymn finetune`` makes them."""
    dm = TaskDataModule(task, data, data_config(task, overrides))
    return train_config(task, arch, dm.num_train, overrides), dm


@pytest.mark.parametrize("teacher_kind", ["table", "online"])
def test_audioset_kd_run(audioset_dir, tmp_path, teacher_kind):
    cfg = TrainConfig(**{**TINY, "epochs": 1}, kd_lambda=0.1, mixup_alpha=0.3)
    if teacher_kind == "table":
        teacher = LogitsTable(audioset_dir / "teacher.npy", audioset_dir / "index.json")
    else:
        teacher = OnlineTeacher([_mn(527)])
    module, final = fit(_mn(527), _audioset(audioset_dir), cfg, tmp_path / "run", teacher=teacher,
                        progress=False)  # fmt: skip
    assert module.skipped == 1  # the corrupt clip was skipped and counted, training went on
    assert final.is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    logged = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "train/kd_loss" in logged and "val/mAP" in logged and "val/d_prime" in logged
    metrics = evaluate("audioset", audioset_dir, dymn.load(weights=final), {"clip_seconds": 1.0})
    assert 0 <= metrics["mAP"] <= 1 and metrics["clips"] == 6


def test_dymn_temperature_schedule_runs(audioset_dir, tmp_path):
    model = dymn.load("dymn", width_mult=0.4, pretrained=False)
    cfg = TrainConfig(**{**TINY, "epochs": 2}, temperature_schedule=True)
    module, _ = fit(model, _audioset(audioset_dir, epoch_len=4), cfg, tmp_path / "d", progress=False)
    assert module.model.temperature == 29  # epoch 1 of the schedule 30, 29, ...


def _params(module):
    return {k: v.detach().clone() for k, v in module.model.state_dict().items()}


def test_killed_and_resumed_equals_uninterrupted(tmp_path):
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 3})
    full, _ = fit(_mn(2), dm, cfg, tmp_path / "full", progress=False)
    # "killed" after epoch 1: the run stops, then --resume continues from its last checkpoint
    fit(_mn(2), dm, cfg, tmp_path / "part", progress=False, max_epochs=1)
    resumed, _ = fit(_mn(2), dm, cfg, tmp_path / "part", progress=False, resume=True)
    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)
    with pytest.raises(DataError, match="--resume"):
        fit(_mn(2), dm, cfg, tmp_path / "full", progress=False)
    # issue 9: the metrics of the epochs before the kill survive the resume
    import csv

    with open(tmp_path / "part" / "logs" / "metrics.csv") as f:
        epochs = {int(float(r["epoch"])) for r in csv.DictReader(f) if r.get("epoch")}
    assert epochs == {0, 1, 2}


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data")
    base = ["finetune", "folder", "--data", str(data), "--model", "mn", "--width-mult", "0.1", "--out",
            str(tmp_path / "run"), "--epochs", "1", "--batch-size", "4", "--num-workers", "0"]  # fmt: skip
    assert main(base) == 0
    capsys.readouterr()
    (data / "third").mkdir()  # the class list changed since the run started
    clip = sorted((data / "high").iterdir())[0].read_bytes()
    for name in ("a.wav", "b.wav"):
        (data / "third" / name).write_bytes(clip)
    assert main(base + ["--resume"]) == 1
    assert "differ from the data's" in capsys.readouterr().err
    import shutil

    shutil.rmtree(data / "third")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # cut off
    assert main(base + ["--resume"]) == 1
    err = capsys.readouterr().err
    assert "unreadable, perhaps cut off" in err and "Traceback" not in err
    torch.save({"epoch": 0, "state_dict": {}, "x": Evil()}, last)
    assert main(base + ["--resume"]) == 1
    assert "could run code" in capsys.readouterr().err


class Evil:
    """Any pickled object: loading it could run code."""


def test_auto_recipe_adapts_to_the_data():
    tiny = train_config("folder", "mn", 48)
    assert tiny.recipe == "auto"
    assert tiny.batch_size == 6 and tiny.lr_per_step and tiny.epochs == 100 and tiny.warm_up_len == 5
    assert tiny.lr == 6 * 3.75e-5 and tiny.mixup_alpha == 0 and tiny.val_every == 2
    big = train_config("folder", "mn", 50_000)
    assert big.batch_size == 32 and big.epochs == 3
    mid = train_config("folder", "mn", 2700)
    assert mid.epochs == 10 and mid.batch_size == 32 and mid.lr == 1.2e-3
    kept = train_config("folder", "mn", 48, {"batch_size": 64, "epochs": 7})
    assert (kept.batch_size, kept.epochs) == (64, 7)  # what the user gave stays
    ref = train_config("folder", "mn", 48, recipe="esc50")
    assert ref.lr == 6e-5 and ref.batch_size == 128 and ref.epochs == 80 and not ref.lr_per_step
    assert train_config("folder", "dymn", 48, recipe="esc50").lr == 4e-5  # the DyMN column of the recipe
    assert data_config("folder", recipe="esc50").clip_seconds == "auto"  # data settings stay the task's
    assert data_config("esc50").clip_seconds == 5.0 and data_config("folder", {"roll": 0}).roll == 0
    scratch = train_config("folder", "dymn", 48, scratch=True)
    assert scratch.temperature_schedule and scratch.bn_momentum == 0.1
    with pytest.raises(dymn.UsageError, match="unknown recipe"):
        train_config("folder", "mn", 48, recipe="nope")
    with pytest.raises(dymn.UsageError, match="unknown training setting"):
        train_config("folder", "mn", 48, {"learning_rate": 1e-3})


def test_run_config_is_saved_and_round_trips(tmp_path):
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 1, "lr_decay": 0.7, "freeze_backbone": True})
    _, final = fit(_mn(2), dm, cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert TrainConfig(**saved["train"]) == cfg
    assert DataConfig(**saved["data"]) == dm.cfg and isinstance(dm.cfg.clip_seconds, float)  # "auto" resolved
    assert saved["found"]["classes"] == ["high", "low"]
    meta = dymn.load_checkpoint(final).meta
    assert meta["train_config"] == saved
    assert (tmp_path / "run" / "model_best.pt").is_file()


def test_freeze_backbone_trains_only_the_classifier(tmp_path):
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 1, "freeze_backbone": True})
    model = _mn(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module, _ = fit(model, dm, cfg, tmp_path / "run", progress=False)
    after = module.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("classifier.") for k in changed)  # BN statistics of features too


def test_layer_wise_lr_decay_groups():
    from dymn.train.module import layer_groups

    groups = layer_groups(_mn(2), 1e-3, 0.5)
    assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == 5e-4 and len(groups) == 18  # 17 blocks + classifier
    assert sum(len(g["params"]) for g in groups) == len(list(_mn(2).parameters()))


def test_too_few_clips_per_class_is_clear_before_training(tmp_path, capsys):
    from dymn.cli.main import main

    data = tmp_path / "few"
    for c in ("a", "b", "c"):
        (data / c).mkdir(parents=True)
    src = write_folder(tmp_path / "src")
    for c in ("a", "b", "c"):
        (data / c / "x.wav").write_bytes(next((src / "high").iterdir()).read_bytes())
    assert main(["finetune", "folder", "--data", str(data), "--model", "mn", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "at least 2 clips" in err and "epoch" not in err


def test_empty_class_folder_is_an_error(tmp_path, capsys):
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data")
    (data / "empty").mkdir()
    assert main(["finetune", "folder", "--data", str(data), "--model", "mn", "--out", str(tmp_path / "r")]) == 1
    assert "class folder without audio files" in capsys.readouterr().err


def test_class_list_round_trips_into_tag(tmp_path, capsys):
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 1})
    _, final = fit(_mn(2), dm, cfg, tmp_path / "run", progress=False, export_plain=True)
    model = dymn.load(weights=final)
    assert model.labels == ("high", "low") and model.info.task == "singlelabel"
    clip = next((data / "high").glob("*.wav"))
    assert main(["tag", str(clip), "--weights", str(final), "--top-k", "2", "--format", "json"]) == 0
    tags = json.loads(capsys.readouterr().out)[0]["tags"]
    assert {t["label"] for t in tags} == {"high", "low"}
    assert abs(sum(t["probability"] for t in tags) - 1) < 1e-4  # softmax, as trained (finding 2)
    plain = dymn.load("mn01_as", weights=tmp_path / "run" / "model_plain.pt", width_mult=0.1)
    assert plain.config.num_classes == 2


def test_esc50_and_cli_finetune(tmp_path, capsys):
    from dymn.cli.main import main

    root = write_esc50(tmp_path / "esc")
    td = read_task("esc50", root, DataConfig(clip_seconds=0.5, fold=1, cache_dir=str(tmp_path / "cache")))
    assert len(td.train) == 8 and len(td.val) == 2 and not td.multilabel
    td.train[0]
    assert any((tmp_path / "cache").rglob("*.npy"))  # resampled once, cached
    rc = main(["finetune", "esc50", "--data", str(root), "--model", "mn", "--width-mult", "0.1", "--out",
               str(tmp_path / "run"), "--epochs", "1", "--batch-size", "4", "--clip-seconds", "0.5", "--no-progress",
               "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert rc == 0
    assert main(["evaluate", "esc50", "--data", str(root), "--weights", str(tmp_path / "run" / "model.pt"),
                 "--clip-seconds", "0.5"]) == 0  # fmt: skip
    assert "accuracy:" in capsys.readouterr().out


def test_cli_run_reports_each_epoch_in_a_redirected_log(tmp_path, capsys):
    # finding 11: per-epoch lines and a summary without a progress bar; no library advertisements
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data")
    rc = main(["finetune", "folder", "--data", str(data), "--model", "mn", "--width-mult", "0.1", "--out",
               str(tmp_path / "run"), "--epochs", "2", "--batch-size", "4", "--num-workers", "0"])  # fmt: skip
    assert rc == 0
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("data: 2 classes (single-label),") and "settings (recipe auto)" in err
    assert "epoch 1/2  train loss" in err and "epoch 2/2" in err and "val accuracy" in err
    assert "trained for" in err and "best" in err
    assert "Tip" not in err and "litlogger" not in err and "it/s" not in err
    assert "model.pt" in captured.out


def test_bad_input_is_clear(tmp_path, capsys):
    from dymn.cli.main import main

    base = ["--model", "mn", "--width-mult", "0.1", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(["finetune", "folder", "--data", str(tmp_path / "missing")] + base) == 1  # input, not usage
    assert "no such data" in capsys.readouterr().err
    (tmp_path / "h5").mkdir()
    (tmp_path / "h5" / "FSD50K.train_mp3.hdf").write_text("x")
    assert main(["finetune", "fsd50k", "--data", str(tmp_path / "h5")] + base) == 1
    assert "not a readable HDF5" in capsys.readouterr().err
    assert main(["train", "audioset", "--data", str(tmp_path), "--teacher-logits", "x.npy"] + base) == 2
    assert "go together" in capsys.readouterr().err


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 2})
    fit(_mn(2), dm, cfg, tmp_path / "run", progress=False, max_epochs=1)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        if str(f).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fit(_mn(2), dm, cfg, tmp_path / "run", progress=False, resume=True)
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.suffix == ".tmp"]
    monkeypatch.setattr(torch, "save", real_save)
    resumed, _ = fit(_mn(2), dm, cfg, tmp_path / "run", progress=False, resume=True)
    assert resumed.current_epoch == 2


def test_ddp_two_cpu_processes(tmp_path):
    """Two ranks (gloo, spawned): each trains on its own share of the epoch; rank 0 writes the model."""
    data = write_folder(tmp_path / "data", per_class=8)
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 1})
    fit(_mn(2), dm, cfg, tmp_path / "run", progress=False, devices=2, accelerator="cpu",
        strategy="ddp_spawn")  # fmt: skip
    rows = (tmp_path / "run" / "logs" / "metrics.csv").read_text().splitlines()
    steps = {int(r.split(",")[1]) for r in rows[1:]}
    assert max(steps) == 1  # 12 training clips / 2 ranks / batch 4 = 2 steps per rank
    assert dymn.load(weights=tmp_path / "run" / "model.pt").labels == ("high", "low")


def test_multilabel_csv_run(tmp_path):
    csv_path = write_csv_set(tmp_path / "c", n=12)
    cfg, dm = _setup("csv", csv_path, "mn", {**TINY, "epochs": 1})
    module, final = fit(_mn(3), dm, cfg, tmp_path / "run", progress=False)
    model = dymn.load(weights=final)
    assert model.labels == ("bird", "cat", "dog") and module.multilabel and model.info.task == "multilabel"
    assert "val/mAP" in (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    metrics = evaluate("csv", csv_path, model)
    assert set(metrics) >= {"mAP", "roc_auc", "d_prime"}


def test_bf16_mixed_precision_dymn(tmp_path):
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "dymn", {**TINY, "epochs": 1})
    torch.manual_seed(0)
    model = dymn.load("dymn", width_mult=0.4, num_classes=2, pretrained=False)
    module, final = fit(model, dm, cfg, tmp_path / "run", progress=False,
                        precision="bf16-mixed")  # fmt: skip
    assert all(torch.isfinite(p).all() for p in module.model.parameters())
    assert dymn.load(weights=final).labels == ("high", "low")


def test_frozen_backbone_head_on_embeddings_equals_the_network(tmp_path):
    # the fast path of --freeze-backbone (the classifier on embeddings computed once) is the same function
    from dymn.audio.frontend import MelFrontend
    from dymn.train.module import TaggingModule

    model = _mn(2).eval()
    module = TaggingModule(model, False, TrainConfig(freeze_backbone=True)).eval()
    spec = MelFrontend.from_config(model.info.frontend)(torch.randn(3, 16000)).unsqueeze(1)
    logits, emb = model(spec)
    torch.testing.assert_close(module.head(emb), logits, atol=1e-5, rtol=1e-5)
    data = write_folder(tmp_path / "data")
    cfg, dm = _setup("folder", data, "mn", {**TINY, "epochs": 1, "freeze_backbone": True})
    fit(_mn(2), dm, cfg, tmp_path / "run", progress=False)
    assert "embedding" in dm.data.train[0] and "wave" not in dm.data.train[0]
    fit(_mn(2), dm, dataclasses.replace(cfg, freeze_backbone=False), tmp_path / "run2", progress=False)
    assert "wave" in dm.data.train[0]  # the same data module, back to clips for a full fine-tune


def test_early_stop_keeps_the_best_model_and_says_why(tmp_path, capsys):
    """On by default with the auto recipe: a run that has stopped improving ends, its final model is the best
    validation's, and it says so; `--no-early-stop` turns it off. Each line says what its time is."""
    import torch

    from dymn.cli.main import main

    assert train_config("folder", "mn", 48).early_stop and train_config("folder", "mn", 48).patience == 3
    assert not train_config("folder", "mn", 48, {"early_stop": False}).early_stop
    assert not train_config("folder", "mn", 48, recipe="esc50").early_stop  # the reference runs every epoch
    data = write_folder(tmp_path / "data", per_class=10)
    out = tmp_path / "run"
    rc = main(["finetune", "folder", "--data", str(data), "--model", "mn", "--width-mult", "0.1", "--out", str(out),
               "--epochs", "40", "--val-every", "1", "--patience", "2", "--batch-size", "4", "--lr", "3e-3",
               "--num-workers", "0"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "s for this epoch" in err
    assert "stopped early after epoch" in err and "has not improved for 2 validations" in err, err[-2000:]
    last = int(err.split("stopped early after epoch ")[1].split(":")[0])
    assert last < 40
    best = dymn.load(out / "model_best.pt").state_dict()
    final = dymn.load(out / "model.pt")
    assert all(torch.equal(best[k], v) for k, v in final.state_dict().items())
    assert "(the best, epoch" in err


def test_an_output_folder_inside_the_data_is_refused(tmp_path, capsys):
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data")
    for out in (data, data / "run"):
        rc = main(["finetune", "folder", "--data", str(data), "--model", "mn", "--width-mult", "0.1", "--out",
                   str(out), "--epochs", "1", "--num-workers", "0"])  # fmt: skip
        assert rc == 1 and "inside the data folder" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == ["high", "low"]


def test_evaluate_scores_a_whole_folder_and_names_an_empty_selection(tmp_path, capsys):
    from dymn.cli.main import main

    data = write_folder(tmp_path / "data", per_class=2)
    model = tmp_path / "m.pt"
    dymn.save_checkpoint(dymn.load("mn01_as", pretrained=False, num_classes=2), model)
    assert main(["evaluate", "folder", "--data", str(data), "--model", str(model)]) == 0
    assert "clips: 4" in capsys.readouterr().out  # every clip, not a 20 % split of them
    assert main(["evaluate", "folder", "--data", str(data), "--model", "no-such-model.pt", "--val-fraction",
                 "0.1"]) == 1  # fmt: skip
    assert "evaluation selection is empty" in capsys.readouterr().err  # said before any model work
    held = tmp_path / "held"
    write_folder(held / "test", per_class=2)
    assert main(["evaluate", "folder", "--data", str(held), "--model", str(model)]) == 0
    assert "clips: 4" in capsys.readouterr().out  # test/ is the held-out tree, not a class
    assert main(["finetune", "folder", "--data", str(held), "--model", "mn", "--width-mult", "0.1", "--out",
                 str(tmp_path / "run"), "--epochs", "1"]) == 1  # fmt: skip
    assert "holds only test/" in capsys.readouterr().err
