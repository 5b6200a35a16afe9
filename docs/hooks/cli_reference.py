"""MkDocs hook: the command reference, docs/reference/cli.md, generated from the command line.

That page holds the marker line `<!-- sentvae-commands -->`; on every build the marker becomes one
section per command of `sentvae.cli.command` (the click command behind `sentvae`, every command
registered): its help, its usage, and a table of its arguments and options for each of its --help
panels, made of the same help records `sentvae CMD --help` prints. So a new command or option
appears in the reference without a page being edited (tests/test_docs.py adds one and looks).

Why not mkdocs-click: typer builds its commands on its own copy of click (`typer._click`), whose
parameters are not instances of click's classes, so mkdocs-click finds no options in them.
"""

import html

MARKER = "<!-- sentvae-commands -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, commands_markdown())


def commands_markdown() -> str:
    import sentvae.cli

    root = sentvae.cli.command                  # built now: whatever options the code has today
    root_ctx = root.context_class(root, info_name="sentvae")
    sections = [_section(root, root_ctx, "sentvae", "sentvae")]
    for name in root.list_commands(root_ctx):   # the order `sentvae --help` lists them in
        cmd = root.get_command(root_ctx, name)
        sections.append(_section(cmd, cmd.context_class(cmd, info_name=name, parent=root_ctx),
                                 f"sentvae {name}", name))
    return "\n\n".join(sections) + "\n"


def _section(cmd, ctx, path: str, anchor: str) -> str:
    lines = [f"## `{path}` {{#{anchor}}}", "", _text(cmd.help or ""), "", "```text",
             cmd.get_usage(ctx), "```", ""]
    panels: dict[str, list[tuple[str, str]]] = {}   # panel title -> (kind, row), in --help's order
    for param in cmd.get_params(ctx):
        record = None if param.hidden else param.get_help_record(ctx)
        if record is None:
            continue
        kind = "Argument" if param.param_type_name == "argument" else "Option"
        names, help_ = record
        panels.setdefault(param.rich_help_panel or kind + "s", []).append(
            (kind, f"| {_code(names)} | {_cell(_escape(_text(help_)))} |"))
    for title, rows in panels.items():
        lines += [f"**{title}**", "", f"| {rows[0][0]} | Description |", "|---|---|", *(r for _, r in rows), ""]
    return "\n".join(lines)


def _text(help_: str) -> str:
    # typer's help escapes "[" for rich ("\[default: 8000]"); click's "\b" marks a verbatim block
    return help_.replace("\\[", "[").replace("\b", "").strip()


def _escape(text: str) -> str:
    # "hf:NAME[:CONFIG] [default: ...]" would read as a reference link
    return text.replace("[", "\\[").replace("]", "\\]")


def _code(names: str) -> str:
    """An option's names and metavar as code in a table cell: HTML, so that the pipe of a
    choice (<strict|replace>) neither splits the row nor shows a backslash."""
    return f"<code>{html.escape(' '.join(names.split())).replace('|', '&#124;')}</code>"


def _cell(text: str) -> str:
    """One table cell: on one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
