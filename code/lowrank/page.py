"""What the post's page needs besides the results: links to its source, the package's code as
a block, and a timer.

    repo_link("code/lowrank/model.py")   # a Markdown link to the file at the rendered commit
    binder_url()                         # the post as a notebook on mybinder.org
    show_source(MnistFCNet)              # prints the class's source as a Markdown code block
"""

import inspect
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping


class Markdown(str):
    """Text that Jupyter (and so Quarto's inline `{python}` expressions) shows as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def repository_url(env: Mapping[str, str] = os.environ, remote: str | None = None) -> str | None:
    """https URL of the repository: GitHub Actions names it; else the git remote `origin`
    (ssh or https, any user:token@ dropped); None when neither is known."""
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    url = _git("remote", "get-url", "origin") if remote is None else remote
    ssh = re.fullmatch(r"(?:ssh://)?[\w.-]+@([\w.-]+)[:/](.+?)(?:\.git)?/?", url)
    if ssh:
        return f"https://{ssh.group(1)}/{ssh.group(2)}"
    web = re.fullmatch(r"https?://(?:[^@/]+@)?(.+?)(?:\.git)?/?", url)
    return f"https://{web.group(1)}" if web else None


def rendered_commit(env: Mapping[str, str] = os.environ) -> str:
    """The commit being rendered: GitHub's, else the checkout's HEAD."""
    return env.get("GITHUB_SHA") or _git("rev-parse", "HEAD") or "HEAD"


def binder_url(
    url: str | None = None, commit: str | None = None, path: str = "post/index.ipynb"
) -> str | None:
    """mybinder.org's address of the notebook `path` in the repository at the rendered commit
    (binder/ builds the environment and the notebook); None unless the repository is on
    GitHub."""
    url = repository_url() if url is None else url
    github = url and re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url)
    if not github:
        return None
    commit = rendered_commit() if commit is None else commit
    return f"https://mybinder.org/v2/gh/{github[1]}/{github[2]}/{commit}?urlpath=lab/tree/{path}"


def repo_link(
    path: str | None = None, url: str | None = None, commit: str | None = None
) -> Markdown:
    """Markdown link to the repository, or to one file in it at the rendered commit; plain
    text naming the file when the repository's address is unknown (a local render)."""
    url = repository_url() if url is None else url
    if url is None:
        return Markdown(
            f"`{path}` in the repository this post was built from"
            if path
            else "the repository this post was built from"
        )
    if path is None:
        return Markdown(f"[{url.split('://', 1)[1]}]({url})")
    return Markdown(f"[`{path}`]({url}/blob/{commit or rendered_commit()}/{path})")


def source_block(*objects) -> str:
    """The package's source of `objects` as one Markdown code block; a line too long for the
    column wraps instead of scrolling sideways."""
    code = "\n\n".join(inspect.getsource(obj).rstrip() for obj in objects)
    return f"```{{.python .code-overflow-wrap}}\n{code}\n```"


def show_source(*objects) -> None:
    """Print source_block(*objects), for a cell with `output: asis`."""
    print(source_block(*objects))


def timed(f: Callable, *args) -> float:
    """Wall seconds of one call f(*args)."""
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start
