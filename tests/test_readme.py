"""The README tells the truth about what the code supports."""

from pathlib import Path

from lmtt.cli.models import family_table_markdown
from lmtt.models.families import support_matrix

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_family_matrix_matches_the_records():
    assert family_table_markdown(support_matrix()) in README.read_text(encoding="utf-8")
