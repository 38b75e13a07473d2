"""The publish workflow's `run:` steps, run here as GitHub runs them (bash -eo pipefail, the
step's env, $GITHUB_OUTPUT), with every `${{ ... }}` replaced by a stand-in value.

    outputs = run_step(find_step("Site and repository addresses"), cwd=copy)
"""

import os
import re
import subprocess
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "publish.yml"

# stand-ins for the expressions the steps' env uses; an expression missing here fails the test
VALUES = {
    "github.repository_owner": "Example",
    "github.event.repository.name": "lowrank",
    "github.server_url": "https://github.com",
    "matrix.shard": "2",
}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def all_steps() -> list[tuple[str, dict]]:
    """(job, step) for every step of every job."""
    return [(job, s) for job, spec in workflow()["jobs"].items() for s in spec["steps"]]


def find_step(name: str, job: str | None = None) -> dict:
    (step,) = [s for j, s in all_steps() if s.get("name") == name and job in (None, j)]
    return step


def substitute(value: str, values: dict) -> str:
    def one(match):
        expr = match[1].strip()
        if expr not in values:
            raise KeyError(f"no stand-in for ${{{{ {expr} }}}}: add it to tests/workflow.py")
        return values[expr]

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


def run_step(step: dict, cwd: Path, env: dict | None = None, values: dict | None = None):
    """Run step's script in cwd; return (exit code, output, {name: value} from $GITHUB_OUTPUT)."""
    values = {**VALUES, "github.workspace": str(cwd), **(values or {})}
    outputs = cwd / ".github-output"
    outputs.write_text("")
    step_env = {k: substitute(v, values) for k, v in step.get("env", {}).items()}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **(env or {}), **step_env, "GITHUB_OUTPUT": str(outputs)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    pairs = [line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line]
    outputs.unlink()
    return done.returncode, done.stdout + done.stderr, dict(pairs)


def pages_profile(cwd: Path) -> Path:
    """_quarto-pages.yml as the workflow writes it, written into cwd."""
    code, out, _ = run_step(find_step("Site and repository addresses"), cwd)
    assert code == 0, out
    return cwd / "_quarto-pages.yml"
