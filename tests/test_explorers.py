"""The post's two explorers in the rendered site (quick mode): their data, and in a browser.

    PATH=/path/to/quarto/bin:$PATH .venv/bin/python -m pytest tests/test_explorers.py

The data is what the post's Python cells handed to Observable JS with `ojs_define`, read back
from the page; the browser test moves every control and checks that the numbers shown change
and are those of the data. Uses the session's one render (`rendered_site`, conftest.py).
"""

import functools
import http.server
import itertools
import json
import re
import threading

import pytest
from browser import open_page
from conftest import MEASURED

from lowrank.sweeps import explorer_grid

QUICK = explorer_grid(quick=True)


def ojs_data(html: str) -> dict:
    """Every value the page's Python cells defined for Observable JS, by name."""
    data = {}
    for block in re.findall(r'<script type="ojs-define">(.*?)</script>', html, flags=re.S):
        for item in json.loads(block)["contents"]:
            data[item["name"]] = item["value"]
    return data


@pytest.fixture(scope="module")
def post_html(rendered_site):
    return (rendered_site / "post" / "index.html").read_text()


@pytest.fixture(scope="module")
def data(post_html):
    return ojs_data(post_html)


def test_both_explorers_are_observable_cells_on_the_page(post_html):
    # Quarto puts the compiled {ojs} cells into the page; the controls are built there
    for name in ("rankModel", "rankR", "rangeK", "rangeP", "rangeQ"):
        assert f"viewof {name}" in post_html, f"the {name} control is not on the page"


def test_rank_explorer_data_covers_every_rank_of_the_quick_grid(data):
    rank = data["rank_explorer"]
    assert rank, "no model in the rank explorer"
    for name, d in rank.items():
        r = list(range(1, QUICK["max_rank"] + 1))
        assert d["rank"] == r, name
        assert d["splits"] == ["val", "test"] and d["seeds"] >= 1
        for key in ("val_acc", "test_acc", "spectral", "frobenius", "compression", "params"):
            assert len(d[key]) == len(r), (name, key)
        m, n = d["m"], d["n"]
        assert d["params"] == [k * (m + n) for k in r]
        assert d["compression"] == pytest.approx([m * n / (k * (m + n)) for k in r], rel=1e-5)
        assert all(0 <= a <= 1 for a in d["test_acc"]) and 0 < d["test_dense"] <= 1
        # Eckart–Young–Mirsky: both relative errors fall with r, and ‖·‖₂ ≤ ‖·‖_F per unit norm
        assert all(a >= b for a, b in zip(d["spectral"], d["spectral"][1:]))
        assert all(a >= b for a, b in zip(d["frobenius"], d["frobenius"][1:]))


def test_randomness_explorer_data_is_the_configured_grid(data):
    d, grid = data["range_explorer"], QUICK["range"]
    settings = list(zip(d["k"], d["p"], d["q"]))
    assert settings == list(itertools.product(grid["ks"], grid["ps"], grid["qs"]))
    assert all(len(e) == grid["draws"] for e in d["errors"])
    for i, errors in enumerate(d["errors"]):
        # no projection onto ℓ = k + p dimensions does better than σ_{ℓ+1}
        assert min(errors) >= d["sigma_l1"][i] * (1 - 1e-5)
        assert d["sigma_l1"][i] <= d["sigma_k1"][i] <= d["bound"][i]


def test_explorer_data_is_small(post_html, data):
    size = sum(
        len(block)
        for block in re.findall(r'<script type="ojs-define">(.*?)</script>', post_html, flags=re.S)
    )
    MEASURED.append(f"explorers' data on the page (quick mode): {size / 1024:.1f} KB")
    assert set(data) >= {"rank_explorer", "range_explorer"}
    assert size < 100 * 1024


