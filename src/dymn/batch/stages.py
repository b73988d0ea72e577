"""The stages of a batch job that run on Ray workers: decoding tasks and the model actor. Each reproduces what
the single-process command does for a file (the same decoding, chunks and batches), so the numbers are the same."""

from __future__ import annotations

import os

import numpy as np

from ..models.info import check_scores
from ..util.errors import ScoresError
from .corpus import from_wire, local_copy, text, to_wire


def decode_batch(batch: dict, sample_rate: int, command: str) -> dict:
    """CPU task: each input row is a block of consecutive files of one shard; it is cut by audio length
    exactly as ``dymn tag`` cuts its chunks, and each file decoded and resampled. One output row per chunk:
    the waveforms concatenated (``flat``) with their ``lengths``, and each file's error or note. Timelines
    only check their files here: they are streamed by the model actor."""
    from ..audio.io import audio_info, read_audio
    from ..inference.tagging import MAX_CLIP_SECONDS, split_by_seconds
    from ..util.errors import AudioError

    out: dict[str, list] = {k: [] for k in ("shard", "order", "path", "flat", "lengths", "error", "note")}
    for shard, first, paths in zip(batch["shard"], batch["first"], batch["paths"]):
        paths = from_wire(paths)
        local, cleanups, errors = {}, [], {}
        for p in paths:
            try:
                local[p], cleanup = local_copy(p)
                cleanups.append(cleanup)
            except OSError as exc:
                local[p], errors[p] = p, str(exc)
        try:
            back = {v: k for k, v in local.items()}
            for chunk in split_by_seconds([local[p] for p in paths]):
                waves, lengths, errs, notes = [], [], [], []
                for lp in chunk:
                    p, wave, note = back[lp], np.zeros(0, np.float32), ""
                    err = errors.get(p, "")
                    if not err:
                        try:
                            if command in ("timeline", "detect"):
                                audio_info(lp)
                            else:
                                decoded = read_audio(lp, sample_rate, max_seconds=MAX_CLIP_SECONDS)
                                wave, note = decoded.wave, decoded.note or ""
                        except AudioError as exc:
                            err = str(exc).replace(lp, p)
                    waves.append(wave)
                    lengths.append(len(wave))
                    errs.append(err)
                    notes.append(note)
                names = [back[lp] for lp in chunk]
                out["shard"].append(int(shard))
                out["order"].append(np.asarray([int(first) + paths.index(n) for n in names], np.int64))
                out["path"].append(np.asarray(to_wire(names), dtype=object))
                out["flat"].append(np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32))
                out["lengths"].append(np.asarray(lengths, np.int64))
                out["error"].append(np.asarray([text(e) for e in errs], dtype=object))
                out["note"].append(np.asarray(notes, dtype=object))
        finally:
            for cleanup in cleanups:
                cleanup()
    return out


