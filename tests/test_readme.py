"""The README's code runs as printed (with one epoch instead of thirty)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_defense_snippet_runs(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_MI_DATA_DIR", str(data_dir))
    code = _python_blocks()[0]
    assert "MMDModel" in code and "mixup_dataset" in code
    code = code.replace("epochs=30", "epochs=1")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    assert "AUC" in capsys.readouterr().out
