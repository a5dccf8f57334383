#!/usr/bin/env bash
# Mutation testing with mutmut 3 over the modules that decide what data means, one target at a time, on a budget.
#
#   scripts/mutation.sh TARGET [TARGET...]       TARGET = path/to/module.py[:function-glob]
#   scripts/mutation.sh --list                   the targets this script knows, with the tests each runs
#
# e.g.  scripts/mutation.sh prefdata/contract/row.py prefdata/jobs/export.py:to_chatllama 'trainers/components/rl.py:*loss'
#
# Each target runs in a scratch copy of the working tree (tracked and untracked files, uncommitted edits included),
# so the checkout is never mutated and two runs never share state. Only the test files mapped to the module below
# run against its mutants. Budget knobs (environment):
#   MUTATION_MAX_MUTANTS  at most this many mutants per target, spread evenly over the file (default 120)
#   MUTATION_TIME_LIMIT   seconds per target for the whole mutmut run; untested mutants count as "not checked" (900)
#   MUTATION_JOBS         parallel test workers (default 1: the CI box and the dev box have 2 cores)
#   MUTATION_OUT          where reports go (default build/mutation): <target>.md per target and summary.md
# The report lists every surviving mutant as a diff; kill a survivor with a test, or say in one line why it is
# equivalent. Kill rate = (killed + timeout) / (mutants checked); "no tests" mutants count as not killed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAX_MUTANTS=${MUTATION_MAX_MUTANTS:-120}
TIME_LIMIT=${MUTATION_TIME_LIMIT:-900}
JOBS=${MUTATION_JOBS:-1}
# The scratch copy is not beside ../shared, so point the tests at the real data explicitly (tests/conftest.py).
export PREFDATA_SHARED_DATA=${PREFDATA_SHARED_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}
# One OpenMP thread: mutmut forks each mutant's test run from a process where torch already ran, and a forked child
# can then block forever on an OpenMP lock; such a mutant was counted as "timeout", i.e. killed, after a 30x wait.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=$(mkdir -p "${MUTATION_OUT:-$ROOT/build/mutation}" && cd "${MUTATION_OUT:-$ROOT/build/mutation}" && pwd)

