"""The publish workflow, checked offline: zizmor, actionlint, GitHub's workflow schema, and the
rules we rely on.

    .venv/bin/pytest tests/test_workflow.py

zizmor and check-jsonschema are dev dependencies; `make setup` installs them. actionlint is the
extra `actionlint` (`make setup EXTRAS=dev,actionlint`): its install downloads a binary from
GitHub, so where it is missing its test skips, unless LOWRANK_REQUIRE_ACTIONLINT=1 (the
workflow sets it).
"""

import json
import os
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


def tool(name, missing=pytest.fail, extra="dev"):
    """Path of a dev tool installed next to this Python, else on PATH; fail (not skip) if
    missing."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        missing(f"{name} is not installed; run `make setup EXTRAS={extra}` (the extra has it)")
    return found


def lint(*command):
    return subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def wf():
    return yaml.safe_load(WORKFLOW.read_text())


def steps(wf, job="render"):
    return wf["jobs"][job]["steps"]


def step_running(wf, command, job="render"):
    (step,) = [s for s in steps(wf, job) if command in s.get("run", "")]
    return step


def step_using(wf, action, job="render"):
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


def test_actionlint_reports_nothing():
    required = os.environ.get("LOWRANK_REQUIRE_ACTIONLINT", "").strip() == "1"
    actionlint = tool("actionlint", pytest.fail if required else pytest.skip, "dev,actionlint")
    result = lint(actionlint, "-no-color")
    assert result.returncode == 0, result.stdout + result.stderr


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
    for name in ("test", "train", "render"):
        assert wf["jobs"][name]["permissions"] == {"contents": "read"}, name
    assert wf["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_superseded_runs_are_cancelled_on_pull_requests_only_and_jobs_time_out(wf):
    assert "github.ref" in wf["concurrency"]["group"]
    cancel = wf["concurrency"]["cancel-in-progress"]
    assert runs(cancel, *PULL_REQUEST)
    for run in (PUSH_MAIN, DISPATCH_MAIN, DISPATCH_BRANCH):  # main is never stopped half-way
        assert not runs(cancel, *run)
    for job in wf["jobs"].values():
        assert 0 < job["timeout-minutes"] <= 120


def test_checkout_does_not_keep_the_token(wf):
    for name in ("test", "train", "render"):
        (checkout,) = step_using(wf, "actions/checkout", name)
        assert checkout["with"]["persist-credentials"] is False


def test_deploy_runs_only_on_main_and_never_on_pull_requests(wf):
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "render"
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


def test_tests_and_training_then_full_render_with_the_venv_python(wf):
    step_running(wf, "make test", job="test")
    assert set(wf["jobs"]["render"]["needs"]) == {"test", "train"}
    render = step_running(wf, "make render")
    assert render["env"]["QUARTO_PYTHON"] == "${{ github.workspace }}/.venv/bin/python"
    # Quick mode would publish 1-epoch toy results: it must not reach training or the render.
    for job in ("train", "render"):
        for env in (
            wf.get("env", {}),
            wf["jobs"][job].get("env", {}),
            *(s.get("env", {}) for s in steps(wf, job)),
        ):
            assert "LOWRANK_QUICK" not in env
        assert not any("LOWRANK_QUICK" in s.get("run", "") for s in steps(wf, job))


def model_key(with_):
    key = with_["key"]
    assert re.search(r"hashFiles\([^)]*'code/\*\*'[^)]*'pyproject.toml'", key), key
    return key


def test_each_share_trains_its_part_and_saves_it_even_when_it_fails(wf):
    train = wf["jobs"]["train"]
    shards = train["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and train["strategy"]["fail-fast"] is False
    (command,) = [s for s in steps(wf, "train") if "--shard" in s.get("run", "")]
    assert '--shard "$SHARD"' in command["run"]
    assert command["env"]["SHARD"] == f"${{{{ matrix.shard }}}}/{len(shards)}"
    (shared, own) = step_using(wf, "actions/cache/restore", "train")
    assert shared["with"]["path"] == ".cache/lowrank"
    assert model_key(shared["with"]).startswith("lowrank-models-")
    assert shared["with"]["restore-keys"].splitlines()[-1] == "lowrank-models-${{ runner.os }}-"
    (save,) = step_using(wf, "actions/cache/save", "train")
    assert save["if"].startswith("always()")  # also when training failed or was cancelled
    assert save["with"]["path"] == own["with"]["path"]
    assert model_key(save["with"]) == model_key(own["with"])  # a key per share and run:
    for part in ("${{ matrix.shard }}", "${{ github.run_id }}", "${{ github.run_attempt }}"):
        assert part in save["with"]["key"]
    # the share's own newest save: its key less the run
    prefix = save["with"]["key"].split("${{ github.run_id }}")[0]
    assert own["with"]["restore-keys"].splitlines() == [prefix]
    collect = [s for s in steps(wf, "train") if s.get("id") == "collect"]
    assert collect and collect[0]["if"] == "always()"


def test_render_restores_every_share_and_checks_that_nothing_is_missing(wf):
    shards = wf["jobs"]["train"]["strategy"]["matrix"]["shard"]
    (share_save,) = step_using(wf, "actions/cache/save", "train")
    shared, *own = step_using(wf, "actions/cache/restore", "render")
    assert shared["with"] == step_using(wf, "actions/cache/restore", "train")[0]["with"]
    assert [s["with"]["key"] for s in own] == [
        share_save["with"]["key"].replace("${{ matrix.shard }}", str(i)) for i in shards
    ]
    assert all(s["with"]["path"] == share_save["with"]["path"] for s in own)
    scripts = [s.get("run", "") for s in steps(wf)]
    check = next(i for i, r in enumerate(scripts) if "--shard 1/1 --dry-run" in r)
    assert "exit 1" in scripts[check]
    assert check < next(i for i, r in enumerate(scripts) if r.startswith("make train"))
    (save,) = step_using(wf, "actions/cache/save")
    assert save["if"].startswith("always()") and save["with"]["path"] == ".cache/lowrank"
    assert save["with"]["key"].startswith(shared["with"]["restore-keys"].splitlines()[0])


def test_mnist_is_cached_under_a_fixed_key(wf):
    for name in ("test", "train", "render"):
        (mnist,) = step_using(wf, "actions/cache", name)
        assert mnist["with"] == {"path": "data", "key": "mnist-v1"}


def test_no_expressions_inside_run_scripts(wf):
    # Values reach scripts through env:, so nothing is spliced into shell code.
    for job in wf["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step


def test_render_saves_the_cache_after_rendering_so_the_analyses_are_kept(wf):
    names = [s.get("name") or s.get("uses", "") for s in steps(wf, "render")]
    (save,) = step_using(wf, "actions/cache/save", "render")
    assert names.index("Render") < names.index(save["name"]) < names.index("Upload site for Pages")
    assert names.index("Render") < names.index("Collect new models")
