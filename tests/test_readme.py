"""Every command the README shows runs as written (issue 5): bash blocks line by line, python blocks whole.

They run in order in one scratch folder that holds what the README's reader would have:
a labelled ``data.csv`` (features f0..f4, column ``label``) and a copy of
``edgelr/runtime.py`` (the "copy one file" deployment). ``make`` targets and the
no-extras virtualenv are exercised by CI itself (``.ci/run``: make demo, make test,
make edge-check), so those lines are checked against the Makefile instead of run here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import data_csv, make_data

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, flags=re.S)


def commands(block: str) -> list[str]:
    """Shell lines of a bash block, backslash continuations joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def covered_by_make(line: str) -> bool:
    """Lines CI runs through make: the make targets themselves and the edge virtualenv."""
    if line.startswith("make "):
        target = line.split()[1]
        assert re.search(rf"^{target}:", MAKEFILE, flags=re.M), f"README runs 'make {target}', no such target"
        return True
    if "pip install" in line:
        assert "$(PYTHON) -m venv $(EDGE)" in MAKEFILE and "$(EDGE)/bin/pip install --quiet ." in MAKEFILE
        return True
    return False


def test_readme_shows_the_setup_commands_first():
    first = commands(BLOCKS[0][1])
    assert [c.split("#")[0].strip() for c in first] == ["make demo", "make test"]


def test_every_readme_command_runs(tmp_path):
    X, y = make_data(2, n_rows=2000, seed=11)
    data = data_csv(tmp_path / "data.csv", X, y)
    data.write_text(data.read_text().replace(",target\n", ",label\n", 1))
    shutil.copy(ROOT / "edgelr" / "runtime.py", tmp_path / "runtime.py")
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "OMP_NUM_THREADS": "1"}
    ran = 0
    for language, block in BLOCKS:
        if language == "python":
            run = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
            assert run.returncode == 0, f"README python block failed:\n{block}\n{run.stderr[-2000:]}"
            ran += 1
            continue
        for line in commands(block):
            if covered_by_make(line):
                continue
            # The no-extras virtualenv is built by make edge-check; its edgelr is this edgelr.
            line = line.replace("edge-env/bin/edgelr", "edgelr")
            run = subprocess.run(line, shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, f"README command failed: {line}\n{run.stderr[-2000:]}"
            ran += 1
    assert ran >= 15
    # What the tour promises is there: models, the ORT pair, the report, the tutorial's table.
    for name in ["models/model.onnx", "models/model.ort", "models/sensors.onnx", "reports/sensors/model_card.md",
                 "reports/sensors-full/roc.png", "models/streamed.pt", "models/ddp.pt", "models/api.pt"]:
        assert (tmp_path / name).is_file(), name


