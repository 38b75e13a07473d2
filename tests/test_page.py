import time

from lowrank import MnistFCNet
from lowrank.page import Markdown, binder_url, repo_link, repository_url, source_block, timed


def test_repository_url_from_github_actions_then_from_the_remote():
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "me/lowrank"}
    assert repository_url(env) == "https://github.com/me/lowrank"
    assert repository_url({}, "git@github.com:me/lowrank.git") == "https://github.com/me/lowrank"
    assert repository_url({}, "ssh://git@host.org/me/x/") == "https://host.org/me/x"
    token = "https://user:secret@github.com/me/lowrank.git"
    assert repository_url({}, token) == "https://github.com/me/lowrank"  # the token is dropped
    assert repository_url({}, "") is None and repository_url({}, "/some/local/path") is None


def test_repo_link_to_a_file_at_the_commit_or_plain_text_without_a_repository(monkeypatch):
    url = "https://github.com/me/lowrank"
    link = repo_link("code/lowrank/model.py", url=url, commit="abc123")
    assert link == f"[`code/lowrank/model.py`]({url}/blob/abc123/code/lowrank/model.py)"
    assert repo_link(url=url) == f"[github.com/me/lowrank]({url})"
    assert isinstance(link, Markdown) and link._repr_markdown_() == link
    monkeypatch.setattr("lowrank.page.repository_url", lambda: None)
    assert (
        repo_link("post/index.qmd") == "`post/index.qmd` in the repository this post was built from"
    )
    assert repo_link() == "the repository this post was built from"


def test_source_block_is_the_real_source_in_a_wrapping_code_block():
    block = source_block(MnistFCNet, timed)
    assert block.startswith("```{.python .code-overflow-wrap}\nclass MnistFCNet(nn.Module):")
    assert "\n\ndef timed(" in block and block.endswith("\n```")


def test_timed_measures_the_call():
    assert timed(time.sleep, 0.01) >= 0.01  # sleep waits at least that long


def test_binder_opens_the_notebook_at_the_commit_only_for_a_github_repository():
    url = binder_url("https://github.com/me/lowrank", commit="abc123")
    assert url == "https://mybinder.org/v2/gh/me/lowrank/abc123?urlpath=lab/tree/post/index.ipynb"
    assert binder_url("https://gitlab.com/me/lowrank", commit="abc123") is None
    assert binder_url("", commit="abc123") is None
