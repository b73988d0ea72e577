"""What the command groups share, under public names: messages, output, the model arguments (declared once) and
turning them into a model, a tagger or a detector."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..hub.loader import DEFAULT_MODEL
from ..runtime.backends import ALIASES, CHOICES, canonical
from ..util.errors import OutputError, UsageError, printable


def err(msg: str) -> None:
    """One line on stderr, prefixed with ``dymn:``, control characters escaped."""
    print(f"dymn: {printable(msg)}", file=sys.stderr, flush=True)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default (none shown where the default is None or False)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def command(sub, name: str, help_text: str, func) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func(args)``."""
    sp = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
    sp.set_defaults(func=func)
    return sp


def emit(text: str, output: str | None) -> None:
    """``text`` to stdout, or written atomically to ``output``."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from ..util.atomic import write_text

        write_text(output, text)


def exit_status(failed: int, total: int) -> int:
    """1 (and a line saying how many) if any input failed, else 0."""
    if failed:
        err(f"{failed} of {total} input(s) failed")
        return 1
    return 0


def check_outputs(outputs: list[str | None], inputs: list) -> None:
    """Refuse an output that would overwrite one of the inputs, or that has no folder to go to."""
    inputs_real = {os.path.realpath(p) for p in inputs}
    for out in outputs:
        if out is None:
            continue
        if os.path.realpath(out) in inputs_real:
            raise UsageError(f"refusing to write {out}: it is one of the input files")
        parent = Path(out).parent
        if not parent.is_dir():
            raise OutputError(f"cannot write {out}: folder {parent} does not exist")


def model_args(sp, batch: bool = True) -> None:
    """``--model``, ``--weights``, ``--batch-size``, ``--device`` and ``--backend``."""
    sp.add_argument("--model", default=None,
                    help=f"registry name (see `dymn models`), a weights or .onnx file, or a,b,c for an ensemble "
                         f"(default {DEFAULT_MODEL}, released weights downloaded on first use)")  # fmt: skip
    sp.add_argument("--weights", default=None,
                    help="local weights: a dymn checkpoint (self-describing), an .onnx export, or an official "
                         "state dict together with --model naming its architecture")  # fmt: skip
    if batch:
        sp.add_argument("--batch-size", type=int, default=8, help="clips (or windows) per model call")
    sp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    backend_arg(sp)


def backend_arg(sp) -> None:
    """``--backend``: the runtime's names (and their aliases)."""
    sp.add_argument("--backend", choices=(*CHOICES, *ALIASES), default=None,
                    help="where the network runs: auto (default, or $DYMN_BACKEND): the fastest installed here, "
                         "measured on first use and remembered; or torch, onnxruntime, openvino ([fast] extra). "
                         "An .onnx file always runs in onnxruntime")  # fmt: skip


def backend_of(args) -> str | None:
    """The backend the arguments name (aliases resolved), or None for the default."""
    return canonical(getattr(args, "backend", None))


def load_model(args):
    """The model of ``--model`` / ``--weights`` (an .onnx file loads as one by its suffix)."""
    from ..hub.loader import load

    return load(args.model, weights=args.weights, device="cpu")


def scorer_from_args(args, detectors: bool = False):
    """The model of ``args`` ready to score audio: a Tagger, or with ``detectors`` a Detector for a
    frame-level model. Untrained models are refused."""
    from ..inference.scoring import scorer

    if args.batch_size < 1:  # named as the flag; scorer() checks it again for library callers
        raise UsageError("--batch-size must be at least 1")
    backend = backend_of(args)
    return scorer(args.model, args.device, args.batch_size, backend, weights=args.weights, detectors=detectors,
                  trained=True, pad=not getattr(args, "no_pad", False))  # fmt: skip


def audio_files(paths) -> tuple[list, int]:
    """The audio files under ``paths`` and how many inputs could not be used (each reported)."""
    from ..audio.io import find_audio_files

    files, problems = find_audio_files(paths)
    for p in problems:
        err(f"skipped {p}")
    return files, len(problems)


def split_list(text: str, flag: str, kind=str) -> list:
    """A comma-separated flag value as a list of ``kind``."""
    try:
        return [kind(x) for x in text.split(",") if x]
    except ValueError:
        what = {int: "integers", float: "numbers"}.get(kind, "names")
        raise UsageError(f"{flag} takes comma-separated {what}, got {text!r}") from None


def assignments(items: list[str], flag: str) -> dict[str, float]:
    """``NAME=VALUE`` flag values as a dict of floats."""
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"{flag} takes CLASS=VALUE, got {item!r}")
    return out
