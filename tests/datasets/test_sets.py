import numpy as np
import pytest

from dymn.datasets.common import DataError, EpochSampler, class_weights_from_targets, collate
from dymn.datasets.sets import HDF5Dataset, csv_split, esc50_split, folder_split, youtube_id

from ..train.tinydata import write_csv_set, write_esc50, write_folder, write_hdf5

h5py = pytest.importorskip("h5py", reason="HDF5 datasets need the [train] extra")


def test_hdf5_decode_targets_and_corrupt_clip(tmp_path):
    ids = write_hdf5(tmp_path / "a.hdf", 5, corrupt=2)
    ds = HDF5Dataset([tmp_path / "a.hdf"], [f"c{i}" for i in range(527)], clip_seconds=2.0, train=False)
    item = ds[0]
    assert item["wave"].shape == (64000,) and item["wave"].dtype == np.float32
    assert item["target"].shape == (527,) and item["target"].sum() == 1 and item["id"] == ids[0]
    assert ds[2] is None  # undecodable: skipped, counted by collate
    batch = collate([ds[i] for i in range(5)])
    assert batch["skipped"] == 1 and batch["wave"].shape == (4, 64000)


def test_a_bug_is_not_a_skipped_clip(tmp_path, capsys):
    # finding 12: only undecodable audio is skipped (and named); any other exception is a bug and surfaces
    write_hdf5(tmp_path / "a.hdf", 3, corrupt=1)
    ds = HDF5Dataset([tmp_path / "a.hdf"], [f"c{i}" for i in range(527)], clip_seconds=1.0, train=False)
    assert ds[1] is None and "skipped clip 1" in capsys.readouterr().err

    def broken(x, rng):
        raise RuntimeError("bug in augmentation")

    ds.augment = broken
    with pytest.raises(RuntimeError, match="bug in augmentation"):
        ds[0]


def test_hdf5_layout_errors(tmp_path):
    with h5py.File(tmp_path / "bad.hdf", "w") as f:
        f.create_dataset("audio_name", data=np.array([b"Yx.mp3"]))
    with pytest.raises(DataError, match="missing dataset.*mp3, target"):
        HDF5Dataset([tmp_path / "bad.hdf"], ["a"])
    (tmp_path / "text.hdf").write_text("no")
    with pytest.raises(DataError, match="not a readable HDF5"):
        HDF5Dataset([tmp_path / "text.hdf"], ["a"])
    with pytest.raises(DataError, match="no such HDF5"):
        HDF5Dataset([tmp_path / "none.hdf"], ["a"])


def test_balanced_weights_and_sampler():
    t = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    w = class_weights_from_targets(t)
    np.testing.assert_allclose(w, [1000 / 103, 1000 / 103, 1000 / 103 + 1000 / 102, 1000 / 102])
    s = EpochSampler(100, weights=np.ones(100), num_samples=30, seed=1)
    s.set_epoch(3)
    a = list(s)
    assert len(a) == 30 == len(set(a))
    assert list(s) == a  # deterministic in (seed, epoch)
    s.set_epoch(4)
    assert list(s) != a
    ranks = [list(EpochSampler(10, seed=0, rank=r, world_size=3)) for r in range(3)]
    assert set(sum(ranks, [])) == set(range(10)) and all(len(r) == 4 for r in ranks)  # each rank its share


def test_youtube_id():
    assert youtube_id(b"Y--PJHxphWEs.mp3") == "--PJHxphWEs"
    assert youtube_id("03/YabcYdef.mp3") == "abcYdef"


def test_folder_csv_esc50(tmp_path):
    tr, te, labels = folder_split(write_folder(tmp_path / "f"), val_fraction=0.34)
    assert labels == ["high", "low"] and len(tr["paths"]) == 8 and len(te["paths"]) == 4
    tr, te, labels = csv_split(write_csv_set(tmp_path / "c"), val_fraction=0.25)
    assert labels == ["bird", "cat", "dog"] and tr["targets"].shape == (6, 3)
    tr, te, labels = esc50_split(write_esc50(tmp_path / "e"), fold=2)
    assert labels == ["dog", "rain"] and len(te["paths"]) == 2 and len(tr["paths"]) == 8


def test_bad_own_data(tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        folder_split(tmp_path / "missing")
    path = write_csv_set(tmp_path / "c")
    (tmp_path / "c" / "c3.wav").unlink()
    with pytest.raises(DataError, match="1 missing audio file"):
        csv_split(path)
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,a\n")
    with pytest.raises(DataError, match="filename,labels"):
        csv_split(tmp_path / "bad.csv")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="two class"):
        folder_split(tmp_path / "one")


def test_openmic_masked_targets(tmp_path):
    import h5py

    from dymn.datasets.sets import HDF5Dataset as H

    from ..train.tinydata import mp3_bytes, tone

    with h5py.File(tmp_path / "o.hdf", "w") as f:
        f.create_dataset("audio_name", data=np.array([b"a.mp3", b"b.mp3"], dtype="S20"))
        mp3 = f.create_dataset("mp3", (2,), dtype=h5py.vlen_dtype(np.uint8))
        for i in range(2):
            mp3[i] = np.frombuffer(mp3_bytes(tone(440, 0.5)), dtype=np.uint8)
        t = np.zeros((2, 40), np.float32)
        t[0, 3], t[0, 23], t[0, 24] = 0.9, 1, 1  # instrument 3 present, 3 and 4 annotated
        f.create_dataset("target", data=t)
    ds = H([tmp_path / "o.hdf"], [f"i{k}" for k in range(20)], packed=False, openmic=True, clip_seconds=0.5)
    item = ds[0]
    assert item["target"].shape == (20,) and item["target"][3] == 1 and item["target"].sum() == 1
    assert item["mask"][3] == 1 and item["mask"][4] == 1 and item["mask"].sum() == 2


def test_dcase20_layout(tmp_path):
    import soundfile as sf

    from dymn.datasets.sets import dcase20_split

    (tmp_path / "audio").mkdir()
    (tmp_path / "evaluation_setup").mkdir()
    rows = []
    for i, scene in enumerate(["park", "bus", "park", "airport"]):
        name = f"audio/{scene}-x-{i}-a.wav"
        sf.write(tmp_path / name, np.zeros(4410, np.float32), 44100)
        rows.append(f"{name}\t{scene}\tx-{i}\ta")
    (tmp_path / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
    names = [r.split("\t")[0] for r in rows]
    (tmp_path / "evaluation_setup" / "fold1_train.csv").write_text("filename\tscene_label\n" + "\n".join(
        f"{n}\tx" for n in names[:3]) + "\n")  # fmt: skip
    (tmp_path / "evaluation_setup" / "fold1_evaluate.csv").write_text("filename\n" + names[3] + "\n")
    tr, te, labels = dcase20_split(tmp_path)
    assert labels == ["airport", "bus", "park"] and tr["targets"].argmax(1).tolist() == [2, 1, 2]
    assert te["targets"].argmax(1).tolist() == [0]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_hdf5_with_dataloader_workers(tmp_path, context):
    import torch

    write_hdf5(tmp_path / "a.hdf", 6)
    ds = HDF5Dataset([tmp_path / "a.hdf"], [f"c{i}" for i in range(527)], clip_seconds=0.5, train=True)
    ds[0]  # handles opened in the parent must not break the workers
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate,
                                         multiprocessing_context=context)  # fmt: skip
    batches = list(loader)
    assert sum(len(b["wave"]) for b in batches) == 6
