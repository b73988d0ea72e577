"""Where DyMN's inference time goes, per part of the network, and which batch split is fastest.

    python benchmarks/bench_dymn_profile.py [--models dymn04_as,dymn10_as,dymn20_as] [--batch 1,8] [--threads 2]

Times every module of `dymn.optimize(model, backend="torch")` with forward hooks (CPU; 10 s clips, random
weights: speed only) and groups them: pointwise dynamic convolutions (one batched matmul per block), depthwise
dynamic convolutions, static convolutions (stem, first blocks, last conv), DyReLU, coordinate attention, the
context generator, the classifier, and the rest (residual additions, layout changes, Python). Then times whole
forwards with each micro-batch split (None: the whole batch at once).

Then the same question in the backend that wins for DyMN, OpenVINO on the fixed-batch graph
(`dymn.runtime.engines.ov.grouped_graph`): its own per-layer counters (PERF_COUNT), summed by the kind of kernel it ran,
for one request on all threads (batch 1 and the whole batch) and for the pieces of 1 clip that auto runs in
parallel at batch 8 (one stream per thread). Prints markdown tables.
"""

import argparse
import time
from collections import defaultdict

import torch

import dymn
from dymn.runtime.fusion import FastContextGen, FastCoordAtt, FastDyReLU, FusedDynamicConv
from dymn.util.timing import time_call


def part_of(module: torch.nn.Module, name: str) -> str | None:
    if isinstance(module, FusedDynamicConv):
        return "dynamic conv, pointwise" if module.pointwise else "dynamic conv, depthwise"
    if isinstance(module, FastDyReLU):
        return "DyReLU"
    if isinstance(module, FastCoordAtt):
        return "coordinate attention"
    if isinstance(module, FastContextGen):
        return "context generator"
    if name.startswith("net.classifier"):
        return "classifier" if name == "net.classifier" else None
    if isinstance(module, torch.nn.Conv2d):
        return "static conv"
    return None


def profile(model_name: str, batch: int, repeats: int = 5) -> tuple[dict[str, float], float, float]:
    torch.manual_seed(0)
    fast = dymn.optimize(dymn.load(model_name, pretrained=False), backend="torch", micro_batch=None)
    x = torch.randn(batch, 1, 128, 1000)
    spent: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}
    handles = []
    for name, m in fast.named_modules():
        part = part_of(m, name)
        if part is None:
            continue

        def before(mod, inp):
            starts[id(mod)] = time.perf_counter()

        def after(mod, inp, out, part=part):
            spent[part] += time.perf_counter() - starts[id(mod)]

        handles += [m.register_forward_pre_hook(before), m.register_forward_hook(after)]
    with torch.inference_mode():
        fast(x)
        spent.clear()
        start = time.perf_counter()
        for _ in range(repeats):
            fast(x)
        total = (time.perf_counter() - start) / repeats
    for h in handles:
        h.remove()
    per_clip = {k: 1000 * v / repeats / batch for k, v in spent.items()}
    with torch.inference_mode():
        plain = time_call(lambda: fast(x), repeats) * 1000 / batch  # without hooks
    return per_clip, 1000 * total / batch, plain


def openvino_profile(model_name: str, batch: int, threads: int, repeats: int = 5) -> tuple[dict[str, float], float]:
    """ms per clip by OpenVINO layer type (as it executed them: fused layers count once), and the wall time."""
    import openvino as ov

    from dymn.runtime.engines import ov as ov_engine

    torch.manual_seed(0)
    path = ov_engine.grouped_graph(dymn.load(model_name, pretrained=False), batch)
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
              "PERF_COUNT": True}  # fmt: skip
    req = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    x = torch.randn(batch, 1, 128, 1000).numpy()
    for _ in range(3):
        req.infer({0: x})
    spent: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    for _ in range(repeats):
        req.infer({0: x})
        for info in req.profiling_info:
            if info.status == info.Status.EXECUTED:
                spent[info.node_type] += info.real_time.total_seconds()
    wall = (time.perf_counter() - start) / repeats
    return {k: 1000 * v / repeats / batch for k, v in spent.items()}, 1000 * wall / batch