# In the browser: move each control, read the numbers back.
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def post_url(rendered_site):
    """The post served over HTTP: browsers do not run Observable's module scripts from file://."""
    handler = functools.partial(QuietHandler, directory=str(rendered_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/post/index.html"
    server.shutdown()
    server.server_close()


def explorer_errors(console):
    """Page errors other than those of scripts that failed to load from the (offline) internet."""
    offline = any(line.startswith("requestfailed: https://") for line in console)
    known = ("define is not defined", "reading 'paths'")  # require.js from a CDN, offline
    return [
        line
        for line in console
        if line.startswith("pageerror") and not (offline and any(k in line for k in known))
    ]


READ_JS = """prefix => Object.fromEntries(
    [...document.querySelectorAll(`[id^="${prefix}"][data-value]`)]
    .map(e => [e.id.slice(prefix.length),
               {value: Number(e.dataset.value), text: e.textContent}]))"""


def shown(page, prefix):
    return page.evaluate(READ_JS, prefix)


def wait_for(page, selector):
    page.wait_for_selector(selector, state="attached", timeout=30_000)


def set_slider(page, selector, index):
    """Move a range input to position `index` with the keyboard, as a reader would."""
    slider = page.locator(selector)
    slider.focus()
    slider.press("Home")
    for _ in range(index):
        slider.press("ArrowRight")


def wait_until_shown(page, prefix, expected):
    """Wait until every `prefix + key` element carries exactly the value `expected[key]`."""
    page.wait_for_function(
        """([prefix, expected]) => Object.entries(expected).every(([key, value]) => {
             const e = document.getElementById(prefix + key);
             return e !== null && Number(e.dataset.value) === value; })""",
        arg=[prefix, expected],
        timeout=15_000,
    )


def rank_values(d, r):
    i = d["rank"].index(r)
    return {
        "test_acc": d["test_acc"][i],
        "test_dense": d["test_dense"],
        "compression": d["compression"][i],
        "params": d["params"][i],
        "spectral": d["spectral"][i],
        "frobenius": d["frobenius"][i],
    }


def check_rank(page, data, model, r):
    expected = rank_values(data["rank_explorer"][model], r)
    wait_until_shown(page, "rank-explorer-", expected)
    now = shown(page, "rank-explorer-")
    for key in ("test_acc", "test_dense"):  # toFixed and Python may round a mean's half apart
        assert now[key]["text"].endswith("%"), now[key]["text"]
        assert abs(float(now[key]["text"][:-1]) - 100 * expected[key]) <= 0.0051, (key, now[key])
    assert now["params"]["text"] == f"{expected['params']:,}"
    assert now["compression"]["text"] == f"{expected['compression']:.1f}×"
    return now


def test_rank_explorer_follows_its_controls(post_url, data):
    rank = data["rank_explorer"]
    models = list(rank)
    ranks = rank[models[0]]["rank"]
    with open_page(post_url) as (page, console):
        wait_for(page, "#rank-explorer-test_acc")
        check_rank(page, data, models[0], 20 if 20 in ranks else 1)  # the initial setting
        # the slider: to the first rank, then to the last
        set_slider(page, "#rank-explorer-r", 0)
        at_1 = check_rank(page, data, models[0], 1)
        set_slider(page, "#rank-explorer-r", len(ranks) - 1)
        at_last = check_rank(page, data, models[0], ranks[-1])
        assert at_1["compression"] != at_last["compression"]
        assert at_1["spectral"] != at_last["spectral"]
        for r, now in ((1, at_1), (ranks[-1], at_last)):
            MEASURED.append(
                f"rank explorer, {models[0]}, r={r}: test accuracy {now['test_acc']['text']} "
                f"(uncompressed {now['test_dense']['text']}), compression "
                f"{now['compression']['text']}, {now['params']['text']} numbers, σ_r+1/σ_1 "
                f"{now['spectral']['text']}, Frobenius {now['frobenius']['text']} (quick mode)"
            )
        # the model selector: every other model, at the same rank
        for model in models[1:]:
            page.select_option("#rank-explorer-model", model)
            check_rank(page, data, model, ranks[-1])
        assert len(models) == 1 or rank[models[-1]] != rank[models[0]]
        assert not explorer_errors(console), explorer_errors(console)


def range_values(d, k, p, q):
    i = list(zip(d["k"], d["p"], d["q"])).index((k, p, q))
    e = d["errors"][i]
    return {
        "mean": sum(e) / len(e),
        "min": min(e),
        "max": max(e),
        "draws": len(e),
        "sigma_k1": d["sigma_k1"][i],
        "sigma_l1": d["sigma_l1"][i],
        "bound": d["bound"][i],
        "ell": k + p,
    }


def check_range(page, data, k, p, q):
    expected = range_values(data["range_explorer"], k, p, q)
    exact = {key: v for key, v in expected.items() if key != "mean"}  # the mean is summed in JS
    wait_until_shown(page, "range-explorer-", exact)
    now = shown(page, "range-explorer-")
    assert now["mean"]["value"] == pytest.approx(expected["mean"], rel=1e-12)
    assert now["mean"]["text"] == f"{expected['mean']:#.4g}"
    return now


def test_randomness_explorer_follows_its_controls(post_url, data):
    grid = QUICK["range"]
    ks, ps, qs = grid["ks"], grid["ps"], grid["qs"]
    with open_page(post_url) as (page, console):
        wait_for(page, "#range-explorer-mean")
        k, p, q = ks[len(ks) // 2], ps[0], qs[0]  # the explorer's initial setting
        start = check_range(page, data, k, p, q)
        seen = [("start", k, p, q, start)]
        for name, values in (("q", qs), ("p", ps), ("k", ks)):
            current = {"k": k, "p": p, "q": q}[name]
            target = values[-1] if current != values[-1] else values[0]  # another grid value
            set_slider(page, f"#range-explorer-{name}", values.index(target))
            k, p, q = {"k": (target, p, q), "p": (k, target, q), "q": (k, p, target)}[name]
            now = check_range(page, data, k, p, q)
            assert now["mean"]["value"] != seen[-1][-1]["mean"]["value"], (
                f"moving {name} changed nothing"
            )
            seen.append((name, k, p, q, now))
        for _, k, p, q, now in (seen[0], seen[1]):
            MEASURED.append(
                f"randomness explorer, k={k} p={p} q={q}: mean {now['mean']['text']} "
                f"({now['min']['text']} to {now['max']['text']}, {now['draws']['text']} draws), "
                f"σ_k+1 {now['sigma_k1']['text']}, σ_ℓ+1 {now['sigma_l1']['text']}, "
                f"HMT bound {now['bound']['text']} (quick mode)"
            )
        assert not explorer_errors(console), explorer_errors(console)
