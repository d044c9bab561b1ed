"""The oldest uvicorn pyproject.toml allows serves runtime.ws_frames.

runtime.ws_frames subclasses uvicorn's sans-I/O websockets protocol, which older releases do
not have. This installs exactly the pinned lower bound into a scratch directory (pip, from the
package index) and runs tests/test_ws_frames.py against it in a subprocess, so lowering the pin
below what works, or a change that needs a newer uvicorn, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def pinned_minimum(package: str) -> str:
    """The version in `package>=VERSION` among pyproject.toml's dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(rf"{re.escape(package)}>=([0-9][0-9.]*)(,.*)?", requirement)
        if match:
            return match.group(1)
    raise AssertionError(f"pyproject.toml does not pin {package}>=")


def test_ws_frames_works_on_the_oldest_uvicorn_allowed(tmp_path: Path) -> None:
    version = pinned_minimum("uvicorn")
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--disable-pip-version-check", "--target", str(target), f"uvicorn=={version}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, f"pip could not install uvicorn=={version}:\n{install.stderr}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    seen = subprocess.run(
        [sys.executable, "-c", "import uvicorn; print(uvicorn.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert Version(seen.stdout.strip()) == Version(version), seen.stderr
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_ws_frames.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, f"on uvicorn {version}:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
