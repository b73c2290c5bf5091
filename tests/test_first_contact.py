"""What a new user meets first: the guide's pointers, the command line's words and
the messages for bad input."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rst_blocks(path, after):
    """The python code blocks of the rst section that starts at the title ``after``."""
    text = (ROOT / path).read_text()
    section = text.split(f"\n{after}\n", 1)[1]
    section = re.split(r"\n[^\n]+\n={3,}\n", section, maxsplit=1)[0]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", section)
    return ["\n".join(line[3:] for line in b.splitlines()) for b in blocks]


def test_guide_verbose_example_draws_progress(capsys):
    (code,) = _rst_blocks("doc/guide/practical.rst", "Progress of long fits")
    exec(compile(code, "practical.rst", "exec"), {})
    err = capsys.readouterr().err
    assert "CompVAE: [" in err and "5/5" in err and "loss=" in err
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`verbose=1`" in readme and "doc/guide/practical.rst" in readme
