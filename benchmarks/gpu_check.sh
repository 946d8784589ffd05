#!/usr/bin/env bash
# One prepared check for a GPU machine (issue 23), in under 10 minutes: every step has its own time limit.
#
#   bash benchmarks/gpu_check.sh [OUT]        # from the repository root, with .venv (or PYTHON=...) ready
#
# 1. `course train` on lesson 5's practice folder with one GPU, then under torchrun with every visible GPU
#    (NCCL, one process per GPU, the same global batch): seconds per epoch of each stage, test accuracy.
# 2. The `full` profile's lessons 1-4 on a stand-in GTSRB (tests/test_other_data.py's maker, torchvision's
#    layout) and lesson 5 on the practice folder, each timed. EfficientNet-Lite0 (packaged weights): the machine
#    needs no network.
# Everything lands in OUT (default $OUT, else /tmp/gpu_check): summary.txt, the runs' metrics.json, the logs.
set -u -o pipefail
OUT=${1:-${OUT:-/tmp/gpu_check}}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} COURSE_DATA_DIR="$OUT/data" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log it, note the status and the wall time
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout --kill-after 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    say "$name: exit $status in $((SECONDS - started)) s (limit $limit s)"
    [ $status -ne 0 ] && tail -5 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
    return 0
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus.txt" 2>&1
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
say "$(date -u +%FT%TZ) torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), $GPUS GPU(s): $(head -1 "$OUT/gpus.txt")"
[ "$GPUS" -ge 1 ] || { say "no CUDA GPU: nothing to check"; exit 1; }

FOLDER=$("$PYTHON" -c "
from pathlib import Path
from course_utils.sample_folders import make_sample_folder
print(make_sample_folder(Path('$OUT/data/lesson5-sample-folder'), verbose=False).labeled)")
TRAIN=(--profile offline --arch efficientnet_lite0 --image-size 224 --batch-size 64 --epochs 3 --head-epochs 2)

# 1. One GPU, then every GPU (with one GPU: torchrun with one process, which still runs the NCCL path).
step train_1gpu 110 "$PYTHON" -m course_tools.train "$FOLDER" --output "$OUT/train_1gpu" "${TRAIN[@]}" --device cuda
step "train_${GPUS}gpu_torchrun" 130 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" \
    -m course_tools.train "$FOLDER" --output "$OUT/train_${GPUS}gpu" "${TRAIN[@]}"
"$PYTHON" - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import json, statistics, sys
from pathlib import Path
for metrics_file in sorted(Path(sys.argv[1]).glob("train_*gpu/metrics.json")):
    metrics = json.loads(metrics_file.read_text())
    stages = {}
    for row in metrics["history"]:
        stages.setdefault(row["stage"], []).append(row["seconds"])
    per_epoch = ", ".join(f"stage {stage} {statistics.median(s):.2f} s/epoch" for stage, s in sorted(stages.items()))
    print(f"{metrics_file.parent.name}: {metrics['processes']} process(es), {per_epoch}, "
          f"val {metrics['val_accuracy']:.3f}, test {metrics['test_accuracy']:.3f}, {metrics['seconds']} s in all")
EOF

# 2. The full profile's lessons, timed (papermill through course_tools.runner, as `course run` does).
"$PYTHON" -c "
import sys; sys.path.insert(0, 'tests')
from pathlib import Path
from test_other_data import _stand_in_gtsrb
_stand_in_gtsrb(Path('$OUT/data'), tracks=6, frames=5, test_per_class=5)"
for lesson in 01_cnn_from_scratch 02_feature_extraction 03_fine_tuning 04_unknown_class; do
    step "lesson_$lesson" 65 "$PYTHON" -m course_tools.cli run "$lesson" --profile full --output "$OUT/lessons" \
        -p ARCH efficientnet_lite0 -p EPOCHS 2 -p DATA_DIR "$OUT/data" --quiet
done
step lesson_05_your_own_images 65 "$PYTHON" -m course_tools.cli run 05 --profile full --output "$OUT/lessons" \
    -p ARCH efficientnet_lite0 -p EPOCHS 2 -p DATASET "$FOLDER" -p DATA_DIR "$OUT/data" --quiet
say "done in $SECONDS s"
