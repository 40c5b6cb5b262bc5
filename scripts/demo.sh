#!/usr/bin/env bash
# `make demo`: a whole sweep on the embedded journal storage, no server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
HPO="${HPO:-.venv/bin/hpo}"
export HPO_HOME="${HPO_HOME:-$PWD/.hpo}/demo"
unset HPO_STORAGE_URL  # the demo always uses the embedded default
rm -rf "$HPO_HOME"
config=configs/hpo/demo.yaml

echo "== 1. validate the spec"
"$HPO" validate "$config"
echo
echo "== 2. sweep with 2 local workers (the same command a Kubernetes pod runs)"
"$HPO" sweep --config "$config" --workers 2 --status-interval 5
echo
echo "== 3. the study, recovered from storage alone"
"$HPO" studies
"$HPO" status demo_arc_classifier_v1
