"""The notebooks: paired sources in sync, outputs stripped, and each runs in smoke mode.

Smoke mode follows papermill's convention: a cell with the ``parameters`` tag
holds the real defaults; the values below are injected in a new cell right
after it, as papermill does, and the notebook is executed with nbclient.
"""

import os
import pathlib

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"

SMOKE = {
    "01_quickstart": {"members": 300, "epochs": 2},
    "02_attack_catalogue": {"members": 300, "epochs": 2, "num_shadow_models": 2,
                            "num_lira_shadows": 4, "bank_size": 4},
    # A few defenses of the registry, one of each kind of code path (plain loss, MMD
    # model, HAMP's output layer, DP-SGD's trainer): every cell runs, in less time.
    "03_mmd_mixup_vs_dpsgd": {"members": 300, "epochs": 2, "epsilons": [8.0],
                              "defenses": ["none", "mmd+mixup", "hamp", "dpsgd"]},
}


def _paired():
    return sorted(p.stem for p in NOTEBOOKS.glob("*.py"))


def test_every_notebook_has_smoke_parameters():
    assert _paired() == sorted(SMOKE)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_ipynb_matches_its_py_source_and_has_no_outputs(name):
    source = jupytext.read(NOTEBOOKS / f"{name}.py")
    ipynb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert [c.source for c in ipynb.cells] == [c.source for c in source.cells], (
        f"notebooks/{name}.ipynb is out of sync: run `jupytext --sync notebooks/{name}.py`")
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "strip outputs"
    tagged = [c for c in ipynb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for key in SMOKE[name]:
        assert f"{key} =" in tagged[0].source, f"smoke parameter {key} not in parameters cell"


def _inject(nb, params):
    index = next(i for i, c in enumerate(nb.cells)
                 if "parameters" in c.metadata.get("tags", []))
    lines = ["# Injected parameters (smoke mode)"] + [f"{k} = {v!r}" for k, v in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_notebook_runs_in_smoke_mode(name, tmp_path, data_dir):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    _inject(nb, SMOKE[name])
    env_before = os.environ.get("KERAS_MI_DATA_DIR")
    os.environ["KERAS_MI_DATA_DIR"] = str(data_dir)
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("KERAS_MI_DATA_DIR", None)
        else:
            os.environ["KERAS_MI_DATA_DIR"] = env_before
