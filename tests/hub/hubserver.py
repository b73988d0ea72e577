"""A small stand-in for the Hugging Face Hub on 127.0.0.1: the endpoints the real ``huggingface_hub`` client uses
to download a model repo (``resolve`` with its commit and ETag headers, model info, file tree), with the Hub's
error headers for a missing repo, revision or file and for a gated repo; a mode that cuts a download off; and the
endpoints a push uses (create the repo and a branch, preupload, commit; every file as a regular upload)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


class Repo:
    def __init__(self, files: dict[str, bytes], gated: bool = False, branches: tuple[str, ...] = ("main",)):
        self.files = files
        self.gated = gated
        self.commit = hashlib.sha1(b"".join(sorted(files.values()))).hexdigest()
        self.branches = branches
        self.cut: set[str] = set()  # files whose download stops halfway

    @classmethod
    def from_folder(cls, folder: Path, **kw) -> Repo:
        return cls({str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}, **kw)


class HubStandIn:
    """``with HubStandIn() as hub: hub.repos["org/name"] = Repo.from_folder(...)``; ``hub.url`` is the endpoint."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.pushed: list[tuple[str, str, dict[str, bytes]]] = []  # (repo id, revision, files after the commit)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                stand_in.handle(self, body=False)

            def do_GET(self):
                stand_in.handle(self, body=True)

            def do_POST(self):
                stand_in.handle_post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, h, status: int, headers: dict, data: bytes = b"", body: bool = True, send: int | None = None):
        h.send_response(status)
        for k, v in {"Content-Length": str(len(data)), **headers}.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data[:send] if send is not None else data)
            h.wfile.flush()

    def handle_post(self, h) -> None:
        path = unquote(h.path.split("?")[0])
        data = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append(f"POST {path}")
        ok = {"Content-Type": "application/json"}
        if path == "/api/validate-yaml":  # the client checks a card's metadata before committing it
            self._reply(h, 200, ok, json.dumps({"errors": [], "warnings": []}).encode())
            return
        if path == "/api/repos/create":
            req = json.loads(data)
            repo_id = f"{req.get('organization') or 'user'}/{req['name']}" if "/" not in req["name"] else req["name"]
            self.repos.setdefault(repo_id, Repo({}))
            self._reply(h, 200, ok, json.dumps({"url": f"{self.url}/{repo_id}", "name": repo_id}).encode())
            return
        m = re.match(r"^/api/models/([^/]+/[^/]+)/(branch|preupload|commit)/(.+)$", path)
        repo = self.repos.get(m.group(1)) if m else None
        if repo is None:
            self._error(h, 404, "RepoNotFound", True)
            return
        kind, revision = m.group(2), m.group(3)
        if kind == "branch":
            repo.branches = (*repo.branches, revision)
            self._reply(h, 200, ok, b"{}")
        elif kind == "preupload":
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                     for f in json.loads(data)["files"]]  # fmt: skip
            self._reply(h, 200, ok, json.dumps({"files": files}).encode())
        else:
            for line in data.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            repo.commit = hashlib.sha1(b"".join(sorted(repo.files.values()))).hexdigest()
            self.pushed.append((m.group(1), revision, dict(repo.files)))
            body = {"commitUrl": f"{self.url}/{m.group(1)}/commit/{repo.commit}", "commitOid": repo.commit,
                    "pullRequestUrl": None}  # fmt: skip
            self._reply(h, 200, ok, json.dumps(body).encode())

    def _error(self, h, status: int, code: str, body: bool, commit: str | None = None):
        data = json.dumps({"error": code}).encode()
        headers = {"X-Error-Code": code, "Content-Type": "application/json", "X-Error-Message": code}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._reply(h, status, headers, data, body)

    def _repo(self, h, repo_id: str, revision: str, body: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 401, "RepoNotFound", body)
            return None
        if repo.gated and "authorization" not in {k.lower() for k in h.headers}:
            self._error(h, 401, "GatedRepo", body)
            return None
        if revision not in (*repo.branches, repo.commit):
            self._error(h, 404, "RevisionNotFound", body)
            return None
        return repo

    def handle(self, h, body: bool) -> None:
        path = unquote(h.path.split("?")[0])
        self.requests.append(f"{h.command} {path}")
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            repo_id, revision, name = m.groups()
            repo = self._repo(h, repo_id, revision, body)
            if repo is None:
                return
            if name not in repo.files:
                self._error(h, 404, "EntryNotFound", body, repo.commit)
                return
            data = repo.files[name]
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Type": "application/octet-stream"}  # fmt: skip
            if name in repo.cut and body:
                headers["Connection"] = "close"
                self._reply(h, 200, headers, data, body, send=len(data) // 2)
                h.close_connection = True
                return
            self._reply(h, 200, headers, data, body)
            return
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
        if m:
            repo = self._repo(h, m.group(1), m.group(2) or "main", body)
            if repo is not None:
                info = {"id": m.group(1), "modelId": m.group(1), "sha": repo.commit, "private": False,
                        "siblings": [{"rfilename": n} for n in sorted(repo.files)]}  # fmt: skip
                self._reply(h, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)
            return
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
        if m:
            repo = self._repo(h, m.group(1), m.group(2), body)
            if repo is not None:
                tree = [{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for n, d in sorted(repo.files.items())]  # fmt: skip
                self._reply(h, 200, {"Content-Type": "application/json"}, json.dumps(tree).encode(), body)
            return
        self._error(h, 404, "NotFound", body)
