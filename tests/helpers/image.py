"""Reading deploy/Dockerfile and .dockerignore as Docker does, for the tests that cannot build
the image (no Docker daemon where they run)."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    """One `FROM` and the instructions after it, as (KEYWORD, arguments) pairs."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage from {self.image}"
        return found[-1]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            found.append((keyword.upper(), " ".join(args.split())))
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, with the global `ARG`s' defaults substituted in `FROM`."""
    defaults: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "ARG" and not found:
            name, _, value = args.partition("=")
            defaults[name] = value
        elif keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m[1] or m[2]], words[0])
            named = len(words) == 3 and words[1].upper() == "AS"
            found.append(Stage(image, words[2] if named else None))
        elif found:
            found[-1].instructions.append((keyword, args))
    return found


def exec_form(args: str) -> list[str]:
    """The JSON array of a `CMD ["…", …]` (shell form is refused: signals would reach a shell)."""
    assert args.startswith("["), f"not the exec form: {args}"
    return list(re.findall(r'"((?:[^"\\]|\\.)*)"', args))


def shell_words(args: str) -> list[str]:
    return shlex.split(args)


class DockerIgnore:
    """.dockerignore's patterns, matched the way Docker's builder does: the last pattern that
    matches a path or one of its parent folders decides, `!` admits again, `**` spans folders."""

    def __init__(self, text: str):
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            admits = line.startswith("!")
            self.rules.append((admits, _pattern(line.removeprefix("!").strip("/"))))

    def admits_inside(self, folder: str) -> bool:
        return any(admits and rule.pattern.startswith(folder + "/") for admits, rule in self.rules)

    def excludes(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for admits, pattern in self.rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                excluded = not admits
        return excluded


def _pattern(glob: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.index("]", i)
            out, i = out + glob[i : end + 1], end + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def context_files(root: Path, ignore: DockerIgnore, under: str = "") -> list[str]:
    """The files under `root` (the folder `under` of the context) that `docker build` would
    send, relative to `root`. Like Docker, it skips an excluded folder unless a `!` pattern
    names something inside it."""
    sent = []
    for folder, folders, files in os.walk(root):
        here = "/".join(p for p in (under, Path(folder).relative_to(root).as_posix()) if p != ".")
        inside = [f"{here}/{name}" if here else name for name in folders]
        folders[:] = [
            name
            for name, path in zip(folders, inside, strict=True)
            if not ignore.excludes(path) or ignore.admits_inside(path)
        ]
        for name in files:
            path = f"{here}/{name}" if here else name
            if not ignore.excludes(path):
                sent.append(path.removeprefix(under).lstrip("/"))
    return sorted(sent)
