"""Batch jobs in a spawned process of their own. After ``ray.shutdown()`` Ray leaves native threads (gRPC, its GCS
client) running in the process that ran a job, and removes faulthandler's handlers; in the long-lived test process
those threads crashed later, unrelated tests (SIGSEGV without a traceback), depending on the tests in between."""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def _call(stand_ins: list[str], target: str, args: tuple, kwargs: dict):
    import dymn.hub.registry as registry

    for name in stand_ins:  # the registry entries the test process serves stand-in weights for
        registry._REGISTRY[name] = dataclasses.replace(registry._REGISTRY[name], sha256=None)
    module, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module), attr)(*args, **kwargs)


def in_child(target: str, *args, **kwargs):
    """``target(*args, **kwargs)`` (a dotted name) in a fresh spawned process; its result or its exception."""
    import dymn

    stand_ins = [n for n in dymn.list_models() if dymn.get_pretrained_cfg(n).sha256 is None]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_call, stand_ins, target, args, kwargs).result(timeout=900)


def run_job(*args, **kwargs):
    """:func:`dymn.batch.jobs.run` in a process of its own."""
    return in_child("dymn.batch.jobs.run", *args, **kwargs)


def two_node_job(data: str, out: str, model: str):
    """A job on a local cluster of two nodes (a head with 1 CPU, a worker node with 2); the cluster stays up after
    the job disconnects."""
    import ray
    from ray.cluster_utils import Cluster

    from dymn.batch.jobs import run

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        summary = run("tag", [data], out, model=model, address=cluster.address, workers=2, shard_size=16,
                      batch_size=1, progress=False)  # fmt: skip
        assert not ray.is_initialized()  # the job disconnects; the cluster stays up
    finally:
        cluster.shutdown()
    return summary
