"""Every example of docs/testing.md runs as written, as its own test module.

The examples are whole modules; they run in a subprocess under a plain
pytest with no configuration of its own, which also shows that the
``testing`` extra's plugin makes async tests run without any setup.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_documents_every_public_helper() -> None:
    import lms_shared.testing as testing

    text = DOC.read_text()
    helpers = [n for n in testing.__all__ if not n.endswith("Factory") and n[0].islower()]
    missing = [name for name in helpers if name not in text and name != "postgres_unreachable"]
    assert missing == []


def test_every_example_runs(tmp_path: Path) -> None:
    found = examples()
    assert len(found) >= 6
    for index, code in enumerate(found):
        (tmp_path / f"test_doc_{index:02d}.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary
    assert "skipped" not in summary or os.environ.get("CI") != "true"
    assert re.search(r"\b(\d+) passed", summary) is not None
