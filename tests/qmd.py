"""Read a Quarto .qmd into front matter, Markdown chunks and {python} cells, and run them as
Quarto would.

    doc = parse_file(Path("post/index.qmd"))
    nb = execute(doc.cells, cwd="post", env={"LOWRANK_QUICK": "1"})

Quarto cannot be installed everywhere the tests run, so this does the part of `quarto render`
that can fail in Python: each code cell runs in order in one Jupyter kernel, and the inline
`{python} expr` expressions of a Markdown chunk are evaluated, as Quarto does, right after the
code cell before that chunk (as `user_expressions` of an empty execute request). Include
shortcodes, `{{< include _x.qmd >}}` on a line of their own, are expanded first, as Quarto does
before it executes anything, with the path relative to the including file.
"""

import ast
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

# Quarto's own pattern (src/core/execute-inline.ts): `{python} expr`, not preceded by a backtick.
INLINE = re.compile(r"(?:^|[^`])`\{python\}[ \t]([^`]+)`", re.MULTILINE)
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\S*)")
OPTION = re.compile(r"^#\s*\| ?")  # Quarto's comment prefix for python cell options
INCLUDE = re.compile(r"^\s*\{\{<\s*include\s+(\S+)\s*>\}\}\s*$")


@dataclass
class Cell:
    """A Markdown chunk or a {python} code cell of the .qmd, with its first line number
    (1-based)."""

    kind: str  # "markdown" or "code"
    source: str  # code without its `#|` option lines; Markdown as written
    line: int
    path: str | None = None  # the file the cell starts in (an included file, or the parsed one)
    options: dict = field(default_factory=dict)  # the cell's `#|` options (code only)
    inline: list[str] = field(default_factory=list)  # inline `{python}` expressions (Markdown only)


@dataclass
class Document:
    front_matter: dict
    cells: list[Cell]

    @property
    def markdown(self) -> str:
        return "\n".join(c.source for c in self.cells if c.kind == "markdown")

    @property
    def code_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == "code"]


def _code_cell(lines: list[str], origin: tuple) -> Cell:
    n = 0
    while n < len(lines) and OPTION.match(lines[n]):
        n += 1
    options = yaml.safe_load("\n".join(OPTION.sub("", l) for l in lines[:n])) if n else {}
    if not isinstance(options, dict):
        raise ValueError(
            f"{origin[0]}:{origin[1]}: cell options are not a YAML mapping: {lines[:n]}"
        )
    return Cell("code", "\n".join(lines[n:]), origin[1], path=origin[0], options=options)


def _markdown_cell(lines: list[str], origin: tuple) -> Cell:
    text = "\n".join(lines)
    return Cell(
        "markdown",
        text,
        origin[1],
        path=origin[0],
        inline=[e.strip() for e in INLINE.findall(text)],
    )


def _expand(text: str, path: Path | None, seen: tuple = ()) -> list[tuple[str, tuple]]:
    """The lines of `text` with include shortcodes replaced by the included files' lines.

    Each line comes with its origin (file name, 1-based line number) for error messages.
    """
    name = str(path) if path is not None else "<text>"
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        m = INCLUDE.match(line)
        if not m:
            out.append((line, (name, number)))
            continue
        if path is None:
            raise ValueError(f"line {number}: an include needs the including file's path: {line}")
        target = (path.parent / m.group(1)).resolve()
        if target in seen:
            raise ValueError(f"{name}:{number}: {m.group(1)} includes itself")
        if not target.is_file():
            raise ValueError(f"{name}:{number}: included file {m.group(1)} does not exist")
        out.extend(_expand(target.read_text(), target, (*seen, target)))
    return out


def parse_file(path: str | os.PathLike) -> Document:
    """`parse` of a .qmd file, with its includes resolved relative to it."""
    path = Path(path)
    return parse(path.read_text(), path)


