"""The publish workflow, checked offline: zizmor, GitHub's workflow schema, and the rules we
rely on.

    .venv/bin/pytest tests/test_workflow.py

zizmor and check-jsonschema are dev dependencies; `make setup` installs them.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "publish.yml"

# (event, ref) pairs a run can have; a pull request's ref is its merge ref.
PUSH_MAIN = ("push", "refs/heads/main")
DISPATCH_MAIN = ("workflow_dispatch", "refs/heads/main")
PULL_REQUEST = ("pull_request", "refs/pull/7/merge")
DISPATCH_BRANCH = ("workflow_dispatch", "refs/heads/some-branch")


def tool(name):
    """Path of a dev tool installed next to this Python, else on PATH; fail (not skip) if
    missing."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make setup` (it is a dev dependency)")
    return found


def lint(*command):
    return subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def wf():
    return yaml.safe_load(WORKFLOW.read_text())


def steps(wf, job="build"):
    return wf["jobs"][job]["steps"]


def step_running(wf, command):
    (step,) = [s for s in steps(wf) if command in s.get("run", "")]
    return step


def step_using(wf, action, job="build"):
    return [s for s in steps(wf, job) if s.get("uses", "").startswith(action + "@")]


def runs(condition, event, ref):
    """Evaluate a job or step `if:` for one run.

    Only the subset of GitHub's expression language we use: github.ref, github.event_name,
    quoted strings, ==, !=, &&, ||, ! and parentheses.
    """
    if condition is None:
        return True
    expr = condition.strip().removeprefix("${{").removesuffix("}}")
    assert re.fullmatch(
        r"[\s()!=&|]*(?:(?:github\.(?:ref|event_name)|'[^']*')[\s()!=&|]*)*", expr
    ), expr
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    return eval(expr, {"__builtins__": {}}, {"github": SimpleNamespace(event_name=event, ref=ref)})


def test_zizmor_reports_nothing():
    result = lint(tool("zizmor"), "--offline", "--format", "json")
    assert result.stdout.lstrip().startswith("["), result.stderr  # zizmor itself failed
    findings = [f"{f['ident']}: {f['desc']}" for f in json.loads(result.stdout)]
    assert findings == [], findings
    assert result.returncode == 0, result.stderr


def test_workflow_matches_github_schema():
    result = lint(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit_sha_with_its_version():
    lines = [
        line for line in WORKFLOW.read_text().splitlines() if re.match(r"\s*(-\s+)?uses:", line)
    ]
    assert lines
    for line in lines:
        assert re.fullmatch(
            r"\s*(-\s+)?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*\s*", line
        ), line


def test_triggers(wf):
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on and "workflow_dispatch" in on


def test_permissions_are_least_privilege(wf):
    assert wf["permissions"] == {}
    assert wf["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert wf["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_superseded_runs_are_cancelled_and_jobs_time_out(wf):
    assert "github.ref" in wf["concurrency"]["group"]
    assert wf["concurrency"]["cancel-in-progress"] is True
    for job in wf["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 120


def test_checkout_does_not_keep_the_token(wf):
    (checkout,) = step_using(wf, "actions/checkout")
    assert checkout["with"]["persist-credentials"] is False


def test_deploy_runs_only_on_main_and_never_on_pull_requests(wf):
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["environment"]["url"] == "${{ steps.deployment.outputs.page_url }}"
    assert step_using(wf, "actions/deploy-pages", job="deploy")[0]["id"] == "deployment"
    assert runs(deploy.get("if"), *PUSH_MAIN)
    assert runs(deploy.get("if"), *DISPATCH_MAIN)
    assert not runs(deploy.get("if"), *PULL_REQUEST)
    assert not runs(deploy.get("if"), "pull_request", "refs/heads/main")
    assert not runs(deploy.get("if"), *DISPATCH_BRANCH)


def test_site_goes_to_pages_on_main_and_to_a_review_artifact_otherwise(wf):
    (pages,) = step_using(wf, "actions/upload-pages-artifact")
    (review,) = step_using(wf, "actions/upload-artifact")
    assert pages["with"]["path"] == review["with"]["path"] == "_site"
    for run in (PUSH_MAIN, DISPATCH_MAIN):
        assert runs(pages.get("if"), *run) and not runs(review.get("if"), *run)
    for run in (PULL_REQUEST, DISPATCH_BRANCH):
        assert runs(review.get("if"), *run) and not runs(pages.get("if"), *run)


def test_tests_then_full_render_with_the_venv_python(wf):
    scripts = [s.get("run", "").strip() for s in steps(wf)]
    assert scripts.index("make test") < scripts.index("make render")
    render = step_running(wf, "make render")
    assert render["env"]["QUARTO_PYTHON"] == "${{ github.workspace }}/.venv/bin/python"
    # Quick mode would publish 1-epoch toy results: it must not reach the render.
    for env in (wf.get("env", {}), wf["jobs"]["build"].get("env", {}), render["env"]):
        assert "LOWRANK_QUICK" not in env
    assert "LOWRANK_QUICK" not in render["run"]


def test_caches_hold_mnist_and_models_keyed_by_the_code(wf):
    caches = {s["with"]["path"]: s["with"] for s in step_using(wf, "actions/cache")}
    assert set(caches) == {"data", ".cache/lowrank"}
    key = caches[".cache/lowrank"]["key"]
    assert re.search(r"hashFiles\([^)]*'code/\*\*'", key), key
    assert "pyproject.toml" in key


def test_no_expressions_inside_run_scripts(wf):
    # Values reach scripts through env:, so nothing is spliced into shell code.
    for job in wf["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step
