"""Recipe files: `sentvae train --config FILE.toml` reads `train` options from a TOML file.

Keys are option names (`lr`, `kl-anneal` or `kl_anneal`, `data = ["a.txt", "b.txt"]`,
`bidirectional = false`); each becomes the command-line flag it names, placed before the
flags actually typed, so every value is parsed and checked exactly as a flag is, and a flag
on the command line wins over the file (for a list such as `data`, the command line's list
replaces the file's). A key that is not a `train` option is an error naming it.

`base = "other.toml"` (a path relative to the file) starts from another recipe: the file's own
keys replace the base's, so a variant holds only what differs from the recipe it varies.
"""

from pathlib import Path

from typer import TyperException

from sentvae.errors import SentvaeError


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if path.is_dir():
        raise SentvaeError(f"--config {path}: is a directory, expected a TOML file")
    if not path.is_file():
        raise SentvaeError(f"--config {path}: no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SentvaeError(f"--config {path}: not valid TOML ({e})") from None


def _load_recipe(path: Path, seen: tuple = ()) -> dict:
    """The keys of a recipe, its `base` chain resolved (the nearer file wins)."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise SentvaeError(f"--config {seen[0]}: its bases go round in a circle ({chain})")
    keys = _load_toml(path)
    base = keys.pop("base", None)
    if base is None:
        return keys
    if not isinstance(base, str):
        raise SentvaeError(f"--config {path}: key 'base' must be a file name, not {base!r}")
    if not (path.parent / base).is_file():
        what = "is a directory" if (path.parent / base).is_dir() else "no such file"
        raise SentvaeError(f"--config {path}: base {base!r}: {what} ({path.parent / base})")
    return {**_load_recipe(path.parent / base, (*seen, path.resolve())), **keys}


def expand(args: list[str], params) -> list[str]:
    """Replace `--config FILE` in a `train` argument list by the flags the file sets.

    params: the click parameters of the `train` command (name, opts, secondary_opts,
    is_flag, multiple)."""
    args = [w for a in args for w in (a.split("=", 1) if a.startswith("--config=") else [a])]
    if "--config" not in args:
        return args
    i = args.index("--config")
    if i + 1 >= len(args):
        raise SentvaeError("--config: needs a file")
    path = Path(args[i + 1])
    rest = args[:i] + args[i + 2:]
    by_name = {p.name: p for p in params if getattr(p, "opts", None) and p.opts[0].startswith("--")}
    typed = {a.split("=", 1)[0] for a in rest if a.startswith("-")}
    out = []
    for key, value in _load_recipe(path).items():
        name = key.replace("-", "_")
        p = by_name.get(name)
        if p is None or name == "config":
            raise SentvaeError(f"--config {path}: unknown key {key!r} (not a `sentvae train` option)")
        if typed & set(p.opts + list(p.secondary_opts)):
            continue                                  # the command line says otherwise
        if p.is_flag:
            if not isinstance(value, bool):
                raise SentvaeError(f"--config {path}: key {key!r} must be true or false, not {value!r}")
            flag = p.opts[0] if value else (p.secondary_opts[0] if p.secondary_opts else None)
            out += [flag] if flag else []
        elif p.multiple:
            values = value if isinstance(value, list) else [value]
            for v in values:
                out += [p.opts[0], str(v)]
        else:
            if isinstance(value, (dict, list)):
                raise SentvaeError(f"--config {path}: key {key!r} takes one value, not {value!r}")
            text = str(value).lower() if isinstance(value, bool) else str(value)
            try:
                p.process_value(None, text)                   # a wrong type named here, with the file
            except TyperException as e:
                raise SentvaeError(f"--config {path}: key {key!r}: {e.format_message()}") from None
            out += [p.opts[0], text]
    return out + rest
