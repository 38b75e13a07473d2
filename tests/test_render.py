"""The site as `quarto render` builds it (quick mode), checked in its HTML and in a browser.

    PATH=/path/to/quarto/bin:$PATH .venv/bin/python -m pytest tests/test_render.py -s

One real render per session (the `rendered_site` fixture in conftest.py, on a copy of the
project). Skips where quarto (or, for the browser test, Chromium) is missing, unless
LOWRANK_REQUIRE_RENDER=1. The render time and the widths the browser test measured are printed
at the end of the test report.
"""

import re
import subprocess
from pathlib import Path

import pytest
import qmd
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
POST = ROOT / "post" / "index.qmd"


@pytest.fixture(scope="module")
def post_html(rendered_site) -> Path:
    return rendered_site / "post" / "index.html"


@pytest.fixture(scope="module")
def soup(post_html) -> BeautifulSoup:
    return BeautifulSoup(post_html.read_text(), "html.parser")


def figure_labels() -> list[str]:
    doc = qmd.parse_file(POST)
    return [
        str(c.options["label"])
        for c in doc.code_cells
        if str(c.options.get("label", "")).startswith("fig-")
    ]


def test_every_figure_is_in_the_page_with_its_image(soup, post_html):
    labels = figure_labels()
    assert len(labels) >= 8
    for label in labels:
        figure = soup.find(id=label)
        assert figure is not None, f"{label} is missing from the HTML"
        images = figure.find_all("img")
        assert images, f"{label} has no <img>"
        for img in images:
            src = img.get("src", "")
            assert src and not src.startswith(("http:", "https:")), f"{label}: image source {src!r}"
            if not src.startswith("data:"):
                assert (post_html.parent / src).is_file(), f"{label}: {src} was not written"


def test_no_unresolved_cross_reference(soup):
    text = soup.get_text()
    unresolved = sorted(set(re.findall(r"\?@[\w-]+", text)))
    assert not unresolved, f"unresolved cross-references: {unresolved}"


def test_every_citation_resolves(soup):
    cites = soup.select("[data-cites]")
    assert cites, "the page cites nothing"
    keys = {key for c in cites for key in c["data-cites"].split()}
    missing = sorted(key for key in keys if soup.find(id=f"ref-{key}") is None)
    assert not missing, f"citations without a bibliography entry: {missing}"
    unresolved = [c.get_text() for c in cites if c.get_text().strip().startswith("?")]
    assert not unresolved, f"citations Quarto could not resolve: {unresolved}"


def test_no_raw_shortcode_or_inline_code(post_html):
    html = post_html.read_text()
    for raw in ("{python}", "{{<", "{{&lt;"):
        assert raw not in html, f"{raw!r} left unprocessed in the HTML"


def test_no_error_or_warning_output(soup):
    """A reader sees no traceback, no error and no stray stderr (warnings) in any cell."""
    bad = soup.select(".cell-output-error, .cell-output-stderr")
    assert not bad, "cells with error or stderr output:\n" + "\n".join(
        b.get_text()[:300] for b in bad
    )
    prose = BeautifulSoup(str(soup.select_one("main")), "html.parser")
    for listing in prose.select("pre, code"):  # the package's source may say "ValueError:"
        listing.decompose()
    for marker in ("Traceback (most recent call last)", "Error:"):
        assert marker not in prose.get_text(), f"{marker!r} appears in the page's text"


def test_quick_mode_banner(soup):
    banner = soup.select_one(".callout-warning")
    assert banner is not None, "the quick-mode banner is missing"
    assert "quick mode" in banner.get_text().lower()
    text = [
        p
        for p in soup.select("main p")
        if not p.find_parent("header") and not p.find_parent(class_="callout")
    ]
    assert text and banner in text[0].find_all_previous(class_="callout-warning"), (
        "the banner does not come before the post's first paragraph"
    )


def test_render_leaves_the_work_tree_clean(rendered_site):
    """Everything `quarto render` writes is ignored by git, and it does not touch .gitignore."""
    from conftest import project_files

    copy = rendered_site.parent
    assert (copy / ".gitignore").read_text() == (ROOT / ".gitignore").read_text(), (
        "quarto render appended to .gitignore: add its lines there"
    )
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    new = sorted(set(out) - {str(p) for p in project_files()})
    assert not new, f"files the render wrote that git does not ignore: {new[:20]}"


def test_landing_page_lists_the_post(rendered_site):
    assert "post/index.html" in (rendered_site / "index.html").read_text()


