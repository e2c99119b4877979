"""The documentation: the CLI reference page follows the parser, README's links land, the site builds strictly.

`make test` also runs `mkdocs build --strict` itself (scripts/test.sh); the test here builds the site into a
temporary folder too, so a plain `pytest` catches a broken page as well.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "cli_reference.py"


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_page_matches_the_parser():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_reference_check_fails_on_a_stale_page(tmp_path):
    page = tmp_path / "cli.md"
    lines = (ROOT / "docs" / "cli.md").read_text().splitlines(True)
    dropped = next(i for i, line in enumerate(lines) if line.startswith("| `--resume"))
    page.write_text("".join(lines[:dropped] + lines[dropped + 1:]))
    done = subprocess.run([sys.executable, str(SCRIPT), "--check", "--page", str(page)], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "+| `--resume RUN_DIR`" in done.stdout  # the diff names the flag the page lacks
    assert "make docs-cli" in done.stderr


def test_cli_reference_renders_every_command_and_flag(monkeypatch):
    """A command or flag added to the parser appears on the page, with its help and default expanded."""
    from dcgan import cli

    def add_frobnicate(sub):
        p = sub.add_parser("frobnicate", help="a command only this test has", description="Frobnicates.")
        p.add_argument("--level", type=int, default=7, help="how much (default %(default)s)")
        p.add_argument("--mode", choices=["a", "b"], default="a", help="one of %(choices)s")

    monkeypatch.setattr(cli, "BUILTIN", [*cli.BUILTIN, add_frobnicate])
    monkeypatch.setenv("DCGAN_SERVER", "10.0.0.1:1")  # defaults from the environment are shown without it
    text = _cli_reference().render()
    assert "| [`dcgan frobnicate`](#dcgan-frobnicate) | a command only this test has |" in text
    assert "### dcgan frobnicate\n\nFrobnicates.\n" in text
    assert "| `--level LEVEL` | how much (default 7) |" in text
    assert "| `--mode {a,b}` | one of a, b |" in text
    assert "10.0.0.1" not in text and "127.0.0.1:8500" in text
    for heading in re.findall(r"^#+ (dcgan .+)$", text, flags=re.M):  # every table link has its section
        assert f"(#{heading.replace(' ', '-')})" in text or heading == "dcgan"


def _anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub and MkDocs' toc make them (lowercase, punctuation dropped, spaces to dashes)."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", re.sub(r"```.*?```", "", markdown, flags=re.S), flags=re.M):
        text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
        out.add(re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-"))
    return out


def test_readme_links_land():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15_000, "README.md is over 15 KB: move detail to docs/"
    assert "make run" in "\n".join(readme.splitlines()[:45]) and "make test" in "\n".join(readme.splitlines()[:45])
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", readme, flags=re.S)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is not installed beside this Python (the test extra has it: make setup)"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in ("cli/index.html", "benchmarks/index.html", "development/index.html", "serving/index.html"):
        assert page in built


def test_getting_started_lists_the_readme_prerequisites():
    """scripts/prerequisites.sh reads README's table; the site's getting-started page carries the same rows."""
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| Debian")
            or line.startswith("| Ubuntu")]
    assert len(rows) >= 4
    page = (ROOT / "docs" / "getting-started.md").read_text()
    assert [row for row in rows if row not in page] == []