def print_openvino(rows: list, threads: int) -> None:
    import openvino as ov

    kinds = defaultdict(float)
    for *_, per, _wall in rows:
        for k, v in per.items():
            kinds[k] += v
    top = sorted(kinds, key=kinds.get, reverse=True)[:8]
    print(f"\nOpenVINO {ov.__version__}, the fixed-batch DyMN graph, ms per 10 s clip by executed layer type "
          "(PERF_COUNT; fused layers count once under their first type)\n")  # fmt: skip
    print("| model | run | " + " | ".join(top) + " | other | sum of layers | wall |")
    print("|---|---|" + "---:|" * (len(top) + 3))
    for name, run, per, wall in rows:
        total = sum(per.values())
        cells = [f"{per.get(k, 0):.2f} ({100 * per.get(k, 0) / total:.0f}%)" for k in top]
        other = total - sum(per.get(k, 0) for k in top)
        print(f"| {name} | {run} | " + " | ".join(cells) + f" | {other:.2f} | {total:.2f} | {wall:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="dymn04_as,dymn10_as,dymn20_as")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true", help="only the OpenVINO profile")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    parts = ["dynamic conv, pointwise", "dynamic conv, depthwise", "static conv", "DyReLU", "coordinate attention",
             "context generator", "classifier"]  # fmt: skip
    rows, splits, ov_rows = [], [], []
    for name in a.models.split(","):
        for b in (int(v) for v in a.batch.split(",")):
            per, wall = openvino_profile(name, b, a.threads)
            ov_rows.append((name, f"batch {b}, one request, {a.threads} threads", per, wall))
            if b > 1:  # what auto runs at batch 8: single clips, one stream (one thread) each
                per, wall = openvino_profile(name, 1, 1)
                ov_rows.append((name, f"batch {b} as parallel pieces of 1: one piece, 1 thread", per, wall))
    print_openvino(ov_rows, a.threads)
    if a.skip_torch:
        return
    for name in a.models.split(","):
        for b in (int(v) for v in a.batch.split(",")):
            per, total, plain = profile(name, b)
            rows.append((name, b, per, total, plain))
            if b > 1:
                torch.manual_seed(0)
                model = dymn.load(name, pretrained=False)
                x = torch.randn(b, 1, 128, 1000)
                res = {}
                for mb in (None, 1, 2, 4):
                    fast = dymn.optimize(model, backend="torch", micro_batch=mb)
                    with torch.inference_mode():
                        res[mb] = time_call(lambda f=fast, x=x: f(x), 5) * 1000 / b
                auto = dymn.optimize(model, backend="torch").micro_batch
                splits.append((name, b, res, auto))
    print(f"\nms per 10 s clip, {torch.get_num_threads()} threads, CPU, torch {torch.__version__}\n")
    print("| model | batch | " + " | ".join(parts) + " | rest | total (hooked) | total (plain) |")
    print("|---|---:|" + "---:|" * (len(parts) + 3))
    for name, b, per, total, plain in rows:
        rest = total - sum(per.values())
        cells = [f"{per.get(p, 0):.2f} ({100 * per.get(p, 0) / total:.0f}%)" for p in parts]
        print(f"| {name} | {b} | " + " | ".join(cells) + f" | {rest:.2f} ({100 * rest / total:.0f}%) | "
              f"{total:.2f} | {plain:.2f} |")  # fmt: skip
    print("\nmicro-batch split at batch 8 (ms per clip; the default `auto` chooses the one marked):\n")
    print("| model | batch | whole batch | 1 | 2 | 4 |\n|---|---:|---:|---:|---:|---:|")
    for name, b, res, auto in splits:
        cells = [f"**{res[mb]:.1f}**" if mb == auto else f"{res[mb]:.1f}" for mb in (None, 1, 2, 4)]
        print(f"| {name} | {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
