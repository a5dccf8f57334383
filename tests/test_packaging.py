"""What the install must provide, checked from outside the checkout (so a non-editable install is what is tested)."""

from __future__ import annotations

import json
import subprocess
import sys


def _python(code: str, cwd) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_templates_schemas_and_sample_are_installed_with_the_package(tmp_path):
    out = _python(
        "import json, prefdata.contract.resources as r\n"
        "print(json.dumps([str(r.templates_path()), str(r.schema_path('templates')), str(r.sample_path())]))",
        cwd=tmp_path,
    )
    templates, schema, sample = (p for p in json.loads(out))
    assert set(json.loads(open(templates, encoding="utf-8").read())) >= {"actor", "reward", "rlhf"}
    assert json.loads(open(schema, encoding="utf-8").read())["$schema"].endswith("2020-12/schema")
    assert sum(1 for _ in open(sample, encoding="utf-8")) >= 100


def test_the_data_pipeline_never_imports_torch(tmp_path):
    """Every module of the installed `prefdata` package (all layers, every CLI verb) imports without torch."""
    code = (
        "import importlib, pkgutil, sys, prefdata\n"
        "names = [m.name for m in pkgutil.walk_packages(prefdata.__path__, 'prefdata.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'torch' in sys.modules)"
    )
    count, torch_loaded = _python(code, cwd=tmp_path).split()
    assert int(count) > 40 and torch_loaded == "False"


def test_console_script_runs(tmp_path):
    done = subprocess.run(["prefdata", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "prefdata" in done.stdout
