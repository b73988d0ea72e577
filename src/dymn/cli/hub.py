"""``dymn hub save`` and ``dymn hub push``: models as Hugging Face Hub repos."""

from __future__ import annotations

from ..util.errors import UsageError
from .common import command


def register(sub) -> None:
    hub = sub.add_parser("hub", help="models as Hugging Face Hub repos: save a repo folder, push it",
                         description="models as Hugging Face Hub repos (the [hub] extra): load them anywhere with "
                                     "--model hf-hub:ORG/NAME or local-dir:PATH")  # fmt: skip
    group = hub.add_subparsers(dest="hub_command", metavar="ACTION", help="save: a repo folder; push: to the Hub")
    group.required = True
    s = command(group, "save", "write a model (or every cached released model) as a repo folder", cmd_hub_save)
    s.add_argument(
        "model",
        nargs="?",
        default=None,
        help="a registry name, a model.pt, a run folder, anything --model takes; not with --all",
    )
    s.add_argument("folder", help="the repo folder to write (with --all: a folder per model inside it)")
    s.add_argument("--all", action="store_true", help="every registry model whose released weights are cached")
    s.add_argument("--with-onnx", action="store_true", help="also onnx/model.onnx (the export with its frontend)")
    p = command(group, "push", "upload a model as a Hub repo (a token with write access: huggingface-cli login)",
                cmd_hub_push)  # fmt: skip
    p.add_argument("model", help="a registry name, a model.pt, a run folder, or anything --model takes")
    p.add_argument("repo_id", help="ORG/NAME on the Hub (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="a branch to push to (created if needed; default: main)")
    p.add_argument("--with-onnx", action="store_true", help="also onnx/model.onnx (the export with its frontend)")
    p.add_argument("--card", action="store_true", help="replace the repo's README.md (default: only where none)")


def cmd_hub_save(args) -> int:
    from ..hub.publish import save_all, save_pretrained

    if args.all == (args.model is not None):
        raise UsageError("dymn hub save takes MODEL DIR, or --all DIR")
    if args.all:
        written, skipped = save_all(args.folder, with_onnx=args.with_onnx)
        for folder in written:
            print(f"wrote {folder}")
        print(f"{len(written)} model(s) written; {len(skipped)} not in the cache (run e.g. `dymn tag --model NAME "
              "FILE` once to download one)")  # fmt: skip
        return 0
    folder = save_pretrained(args.model, args.folder, with_onnx=args.with_onnx)
    print(f"wrote {folder}: load it with --model local-dir:{folder}, or push it with dymn hub push")
    return 0


def cmd_hub_push(args) -> int:
    from ..hub.publish import push_to_hub

    url = push_to_hub(args.model, args.repo_id, private=args.private, revision=args.revision,
                      with_onnx=args.with_onnx, card=args.card)  # fmt: skip
    print(f"pushed {args.repo_id}: {url}; load it with --model hf-hub:{args.repo_id}")
    return 0
