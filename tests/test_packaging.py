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
        "import json, prefdata.resources as r\n"
        "print(json.dumps([str(r.templates_path()), str(r.schema_path('templates')), str(r.sample_path())]))",
        cwd=tmp_path,
    )
    templates, schema, sample = (p for p in json.loads(out))
    assert set(json.loads(open(templates, encoding="utf-8").read())) >= {"actor", "reward", "rlhf"}
    assert json.loads(open(schema, encoding="utf-8").read())["$schema"].endswith("2020-12/schema")
    assert sum(1 for _ in open(sample, encoding="utf-8")) >= 100


def test_the_data_pipeline_never_imports_torch(tmp_path):
    modules = ["cli", "importer", "validate", "validate_dataset", "download", "split", "export", "stats", "synthesize",
               "score", "commands.import_cmd", "commands.split_cmd", "commands.llm_cmd", "commands.export_cmd"]
    code = "import sys\n" + "".join(f"import prefdata.{m}\n" for m in modules) + "print('torch' in sys.modules)"
    assert _python(code, cwd=tmp_path).strip() == "False"


def test_console_script_runs(tmp_path):
    done = subprocess.run(["prefdata", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "prefdata" in done.stdout
