#!/usr/bin/env bash
# Rebuild benchmarks/RESULTS.md: the header, the reproduction tables (generated from the CSV/JSON
# results of `landscape reproduce` under RUNS, default runs/reproduce), then the speed measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/reproduce}
{
  cat benchmarks/sections/header.md
  echo
  echo "## Paper reproduction at Fashion-MNIST scale"
  echo
  cat benchmarks/sections/reproduction.md
  echo
  "${PYTHON:-python}" benchmarks/make_results_tables.py "$RUNS"
  echo
  sed -e 's/^# /### /' benchmarks/sections/recipe_v2_seeds.md
  echo
  sed -e 's/^# /### /' benchmarks/sections/recipe_v2.md
  for s in training attacks hessian surface reference threads allocator readme_commands; do
    echo
    sed -e 's/^# /## /' -e 's/^## \(.*\)/### \1/' -e 's/^### ### /### /' "benchmarks/sections/$s.md"
  done
} > benchmarks/RESULTS.md
echo "wrote benchmarks/RESULTS.md"