def parse(text: str, path: str | os.PathLike | None = None) -> Document:
    """Split a .qmd into its YAML front matter and a list of Markdown and {python} cells.

    `path`, the file `text` came from, resolves include shortcodes; the included lines are
    parsed as if they stood in place of the shortcode.
    """
    expanded = _expand(text, Path(path).resolve() if path is not None else None)
    lines = [line for line, _ in expanded]
    origin = [o for _, o in expanded] + [
        (expanded[-1][1][0] if expanded else "<text>", len(expanded) + 1)
    ]
    front_matter, start = {}, 0
    if lines and lines[0].strip() == "---":
        end = next(i for i in range(1, len(lines)) if lines[i].strip() in ("---", "..."))
        front_matter, start = yaml.safe_load("\n".join(lines[1:end])) or {}, end + 1

    cells: list[Cell] = []
    chunk, chunk_start = [], start
    i = start
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            chunk.append(lines[i])
            i += 1
            continue
        fence, info = m.group(1), m.group(2)
        # find the closing fence: same character, at least as long, nothing after it
        close = next(
            (
                j
                for j in range(i + 1, len(lines))
                if re.fullmatch(re.escape(fence[0]) + f"{{{len(fence)},}}\\s*", lines[j])
            ),
            None,
        )
        if close is None:
            raise ValueError(f"{origin[i][0]}:{origin[i][1]}: fence {fence} is never closed")
        if re.fullmatch(r"\{python[^}]*\}", info):
            if any(l.strip() for l in chunk):
                cells.append(_markdown_cell(chunk, origin[chunk_start]))
            cells.append(_code_cell(lines[i + 1 : close], origin[i]))
            chunk, chunk_start = [], close + 1
        else:  # a displayed (not executed) code block belongs to the Markdown
            chunk.extend(lines[i : close + 1])
        i = close + 1
    if any(l.strip() for l in chunk):
        cells.append(_markdown_cell(chunk, origin[chunk_start]))
    return Document(front_matter, cells)


def _kernel_manager(spec_dir: Path) -> AsyncKernelManager:
    """A kernel manager whose python3 kernel is this interpreter (the venv the tests run in)."""
    (spec_dir / "python3").mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test interpreter)",
        "language": "python",
    }
    (spec_dir / "python3" / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)


def evaluate_inline(client: NotebookClient, expressions: list[str]) -> list[dict]:
    """Evaluate expressions the way Quarto does: user_expressions of an empty execute request."""
    msg_id = client.kc.execute(
        "",
        silent=False,
        store_history=False,
        user_expressions={str(i): e for i, e in enumerate(expressions)},
    )
    content = client.wait_for_reply(msg_id)["content"]
    if content["status"] != "ok":
        return [{"expression": e, "result": content} for e in expressions]
    return [
        {"expression": e, "result": content["user_expressions"][str(i)]}
        for i, e in enumerate(expressions)
    ]


def execute(
    cells: list[Cell], cwd: str | os.PathLike, env: dict | None = None, timeout: int = 600
) -> nbformat.NotebookNode:
    """Run the code cells in order in a fresh kernel; stop at the first failing cell.

    Returns a notebook with one nbformat cell per `Cell`: code cells carry their outputs,
    Markdown cells carry `metadata.user_expressions` (Quarto's format: expression and result).
    `metadata.first_error` of the notebook is the index of the failing cell, or None, and
    `metadata.kernel_executable` the kernel's sys.executable.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for c in cells:
        new = nbformat.v4.new_code_cell if c.kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(new(c.source))
    nb.metadata.first_error = None
    with tempfile.TemporaryDirectory() as tmp:
        km = _kernel_manager(Path(tmp))
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            allow_errors=True,
            resources={"metadata": {"path": str(cwd)}},
        )
        try:
            with client.setup_kernel(env={**os.environ, **(env or {})}):
                check = evaluate_inline(client, ["__import__('sys').executable"])[0]["result"]
                nb.metadata.kernel_executable = ast.literal_eval(check["data"]["text/plain"])
                for index, (cell, c) in enumerate(zip(nb.cells, cells)):
                    if c.kind == "code":
                        client.execute_cell(cell, index)
                        if any(o.output_type == "error" for o in cell.outputs):
                            nb.metadata.first_error = index
                            break
                    elif c.inline:
                        cell.metadata["user_expressions"] = evaluate_inline(client, c.inline)
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
    return nb