# module (glob) -> the test files that pin its behaviour; the first matching line wins.
TEST_MAP='
prefdata/contract/row.py        tests/test_row.py tests/test_mutants_row.py tests/test_contract_units.py tests/test_formats.py tests/test_store.py
prefdata/contract/rules.py      tests/test_mutants_rules.py tests/test_mutants_row.py tests/test_contract_rules.py tests/test_contract_units.py tests/test_row.py
prefdata/contract/render.py     tests/test_render.py tests/test_mutants_render.py tests/test_contract_units.py tests/test_formats.py
prefdata/contract/phases.py     tests/test_contract_phases.py tests/test_mutants_phases.py tests/test_mutants_export.py tests/test_split.py
prefdata/contract/nesting.py    tests/test_mutants_nesting.py tests/test_mutants_formats_common.py tests/test_contract_units.py
prefdata/contract/errors.py     tests/test_mutants_errors.py tests/test_contract_units.py tests/test_row.py
prefdata/contract/*             tests/test_row.py tests/test_contract_units.py tests/test_render.py tests/test_formats.py
prefdata/formats/hh.py          tests/test_hh.py tests/test_hh_fast_path.py tests/test_formats.py tests/test_mutants_hh.py
prefdata/formats/shp.py         tests/test_shp.py tests/test_mutants_quarantine.py tests/test_mutants_shp.py
prefdata/formats/common.py      tests/test_mutants_formats_common.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/trl.py         tests/test_mutants_formats_trl.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/sharegpt.py    tests/test_mutants_formats_sharegpt.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/alpaca.py      tests/test_mutants_formats_alpaca.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/dschat.py      tests/test_mutants_formats_dschat.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/chatllama.py   tests/test_mutants_formats_chatllama.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/orca.py        tests/test_mutants_formats_orca.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/mapping.py     tests/test_mutants_formats_mapping.py tests/test_formats.py tests/test_formats_v2.py tests/test_contract_units.py
prefdata/formats/unsup.py       tests/test_mutants_unsup.py tests/test_formats.py tests/test_contract_units.py
prefdata/formats/*              tests/test_formats.py tests/test_contract_units.py
prefdata/pipeline/dedup.py      tests/test_dedup.py tests/test_mutants_dedup.py tests/test_split.py
prefdata/pipeline/records.py    tests/test_records.py tests/test_mutants_quarantine.py tests/test_bad_input.py tests/test_mutants_records.py
prefdata/pipeline/similarity.py tests/test_mutants_similarity.py
prefdata/pipeline/progress.py   tests/test_mutants_progress.py tests/test_import.py
prefdata/pipeline/parallel.py   tests/test_mutants_parallel.py tests/test_hh_fast_path.py tests/test_records.py tests/test_hh.py
prefdata/jobs/split.py          tests/test_mutants_split.py tests/test_split.py --deselect tests/test_split.py::test_groups_never_straddle_and_shuffled_input_gives_identical_output --deselect tests/test_split.py::test_appending_ten_percent_keeps_old_rows_in_place
prefdata/jobs/export.py         tests/test_export.py tests/test_mutants_export.py tests/test_mutants_export_io.py
prefdata/jobs/export_formats.py tests/test_mutants_export_formats.py tests/test_export_kinds.py tests/test_mutants_export.py tests/test_consumers_chatllama.py tests/test_consumers_llamafactory.py tests/test_consumers_dschat.py
prefdata/jobs/split_pairs.py    tests/test_split_pairs.py tests/test_mutants_split_pairs.py tests/test_split.py
prefdata/jobs/decontaminate.py  tests/test_mutants_decontaminate.py tests/test_split_decontaminate.py
trainers/components/rl.py       tests/test_rl_math.py
trainers/components/collate.py  tests/test_tokenize_cache.py tests/test_trainer_runtime.py tests/test_mutants_collate.py
trainers/components/tokens.py   tests/test_mutants_tokens.py tests/test_tokenize_cache.py
trainers/components/preference.py tests/test_dpo_losses.py tests/test_mutants_preference.py
trainers/components/packing.py  tests/test_mutants_packing.py tests/test_packing.py
trainers/components/token_store.py tests/test_mutants_token_store.py tests/test_mutants_tokens.py
trainers/components/chat_template.py tests/test_mutants_chat_template.py
trainers/components/reward_scoring.py tests/test_mutants_reward_scoring.py
trainers/components/lora.py     tests/test_mutants_lora.py
trainers/components/models.py   tests/test_mutants_models.py
trainers/*                      tests/test_trainers.py
'

tests_for() {
    local module=$1 pattern tests
    while read -r pattern tests; do
        [[ -n $pattern ]] || continue
        # shellcheck disable=SC2053  # the left side is a glob on purpose
        if [[ $module == $pattern ]]; then echo "$tests"; return 0; fi
    done <<< "$TEST_MAP"
    return 1
}

# The copy: what git would commit now, plus untracked files that are not ignored.
make_scratch() {
    local scratch
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/prefdata-mutation.XXXXXX")
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -cf - -T - 2> /dev/null) \
        | tar -xf - -C "$scratch"
    echo "$scratch"
}

# The [tool.mutmut] table for one target, appended to the scratch copy's pyproject.toml only.
write_config() {
    local scratch=$1 module=$2; shift 2
    local tests=("$@") quoted
    quoted=$(printf '"%s", ' "${tests[@]}")
    cat >> "$scratch/pyproject.toml" << EOF

[tool.mutmut]
source_paths = ["prefdata", "trainers"]
only_mutate = ["$module"]
also_copy = ["templates", "schemas", "tests"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]
pytest_add_cli_args_test_selection = [${quoted%, }]
use_git_change_detection = false
EOF
}

# The mutant names mutmut generated for the module (from its meta file), those under the function glob, at most
# MAX_MUTANTS of them taken at an even stride so the sample covers the whole file.
pick_mutants() {
    local scratch=$1 module=$2 functions=$3
    python - "$scratch/mutants/$module.meta" "$functions" "$MAX_MUTANTS" << 'EOF'
import fnmatch, json, sys
meta, functions, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sorted(json.load(open(meta))["exit_code_by_key"])


def function_of(name: str) -> str:
    """prefdata.jobs.export.x_to_chatllama__mutmut_3 -> to_chatllama; a method's xǁClassǁname__mutmut_1 -> name."""
    mangled = name.rsplit(".", 1)[-1].split("__mutmut_")[0]
    return mangled.rsplit("ǁ", 1)[-1] if "ǁ" in mangled else mangled[2:]


if functions:
    names = [n for n in names if fnmatch.fnmatch(function_of(n), functions)]
stride = max(1, -(-len(names) // cap)) if names else 1
print("\n".join(names[::stride][:cap]))
EOF
}

summary_line() {  # target; `mutmut results` lines on stdin -> one markdown table row
    python -c '
import collections, sys
target = sys.argv[1]
counts = collections.Counter(line.rsplit(": ", 1)[1].strip() for line in sys.stdin if ": " in line)
checked = sum(n for status, n in counts.items() if status not in ("not checked", "skipped"))
killed = counts["killed"] + counts["timeout"]
rate = f"{100 * killed / checked:.0f}%" if checked else "n/a"
survived, untested = counts["survived"], counts["no tests"]
print(f"| `{target}` | {checked} | {killed} | {survived} | {untested} | {rate} |")
' "$1"
}

run_target() {
    local target=$1 module functions tests scratch slug names
    module=${target%%:*}
    functions=""
    [[ $target == *:* ]] && functions=${target#*:}
    [[ -f $ROOT/$module ]] || { echo "mutation.sh: no such module: $module" >&2; return 2; }
    tests=$(tests_for "$module") || { echo "mutation.sh: no tests mapped for $module (see --list)" >&2; return 2; }
    slug=$(echo "$target" | tr '/:*' '__-')
    scratch=$(make_scratch)
    # shellcheck disable=SC2086  # the test list is space separated on purpose
    write_config "$scratch" "$module" $tests
    echo "== $target: tests $tests (scratch $scratch)" >&2
    cd "$scratch"
    # A run with a pattern that matches nothing generates the mutants and maps tests to functions, then stops.
    mutmut run --max-children "$JOBS" "no-such-mutant-*" > "$OUT/$slug.log" 2>&1 || true
    [[ -f mutants/$module.meta ]] || { echo "mutation.sh: mutmut made no mutants for $module; see $OUT/$slug.log" >&2
                                       cd "$ROOT"; return 1; }
    mapfile -t names < <(pick_mutants "$scratch" "$module" "$functions")
    [[ ${#names[@]} -gt 0 && -n ${names[0]} ]] || { echo "mutation.sh: no mutants match $target" >&2; cd "$ROOT"; return 1; }
    echo "   ${#names[@]} mutants, at most ${TIME_LIMIT}s" >&2
    timeout --signal=INT "$TIME_LIMIT" mutmut run --max-children "$JOBS" "${names[@]}" >> "$OUT/$slug.log" 2>&1 || true
    mutmut results --all=true 2> /dev/null | grep -F -f <(printf '%s:\n' "${names[@]}") > "$OUT/$slug.results" || true
    {
        echo "# Mutation report: $target"
        echo
        echo "tests: $tests; mutants sampled: ${#names[@]} (cap $MAX_MUTANTS); time limit ${TIME_LIMIT}s"
        echo
        echo "| target | checked | killed | survived | no tests | kill rate |"
        echo "|---|---|---|---|---|---|"
        summary_line "$target" < "$OUT/$slug.results"
        echo
        echo "## Surviving mutants"
        grep -E ': (survived|no tests)$' "$OUT/$slug.results" | sed 's/^ *//; s/:.*//' | while read -r name; do
            echo
            echo "### $name"
            echo '```diff'
            mutmut show "$name" 2> /dev/null | sed -n '/^---/,$p'
            echo '```'
        done
    } > "$OUT/$slug.md"
    cd "$ROOT"
    rm -rf "$scratch"
    sed -n 7p "$OUT/$slug.md" >> "$OUT/summary.md"
    echo "   $(tail -1 "$OUT/summary.md")  -> $OUT/$slug.md" >&2
}

# The whole run is one function, read before it starts: editing this file during a run cannot change that run.
main() {
    if [[ ${1:-} == --list ]]; then
        echo "$TEST_MAP" | sed '/^$/d'
        exit 0
    fi
    if [[ $# -eq 0 || ${1:-} == -h || ${1:-} == --help ]]; then
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
    fi
    command -v mutmut > /dev/null || { echo "mutation.sh: mutmut is not installed (pip install 'mutmut>=3.3')" >&2; exit 2; }
    printf '| target | checked | killed | survived | no tests | kill rate |\n|---|---|---|---|---|---|\n' > "$OUT/summary.md"
    status=0
    for target in "$@"; do
        run_target "$target" || status=1
    done
    cat "$OUT/summary.md"
    exit $status
}

main "$@"
