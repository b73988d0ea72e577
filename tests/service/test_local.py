"""``/local``: the service's model as the in-browser page (the site of `dymn export web`), built on first use."""

import httpx
import pytest

from ..web.conftest import browser, open_site, tag_files  # noqa: F401 (browser: the fixture)


def test_local_serves_the_site_of_its_model_and_nothing_else(real_server):
    r = httpx.get(real_server.url + "/local")
    assert r.status_code == 307 and r.headers["location"] == "/local/"
    page = httpx.get(real_server.url + "/local/")
    assert page.status_code == 200 and "sound tagging in your browser" in page.text
    csp = page.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    meta = httpx.get(real_server.url + "/local/model.json").json()
    info = httpx.get(real_server.url + "/v1/models").json()["models"][0]
    assert meta["name"] == info["name"] and meta["labels"] == info["labels"] and meta["sample_rate"] == 32000
    assert meta["ort"]["base"] == ("ort/" if real_server.ort else meta["ort"]["base"])
    head = httpx.head(real_server.url + "/local/model.onnx")
    assert head.status_code == 200 and int(head.headers["content-length"]) == meta["model_bytes"]
    assert httpx.get(real_server.url + "/local/worker.js").headers["content-type"].startswith("text/javascript")
    for bad in ("/local/nothing.js", "/local/../healthz", "/local/%2e%2e/%2e%2e/etc/passwd", "/local/ort/x.wasm"):
        r = httpx.get(real_server.url + bad)
        assert r.status_code == 404 or (r.status_code == 200 and bad == "/local/../healthz"), bad
    assert "Tag in your browser" in httpx.get(real_server.url + "/").text  # the service's own page links to it


def test_local_refuses_a_model_that_cannot_run_in_the_browser():
    from types import SimpleNamespace

    from dymn.service.core import ServiceError
    from dymn.service.local import LocalSite

    site = LocalSite(SimpleNamespace(info=SimpleNamespace(name="mn10_as+mn04_as")))
    with pytest.raises(ServiceError, match="does not run in the browser") as e:
        site.file("index.html")
    assert e.value.status == 404


def test_local_page_tags_in_the_browser_as_the_service_does(real_server, browser):  # noqa: F811
    if not real_server.ort:
        pytest.skip("no onnxruntime-web in .web/ (npm install --prefix .web onnxruntime-web)")
    page = open_site(browser, real_server.url + "/local/")
    assert page.locator("body").get_attribute("data-state") == "ready", page.locator("#status").inner_text()
    tag_files(page, [real_server.clip])
    shown = page.locator("#results .tag .name").first.inner_text()
    with open(real_server.clip, "rb") as f:
        served = httpx.post(real_server.url + "/v1/tag", files={"file": f}, timeout=60).json()
    assert shown == served["tags"][0]["label"]
    assert not [u for u in page.requests if not u.startswith((real_server.url, "blob:"))]  # nothing from elsewhere
    page.context.close()
