"""The documentation site (mkdocs + mkdocstrings, the API reference generated from the docstrings) builds in
strict mode: a broken link, a missing page or a docstring the reference cannot parse fails it."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "api" / "sparse" / "index.html").read_text()
    assert "SparseCodingBottleneck" in page and "SparseCodeRate" in page