class ModelWorker:
    """Ray actor: one model load; each call runs chunks of decoded clips through it, one output row per file."""

    def __init__(self, model_ref, command: str, options: dict, device: str, threads: int | None):
        import ray
        import torch

        from ..inference.scoring import scorer
        from ..util.allocator import tune

        tune()  # an actor's process is dymn's own, as the `dymn` command's is
        if threads:
            torch.set_num_threads(threads)
        # the model comes as a reference inside a list: Ray does not resolve nested references, so the actor's
        # constructor arguments stay small and a restarted actor fetches the model again from the driver's copy
        model = ray.get(model_ref[0])
        # a Tagger, or a Detector for a frame-level model (timeline and detect stream their files themselves)
        self.tagger = scorer(model, device=device, batch_size=int(options.get("batch_size", 8)),
                             backend=options.get("backend"))  # fmt: skip
        self.command, self.options = command, options

    def __call__(self, batch: dict) -> dict:
        rows: list[dict] = []
        for i in range(len(batch["shard"])):
            lengths = np.asarray(batch["lengths"][i], np.int64)
            waves = np.split(np.asarray(batch["flat"][i], np.float32), np.cumsum(lengths)[:-1])
            paths, orders = from_wire(batch["path"][i]), [int(o) for o in batch["order"][i]]
            errors = [str(e) for e in batch["error"][i]]
            rows += self._chunk(int(batch["shard"][i]), paths, orders, waves, errors)
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}

    def _chunk(self, shard: int, paths: list[str], orders: list[int], waves: list, errors: list[str]) -> list[dict]:
        from ..inference.tagging import top_tags

        n = len(paths)
        ok = [i for i in range(n) if not errors[i]]
        sr = self.tagger.sample_rate
        durations = [len(waves[i]) / sr if not errors[i] else float("nan") for i in range(n)]
        extra: list[dict] = [{} for _ in range(n)]
        if self.command == "tag":
            # as Tagger.tag_files: the chunk's good files together, batched by equal length
            probs = self.tagger.predict([waves[i] for i in ok]) if ok else np.zeros((0, 0))
            k = int(self.options["top_k"])
            # every row gets values of the same type (Ray concatenates blocks): failed rows become nulls later
            nan = np.full(len(self.tagger.labels), np.nan, np.float32)
            for i in range(n):
                extra[i] = {"labels": [], "probabilities": [], "all_probabilities": nan}
            for j, i in enumerate(ok):
                try:
                    check_scores(probs[j], paths[i])
                except ScoresError as exc:
                    errors[i] = str(exc)
                    continue
                tags = top_tags(probs[j], self.tagger.labels, k)
                extra[i] = {"labels": [t.label for t in tags], "probabilities": [t.probability for t in tags],
                            "all_probabilities": probs[j].astype(np.float32)}  # fmt: skip
            if not self.options.get("all_probabilities"):
                for e in extra:
                    del e["all_probabilities"]
        elif self.command == "embed":
            dim = int(self.tagger.info.embed_dim or 0)
            for i in range(n):
                extra[i] = {"embedding": np.full(dim, np.nan, np.float32)}
            for i in ok:  # as `dymn embed`: each file on its own
                _, e = self.tagger.run_batch(waves[i][None])
                try:
                    extra[i] = {"embedding": check_scores(e[0], paths[i]).astype(np.float32)}
                except ScoresError as exc:
                    errors[i] = str(exc)
        elif self.command == "detect":
            for i in range(n):
                extra[i] = self._detect(paths[i], errors, durations, i, ok)
        else:
            for i in range(n):
                extra[i] = self._timeline(paths[i], errors, durations, i, ok)
        # Arrow takes only UTF-8: a name that is not is kept exactly as bytes, and shown escaped
        return [{"path": text(paths[i]), "path_bytes": os.fsencode(paths[i]), "shard": shard,
                 "order": orders[i], **extra[i],
                 "duration": round(durations[i], 4) if durations[i] == durations[i] else None,
                 "error": text(errors[i]) or None, "status": "error" if errors[i] else "ok"}
                for i in range(n)]  # fmt: skip

    def _detect(self, path: str, errors: list[str], durations: list[float], i: int, ok: list[int]) -> dict:
        from ..util.errors import AudioError

        if i not in ok:
            return {"events": []}
        try:
            local, cleanup = local_copy(path)
            try:
                found = self.tagger.detect(local, threshold=self.options["threshold"], median=self.options["median"])
            finally:
                cleanup()
        except (AudioError, OSError, ScoresError) as exc:
            errors[i] = str(exc)
            return {"events": []}
        durations[i] = found.duration
        return {"events": [e.to_dict() for e in sorted(found.events, key=lambda e: (e.onset, e.index))]}

    def _timeline(self, path: str, errors: list[str], durations: list[float], i: int, ok: list[int]) -> dict:
        from ..inference.events import EventConfig, detect_events
        from ..inference.scoring import timeline
        from ..util.errors import AudioError

        empty = {"window_start": [], "window_end": [], "window_top_labels": [], "window_top_probabilities": [],
                 "events": []}  # fmt: skip
        if i not in ok:
            return empty
        o = self.options
        try:
            local, cleanup = local_copy(path)
            try:
                tl = timeline(local, window=o["window"], hop=o["hop"], tagger=self.tagger)
            finally:
                cleanup()
        except (AudioError, OSError, ScoresError) as exc:
            errors[i] = str(exc)
            return empty
        durations[i] = tl.duration
        top = [tl.window_top(w, int(o["top_k"])) for w in range(len(tl.starts))]
        return {"window_start": tl.starts.tolist(), "window_end": tl.ends.tolist(),
                "window_top_labels": [[self.tagger.labels[c] for c in t] for t in top],
                "window_top_probabilities": [tl.probs[w, t].astype(np.float32) for w, t in enumerate(top)],
                "events": [e.to_dict() for e in detect_events(tl, EventConfig(**o["events"]))]}  # fmt: skip
