"""The documentation a user reads: the site builds with `mkdocs build --strict` (a broken link or
anchor, or a page left out of the navigation, fails it); its command reference is generated from
the command line, so every option of every command is there and a new one appears with no page
edited; every recipe under configs/ parses as `sentvae train --config` reads it; every recipe,
--config path, bench/ptb.sh row and link that README.md and docs/ name exists; the version is one."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from markdown.extensions.toc import slugify

import sentvae
import sentvae.cli
from sentvae.recipe import expand

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}     # mkdocs-material's banner about MkDocs 2.0


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """`mkdocs build --strict`, as `make docs` runs it."""
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def reference_sections(page: Path) -> dict[str, str]:
    """The built command reference's text, one entry per command (its section's id)."""
    text = page.read_text(encoding="utf-8")
    parts = re.split(r'<h2 id="([\w-]+)"', text)
    return {parts[i]: html.unescape(re.sub(r"<[^>]+>", " ", parts[i + 1])) for i in range(1, len(parts), 2)}


def commands():
    """(section id, command, its params) for `sentvae` and each of its commands."""
    root = sentvae.cli.build_command()
    ctx = root.context_class(root, info_name="sentvae")
    yield "sentvae", root, root.get_params(ctx)
    for name, cmd in root.commands.items():
        yield name, cmd, cmd.get_params(cmd.context_class(cmd, info_name=name, parent=ctx))


def test_the_site_builds_strictly_with_every_page(site):
    for page in (ROOT / "docs").rglob("*.md"):
        built = site / page.relative_to(ROOT / "docs").with_suffix(".html")
        assert built.is_file(), f"{page} was not built"
    assert "Results on Penn Treebank" in (site / "results" / "ptb.html").read_text(encoding="utf-8")


def test_every_option_of_every_command_is_in_the_reference(site):
    sections = reference_sections(site / "reference" / "cli.html")
    for name, cmd, params in commands():
        assert name in sections, f"no section for {name} in the command reference"
        for param in params:
            if param.hidden:
                continue
            shown = param.opts + param.secondary_opts if param.param_type_name == "option" else [param.name]
            for opt in shown:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", sections[name]), \
                    f"{opt} of {name} is not in the command reference"


def test_a_new_option_reaches_the_reference_without_a_page_edited(tmp_path, monkeypatch):
    """An option added to `train` the way the code adds one (a typer parameter) shows up in the
    built reference, in its panel, though no page mentions it."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    extra = typer.Typer()

    @extra.command()
    def knob(brand_new_knob: Annotated[int, typer.Option(help="a knob no page mentions",
                                                         rich_help_panel="Objective")] = 3):
        pass

    new = next(p for p in typer.main.get_command(extra).params if p.name == "brand_new_knob")
    real = sentvae.cli.build_command

    def with_knob():
        command = real()
        command.commands["train"].params.append(new)
        return command

    monkeypatch.setattr(sentvae.cli, "build_command", with_knob)
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    monkeypatch.chdir(ROOT)
    assert not any("brand-new-knob" in p.read_text(encoding="utf-8") for p in PAGES)
    build(load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(tmp_path / "site")))
    train = reference_sections(tmp_path / "site" / "reference" / "cli.html")["train"]
    objective = train[train.index("Objective"):]
    assert re.search(r"--brand-new-knob <int>\s+a knob no page mentions", objective)


def test_every_recipe_parses_as_train_reads_it_and_is_named_for_its_run():
    """Each recipe under configs/ (experiments too), its bases resolved, is a valid set of `train`
    options; its run folder is runs/ + its name, which is how bench/ptb.sh names the row."""
    train = sentvae.cli.build_command().commands["train"]
    recipes = sorted((ROOT / "configs").rglob("*.toml"))
    assert recipes
    for path in recipes:
        ctx = train.make_context("train", expand(["--config", str(path)], train.params))
        assert Path(ctx.params["out"]) == Path("runs") / path.stem, path


def test_every_recipe_and_row_the_pages_name_exists_and_every_recipe_is_named():
    recipes = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.toml")}
    named = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for path in re.findall(r"--config\s+([\w./-]+\.toml)", text) + re.findall(r"configs/[\w./-]+\.toml", text):
            if "/" in path and path == path.lower():        # not a placeholder (FILE.toml, ptb-ROW.toml)
                assert (ROOT / path).is_file(), f"{page.name} names {path}, which does not exist"
                named.add(path)
        for row in re.findall(r"bench/ptb\.sh ([a-z0-9-]+)", text):
            found = {f"configs/ptb-{row}.toml", f"configs/experiments/ptb-{row}.toml"} & recipes
            assert found, f"{page.name} runs bench/ptb.sh {row}: no configs/ptb-{row}.toml"
            named |= found
        for recipe in re.findall(r"`(ptb-[a-z0-9-]+\.toml)`", text):      # a bare name, in a table
            assert {f"configs/{recipe}", f"configs/experiments/{recipe}"} & recipes, f"{page.name}: {recipe}"
            named.add(f"configs/{recipe}")
    unnamed = {r for r in recipes if not r.startswith("configs/experiments/")} - named
    assert not unnamed, f"recipes in configs/ that no page uses (move them to configs/experiments/): {unnamed}"


def test_the_readme_links_go_somewhere():
    """README.md is read on its own (not built): its relative links and their anchors must exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert len(links) > 20
    for link in links:
        if re.match(r"\w+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+\s+(.+?)\s*$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {slugify(h, "-") for h in headings}, f"README.md: no #{anchor} in {path}"


def test_one_version_and_a_changelog_entry_for_it():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert sentvae.__version__ == version
    assert re.search(rf"^## \[{re.escape(version)}\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
