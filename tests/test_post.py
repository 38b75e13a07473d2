"""The post, post/index.qmd, executed cell by cell in quick mode, as `quarto render` would run it.

    .venv/bin/python -m pytest tests/test_post.py

The cells run once per session in a Jupyter kernel started from this interpreter, with
LOWRANK_QUICK=1 and the working directory post/ (what Quarto uses). Each test then checks one
property of the executed post. The real `quarto render` and a browser check are in
tests/test_render.py.
"""

import re
import sys
from pathlib import Path

import pytest
import qmd

ROOT = Path(__file__).resolve().parents[1]
POST = ROOT / "post" / "index.qmd"
BIB = ROOT / "post" / "references.bib"
QUICK_ENV = {"LOWRANK_QUICK": "1"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CROSSREF_PREFIXES = ("fig-", "tbl-", "sec-", "eq-", "lst-")


@pytest.fixture(scope="module")
def doc():
    return qmd.parse_file(POST)


@pytest.fixture(scope="module")
def run(doc, quick_models):
    """The post's cells executed in order (stops at the first failing cell), once the quick
    models are trained (conftest.py)."""
    return qmd.execute(doc.cells, cwd=POST.parent, env={**QUICK_ENV, "LOWRANK_CACHE": quick_models})


def where(cell) -> str:
    path = Path(cell.path) if cell.path else POST
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{cell.line}"


def prose(doc) -> str:
    """The Markdown of the post without code blocks and code spans (what citations live in)."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", doc.markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def test_kernel_runs_this_interpreter(run):
    """The cells must see the package installed in the environment the tests run in."""
    assert run.metadata.kernel_executable == sys.executable


def test_every_cell_runs(doc, run):
    index = run.metadata.first_error
    if index is not None:
        error = next(o for o in run.cells[index].outputs if o.output_type == "error")
        traceback = ANSI.sub("", "\n".join(error.traceback))
        pytest.fail(
            f"cell at {where(doc.cells[index])} raised {error.ename}: {error.evalue}\n{traceback}"
        )


def test_every_inline_expression_evaluates(doc, run):
    assert run.metadata.first_error is None, "a cell failed (see test_every_cell_runs)"
    failures, escaped = [], []
    for cell, nb_cell in zip(doc.cells, run.cells):
        if cell.kind != "markdown":
            continue
        results = nb_cell.metadata.get("user_expressions", [])
        assert [r["expression"] for r in results] == cell.inline, f"not evaluated: {where(cell)}"
        for r in results:
            result = r["result"]
            if result.get("status") != "ok":
                failures.append(
                    f"{where(cell)}: {r['expression']} -> "
                    f"{result.get('ename')}: {result.get('evalue')}"
                )
                continue
            data = result.get("data", {})
            text = data.get("text/markdown") or data.get("text/plain", "")
            if (
                not text.strip()
                or text.strip() in ("None", "''", '""')
                or "nan" in text.lower().split()
            ):
                failures.append(
                    f"{where(cell)}: {r['expression']} -> empty or meaningless {text!r}"
                )
            # Quarto strips the quotes of a str result and escapes Markdown in it; a repr with a
            # backslash would come out doubled. Return IPython.display.Markdown for such text.
            if "text/markdown" not in data and text[:1] in "'\"" and "\\" in text:
                escaped.append(f"{where(cell)}: {r['expression']} -> {text}")
    assert not failures, "inline expressions that failed:\n" + "\n".join(failures)
    assert not escaped, "str results with backslashes (Quarto would mangle them):\n" + "\n".join(
        escaped
    )


def test_no_inline_expression_inside_math(doc):
    """Quarto escapes `.`, `-`, `(` ... in str results with backslashes, which breaks TeX."""
    inside = []
    for cell in doc.cells:
        if cell.kind != "markdown":
            continue
        # displayed code blocks ({ojs} cells: `${...}` in JavaScript) are not prose
        text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", cell.source, flags=re.MULTILINE | re.DOTALL)
        for m in qmd.INLINE.finditer(text):
            before = re.sub(r"`[^`\n]*`", "", text[: m.start()])
            if before.count("$") % 2:
                inside.append(f"{where(cell)}: {m.group(1)}")
    assert not inside, "inline expressions inside $...$:\n" + "\n".join(inside)


def figure_cells(doc):
    return [
        (i, c)
        for i, c in enumerate(doc.cells)
        if c.kind == "code" and str(c.options.get("label", "")).startswith("fig-")
    ]


def test_every_figure_has_caption_alt_text_and_an_image(doc, run):
    assert run.metadata.first_error is None, "a cell failed (see test_every_cell_runs)"
    figures = figure_cells(doc)
    assert len(figures) >= 8, f"expected the eight figures of the post, found {len(figures)}"
    for i, cell in figures:
        label = cell.options["label"]
        for option in ("fig-cap", "fig-alt"):
            assert str(cell.options.get(option, "")).strip(), (
                f"{label} ({where(cell)}) has no {option}"
            )
        images = [o for o in run.cells[i].outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (
            f"{label} ({where(cell)}) produced {len(images)} images, expected 1"
        )
    labels = [c.options["label"] for _, c in figures]
    assert len(labels) == len(set(labels)), f"duplicate figure labels: {labels}"


def test_figure_references_and_labels_match(doc):
    labels = {c.options["label"] for _, c in figure_cells(doc)}
    references = set(re.findall(r"(?<![\w@])@(fig-[\w-]*\w)", prose(doc)))
    assert references - labels == set(), f"@-references without a figure: {references - labels}"
    assert labels - references == set(), (
        f"figures never referenced in the text: {labels - references}"
    )


def bib_keys() -> set[str]:
    keys = re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(), flags=re.MULTILINE)
    assert len(keys) == len(set(keys)), f"duplicate keys in {BIB.name}"
    return set(keys)


def test_every_bibliography_entry_is_closed_before_the_next_one():
    """Pandoc refuses the whole file for one missing brace, and the render fails far from it."""
    depth = 0
    for number, line in enumerate(BIB.read_text().splitlines(), 1):
        if line.startswith("@"):
            assert depth == 0, f"{BIB.name}:{number}: an entry starts inside another"
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"{BIB.name}:{number}: a brace closes nothing"
    assert depth == 0, f"{BIB.name}: the last entry is not closed"


def test_every_citation_is_in_the_bibliography(doc):
    cited = set(re.findall(r"(?<![\w@])@([A-Za-z][\w:.-]*[A-Za-z0-9])", prose(doc)))
    cited = {key for key in cited if not key.startswith(CROSSREF_PREFIXES)}
    assert cited, "the post cites nothing"
    assert cited - bib_keys() == set(), f"cited but not in {BIB.name}: {cited - bib_keys()}"


def test_front_matter(doc):
    fm = doc.front_matter
    for key in ("title", "description", "author", "date", "categories"):
        assert fm.get(key), f"front matter has no {key}"
    assert fm.get("jupyter") == "python3"
    assert not fm.get("draft"), "a draft would be left out of the site's listing"


def test_no_todo_in_post_files():
    offenders = [
        p.relative_to(ROOT)
        for p in (ROOT / "post").rglob("*")
        if p.is_file()
        and p.suffix in (".qmd", ".bib", ".md", ".yml", ".py")
        and "TODO" in p.read_text()
    ]
    assert not offenders, f"TODO left in {offenders}"


# Markdown shown only in other formats (the notebook's "Running this notebook" note)
NOT_HTML = re.compile(
    r'^:::+ *\{\.content-visible when-format="(?!html)[^"]*"\}.*?^:::+ *$', re.MULTILINE | re.DOTALL
)


def test_quick_mode_banner_comes_first(doc, run):
    assert run.metadata.first_error is None, "a cell failed (see test_every_cell_runs)"
    for i, cell in enumerate(doc.cells):
        if cell.kind == "markdown" and NOT_HTML.sub("", cell.source).strip():
            pytest.fail(f"no quick-mode banner before the first text at {where(cell)}")
        if cell.kind != "code":
            continue
        out = "".join(o.get("text", "") for o in run.cells[i].outputs if o.output_type == "stream")
        if "callout-warning" in out:
            assert cell.options.get("output") == "asis", "the banner cell must print raw Markdown"
            assert "quick mode" in out.lower()
            return
    pytest.fail("no quick-mode banner")


def test_source_listings_are_the_package_code(doc, run):
    """The `output: asis` cells that show source print one fenced python block of real code."""
    assert run.metadata.first_error is None, "a cell failed (see test_every_cell_runs)"
    shown = 0
    for i, cell in enumerate(doc.cells):
        if cell.options.get("output") == "asis" and "show_source(" in cell.source:
            out = "".join(
                o.get("text", "") for o in run.cells[i].outputs if o.output_type == "stream"
            )
            fence = "```{.python .code-overflow-wrap}\n"
            assert out.startswith(fence) and out.rstrip().endswith("```"), where(cell)
            compile(out.strip()[len(fence) : -3], where(cell), "exec")
            shown += 1
    assert shown >= 7


def shown(cell) -> bool:
    """Whether a reader sees the cell's code (folded plotting code counts: it can be unfolded)."""
    return (
        cell.kind == "code"
        and str(cell.options.get("echo", True)).lower() != "false"
        and str(cell.options.get("include", True)).lower() != "false"
    )


def test_shown_cells_alone_run_top_to_bottom(doc, quick_models):
    """What a reader copies runs in a fresh Python: no shown cell needs a hidden one."""
    cells = [c for c in doc.cells if shown(c)]
    assert len(cells) >= 20
    nb = qmd.execute(cells, cwd=POST.parent, env={**QUICK_ENV, "LOWRANK_CACHE": quick_models})
    error = nb.metadata.first_error
    if error is not None:
        out = next(o for o in nb.cells[error].outputs if o.output_type == "error")
        pytest.fail(f"{where(cells[error])}: {out.ename}: {out.evalue}")


def test_inline_expressions_are_short(doc):
    """An inline expression is a name or a short call: anything longer is a named value computed
    in a cell, where a reader can find it."""
    long = [
        f"{where(c)}: {len(e)} characters: {e[:60]}"
        for c in doc.cells
        if c.kind == "markdown"
        for e in c.inline
        if len(e) > 80
    ]
    assert not long, "inline expressions over 80 characters:\n" + "\n".join(long)


def test_every_include_names_what_it_takes_from_earlier_cells():
    """Each include says near its top which values of earlier cells it uses."""
    for include in sorted(POST.parent.glob("_*.qmd")):
        assert "Takes from earlier cells:" in include.read_text()[:400], include.name


def test_shown_code_fits_the_column(doc):
    """Shown code lines fit the text column at 1280 px (about 88 characters; see test_render)."""
    long = [
        f"{where(c)}+{i}: {len(line)} columns"
        for c in doc.cells
        if shown(c)
        for i, line in enumerate(c.source.splitlines(), 1)
        if len(line) > 88
    ]
    assert not long, "shown code lines longer than 88 columns:\n" + "\n".join(long)


def test_the_figures_that_answer_the_questions_are_there(doc):
    labels = {c.options["label"] for _, c in figure_cells(doc)}
    for label in (
        "fig-anatomy",
        "fig-baselines",
        "fig-classes",
        "fig-drop",
        "fig-finetune",
        "fig-layers",
        "fig-mechanism",
        "fig-needed-rank",
        "fig-tolerance",
    ):
        assert label in labels, label
