"""A checkpoint's metadata asks for a network and a frontend: both are checked before anything is allocated."""

import pytest

import dymn

from ..conftest import limited_child


def test_a_frontend_that_asks_for_gigabytes_is_refused_in_a_checkpoint_too(tiny_mn_checkpoint, tmp_path):
    import torch

    ckpt = torch.load(tiny_mn_checkpoint, weights_only=False)
    ckpt["frontend"].update(n_mels=512, n_fft=16384, hop_length=1)
    path = tmp_path / "big.pt"
    torch.save(ckpt, path)
    with pytest.raises(dymn.WeightsError, match="hop_length"):
        dymn.load(path)


@pytest.mark.parametrize("arch_config", [{"width_mult": 8.0, "num_classes": 100_000},
                                         {"seq_model_layers": 32, "seq_model_dim": 8192}])  # fmt: skip
def test_metadata_asking_for_a_huge_network_is_refused_before_building_it(tmp_path, arch_config):
    """Metadata within its ranges, weights of a small network: refused by comparing shapes on the meta device,
    in a child limited to 1.5 GB of address space (building the network first would need many GB)."""
    import torch

    name = "fmn10_tf256" if "seq_model_layers" in arch_config else "mn01_as"
    model = dymn.load(name, pretrained=False)
    path = tmp_path / "m.pt"
    dymn.save_checkpoint(model, path)
    ckpt = torch.load(path, weights_only=False)
    ckpt["arch_config"].update(arch_config)
    torch.save(ckpt, path)
    code = "import dymn\ntry:\n    dymn.load(sys.argv[1])\nexcept dymn.WeightsError as e:\n    print('refused:', e)\n"
    done = limited_child(code, str(path), timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("refused:"), done.stdout + done.stderr[-1500:]