# Layout, measured in a browser: what a reader on a laptop and on a phone sees.
LAYOUT_JS = """() => {
  const items = [];
  const where = el => el.id || (el.closest('[id]') || {}).id || '';
  const viewport = document.documentElement.clientWidth;
  // whether el scrolls sideways in a box of its own (itself or a parent) that fits the screen
  const scrolls = el => {
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
        return e.getBoundingClientRect().right <= viewport + 1;
    }
    return false;
  };
  // figures: each figure container, and the image inside it against that container
  document.querySelectorAll('main .quarto-figure, main figure').forEach(el => {
    const img = el.querySelector('img');
    items.push({kind: 'figure', id: where(el), scroll: el.scrollWidth, client: el.clientWidth,
                width: img ? img.getBoundingClientRect().width : 0});
  });
  // code: the post's code blocks; other preformatted text (the citation box) is checked too
  document.querySelectorAll('main pre').forEach(el => items.push(
    {kind: el.classList.contains('sourceCode') && !el.closest('#quarto-appendix')
           ? 'code' : 'pre', id: where(el), scrolls: scrolls(el),
     scroll: el.scrollWidth, client: el.clientWidth, width: el.getBoundingClientRect().width}));
  // tables, measured in the box that holds them (a cell's output)
  document.querySelectorAll('main table').forEach(el => {
    const box = el.closest('.cell-output-display') || el.parentElement;
    items.push({kind: 'table', id: where(el), scrolls: scrolls(el),
                scroll: box.scrollWidth, client: box.clientWidth,
                width: el.getBoundingClientRect().width});
  });
  const text = document.querySelector('main p:not(header p)');
  return {items, body: document.documentElement.scrollWidth, viewport,
          column: text ? text.getBoundingClientRect().width : 0};
}"""


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])  # a laptop, a phone
def test_layout_in_a_browser(rendered_site, width, height):
    from browser import open_page, serve
    from conftest import MEASURED

    with (
        serve(rendered_site) as url,
        open_page(f"{url}/post/index.html", width=width, height=height) as (page, console),
    ):
        page.wait_for_load_state("load")
        layout = page.evaluate(LAYOUT_JS)
        images = page.evaluate("""() => Array.from(document.images).map(
            img => ({src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0}))""")
        # the section links (not "view source" and the like); Quarto's script makes their
        # href absolute, what matters is the target in this page
        toc = page.evaluate("""() => Array.from(
            document.querySelectorAll('#TOC a[data-scroll-target^="#"]')).map(
            a => ({href: a.getAttribute('href'),
                   same_page: a.pathname.replace(/index[.]html$/, '')
                              === location.pathname.replace(/index[.]html$/, ''),
                   found: a.hash.length > 1
                          && !!document.getElementById(decodeURIComponent(a.hash.slice(1)))}))""")
        errors = list(console)

    # on a laptop everything fits its column; on a phone code and tables may scroll, each in
    # its own box, but figures fit and the page itself never scrolls sideways
    overflowing = [
        i
        for i in layout["items"]
        if i["scroll"] > i["client"] + 1
        and (width >= 1280 or i["kind"] == "figure" or not i["scrolls"])
    ]
    assert not overflowing, (
        f"wider than their column at {width} px (scrollWidth > clientWidth + 1):\n"
        + "\n".join(
            f"{i['kind']} in #{i['id']}: {i['scroll']} > {i['client']}" for i in overflowing
        )
    )
    assert layout["body"] <= layout["viewport"] + 1, f"the page scrolls sideways: {layout['body']}"
    for kind in ("figure", "code", "table"):
        items = [i for i in layout["items"] if i["kind"] == kind]
        assert items, f"no {kind} measured"
        widest = max(items, key=lambda i: (i["width"], i["scroll"]))
        MEASURED.append(
            f"widest {kind} at {width}x{height}: #{widest['id']}, {widest['width']:.0f} px wide "
            f"(container scrollWidth {widest['scroll']} px, clientWidth "
            f"{widest['client']} px; text column {layout['column']:.0f} px)"
        )

    assert images and all(i["ok"] for i in images), (
        f"images that did not load: {[i['src'] for i in images if not i['ok']]}"
    )
    assert len(toc) >= 5, f"the table of contents has {len(toc)} links"
    broken = [t["href"] for t in toc if not (t["found"] and t["same_page"])]
    assert not broken, f"table-of-contents links to nothing: {broken}"

    def external_load_failure(message: str) -> bool:
        # no network here: MathJax and other CDN scripts fail to load; not the page's fault
        local = url in message
        return not local and (
            "requestfailed: http" in message
            or ("Failed to load resource" in message and "net::ERR" in message)
        )

    # what follows from an external failure: without require.js from its CDN, Quarto's inline
    # define('jquery', ...) for Jupyter widgets fails
    requirejs_failed = any(
        e.startswith("requestfailed: http") and "require" in e and url not in e for e in errors
    )
    consequences = {"pageerror: define is not defined"} if requirejs_failed else set()

    def checked(e: str) -> bool:
        if e.startswith("error: Failed to load resource: the server responded"):
            return False  # names no URL; its "http <status>: <url>" line is checked instead
        if e.startswith("http 404: ") and e.endswith("/favicon.ico"):
            return False  # the browser asks for one on its own; the site has none
        return (
            e.startswith(("error", "pageerror", "requestfailed", "http "))
            and not external_load_failure(e)
            and e not in consequences
        )

    real = [e for e in errors if checked(e)]
    assert not real, "console errors:\n" + "\n".join(real)


COLOURS_JS = """() => {
  const lum = c => { const [r, g, b] = c.match(/[0-9.]+/g).map(Number);
                     return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255; };
  const img = document.querySelector('main .cell-output-display img');
  const p = document.querySelector('main p:not(header p)');
  return {dark: document.body.classList.contains('quarto-dark'),
          background: lum(getComputedStyle(document.body).backgroundColor),
          text: lum(getComputedStyle(p).color), filter: getComputedStyle(img).filter};
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_follows_the_readers_colour_scheme(rendered_site, scheme):
    """Light or dark as the system is set; in dark mode the figures' ink is inverted, on their
    transparent background."""
    from browser import open_page, serve
    from PIL import Image

    with (
        serve(rendered_site) as url,
        open_page(f"{url}/post/index.html", color_scheme=scheme) as (page, _),
    ):
        page.wait_for_load_state("load")
        got = page.evaluate(COLOURS_JS)
    if scheme == "dark":
        assert got["dark"] and got["background"] < 0.2 and got["text"] > 0.7, got
        assert "invert(1)" in got["filter"], got
    else:
        assert not got["dark"] and got["background"] > 0.9 and got["text"] < 0.4, got
        assert got["filter"] == "none", got
    for png in (rendered_site / "post" / "index_files" / "figure-html").glob("*.png"):
        with Image.open(png) as image:
            assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0, png.name
