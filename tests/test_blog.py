"""The conventions of a Quarto blog, in the rendered site (quick mode): feed, link previews,
citation, licence, source links, lightbox and the notebook link.

    PATH=/path/to/quarto/bin:$PATH .venv/bin/python -m pytest tests/test_blog.py

The render (`rendered_site`, conftest.py) uses the "pages" profile with stand-in addresses,
as publish.yml does with the real ones.
"""

import xml.etree.ElementTree as ET

import pytest
from bs4 import BeautifulSoup

# what the workflow's step writes for the stand-ins of tests/workflow.py
SITE_URL = "https://example.github.io/lowrank/"
REPO_URL = "https://github.com/Example/lowrank"


@pytest.fixture(scope="module")
def soup(rendered_site):
    return BeautifulSoup((rendered_site / "post" / "index.html").read_text(), "html.parser")


def meta(soup, key):
    tag = soup.find("meta", attrs={"property": key}) or soup.find("meta", attrs={"name": key})
    return tag.get("content") if tag else None


def test_rss_feed_lists_the_post(rendered_site):
    channel = ET.parse(rendered_site / "index.xml").getroot().find("channel")
    assert channel.findtext("link") == SITE_URL
    links = [item.findtext("link") for item in channel.findall("item")]
    assert f"{SITE_URL}post/" in links or f"{SITE_URL}post/index.html" in links, links
    landing = BeautifulSoup((rendered_site / "index.html").read_text(), "html.parser")
    assert landing.find("link", attrs={"type": "application/rss+xml"}), "no feed link in <head>"


def test_open_graph_and_twitter_cards_with_a_figure_as_preview(soup, rendered_site):
    assert meta(soup, "og:title") and meta(soup, "og:description")
    image = meta(soup, "og:image")
    assert image and image.startswith(SITE_URL), image
    assert (rendered_site / image[len(SITE_URL) :]).is_file(), f"{image} was not rendered"
    assert "figure-html/fig-" in image  # one of the post's figures
    assert meta(soup, "twitter:card") == "summary_large_image"
    assert meta(soup, "twitter:image") == image


def test_citation_block_with_bibtex_and_google_scholar_tags(soup):
    citation = soup.find(id="quarto-citation")
    assert citation is not None, "no Citation appendix"
    bibtex = citation.find(class_="quarto-appendix-bibtex")
    assert bibtex is not None and "@online{" in bibtex.get_text()
    assert f"{SITE_URL}post/" in bibtex.get_text()
    assert meta(soup, "citation_title") == "Compressing learnt weights using randomness"
    assert meta(soup, "citation_author") and meta(soup, "citation_publication_date")
    assert meta(soup, "citation_fulltext_html_url") == f"{SITE_URL}post/"


def test_licence_source_links_lightbox_and_notebook_link(soup):
    text = soup.get_text()
    assert "CC BY 4.0" in text, "no licence in the appendix"
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    assert any(h.startswith(f"{REPO_URL}/blob/") for h in hrefs), "no 'View source' link"
    assert any(h.startswith(f"{REPO_URL}/issues/new") for h in hrefs), "no 'Report an issue' link"
    assert soup.select("a.lightbox img"), "figures do not open in a lightbox"
    assert "index.ipynb" in hrefs, "the page does not link its notebook"


def test_the_post_opens_on_binder_at_the_rendered_commit(soup):
    from conftest import STAND_IN_SHA

    binder = [a["href"] for a in soup.select("main a") if "mybinder.org" in a.get("href", "")]
    assert binder == [
        f"https://mybinder.org/v2/gh/Example/lowrank/{STAND_IN_SHA}"
        "?urlpath=lab/tree/post/index.ipynb"
    ]
