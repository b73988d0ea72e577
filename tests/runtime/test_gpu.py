"""GPU checks (skipped without CUDA): CUDA outputs equal CPU outputs on the reference fixtures, in fp32 and
within fp16's precision with autocast, for the plain network, dymn.optimize and the Tagger. Run on a GPU
machine by benchmarks/gpu_check.sh."""

import numpy as np
import pytest
import torch

import dymn

from ..conftest import FIXTURES, need
from ..models.test_conformance import _fixture_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.parametrize("name", ["mn04", "dymn04"])
def test_cuda_matches_the_fixtures_and_the_cpu(name, synth_state_dict):
    data = np.load(need(FIXTURES / f"{name}.npz"))
    model = _fixture_model(name, synth_state_dict)
    x = torch.from_numpy(data["input"])
    with torch.inference_mode():
        cpu_logits, cpu_emb = model(x)
        gpu = model.to("cuda")
        for m in (gpu, dymn.optimize(gpu, device="cuda", backend="torch")):
            logits, emb = m(x.cuda())
            np.testing.assert_allclose(logits.float().cpu().numpy(), data["logits"], atol=1e-4, rtol=0)
            np.testing.assert_allclose(emb.float().cpu().numpy(), cpu_emb.numpy(), atol=1e-4, rtol=0)
        with torch.autocast("cuda", dtype=torch.float16):  # as the models were trained
            half, _ = gpu(x.cuda())
        np.testing.assert_allclose(half.float().cpu().numpy(), cpu_logits.numpy(), atol=2e-2, rtol=0)
        fp16 = dymn.optimize(gpu, device="cuda", dtype=torch.float16, backend="torch")(x.cuda())[0]
        np.testing.assert_allclose(fp16.float().cpu().numpy(), cpu_logits.numpy(), atol=2e-2, rtol=0)


@cuda
def test_tagger_on_cuda_gives_the_cpu_tags():
    torch.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(32000 * n).astype(np.float32) * 0.1 for n in (3, 10, 10, 12)]
    cpu = dymn.Tagger(model, device="cpu", backend="torch").predict(waves)
    gpu = dymn.Tagger(model, device="cuda", amp=False).predict(waves)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=0)
