#!/usr/bin/env bash
# skipgrad GPU bench runner: executed ON the GPU host, from inside the bundle that bench/gpu/pack.sh makes.
#
#   bash .gpu-bundle/run.sh [--quick] [--out DIR] [--parts probe,dispatch,host,profile,torch,model,precision,tiles,ops]
#
# Unpacks node and the app (built code, shaders, node_modules with Dawn's dawn.node), sets up a Vulkan
# loader (the system's, else the bundled libvulkan1 .deb unpacked locally, else -- as root, as the device
# README's .gl recipe does -- unpacked into / with ldconfig) and the NVIDIA ICD, prints nvidia-smi and the
# adapter Dawn sees, then runs, each under its own timeout and each whatever the others did:
#   dispatch node dist/bench/dispatch-cost.js         (host microseconds per dispatch, piece by piece)
#   host    node dist/bench/model.js --host-only       (a training step's host side alone, on Dawn's null
#                                                       backend, skipgrad vs tfjs-webgpu, on this host's CPU)
#   profile node dist/bench/profile.js               (one AESc step, 256x256 batch 8, GPU time per op)
#   torch   python3 torch_ref.py                       (when python3 can import torch)
#   model   node dist/bench/model.js ...               (when the bundle has it)
#   precision node dist/bench/precision.js             (the step's loss, gradients and running statistics on the GPU
#                                                       against float64 on the CPU: are the GPU's numbers right?)
#   tiles   node dist/bench/tiles.js                   (each conv launch of the step: chooseTiles' pick vs other tiles)
#   ops     node dist/bench/ops.js --backends webgpu   (skipgrad webgpu vs tfjs webgpu, conv2d)
# and collects everything into DIR ($OUT if set, else ./gpu-results): gpu-<date>.json (all results, the
# GPU's name, the nvidia-smi -q summary, the adapter), run.log, nvidia-smi-q.txt and the parts' own JSON
# (8 files at most: what the device tool brings back). Exit status 0 when every part that ran passed.
#
# Environment (all optional):
#   OUT                         output folder (else --out, else ./gpu-results)
#   SKIPGRAD_VK_ICD             the Vulkan ICD json to use (else the NVIDIA one, searched in the usual places)
#   SKIPGRAD_VK_LIBRARY_PATH    directories to put first on LD_LIBRARY_PATH (a loader or driver of your own)
#   SKIPGRAD_VK_NO_SYSTEM_INSTALL=1   never unpack the .deb into / (the README's fallback)
#   SKIPGRAD_GPU_BUDGET_S       seconds for the whole run, parts included (default 470; --quick 300)
#   SKIPGRAD_GPU_T_DISPATCH, _T_HOST, _T_PROFILE, _T_OPS, _T_MODEL, _T_TORCH, _T_PRECISION, _T_TILES, _T_PROBE   per-part timeouts in seconds
#   SKIPGRAD_GPU_PROFILE_ARGS   default: --backend webgpu --size 256 --batch 8
#   SKIPGRAD_GPU_OPS_ARGS       default: --backends webgpu --cap 60 --reps 20 --tfjs-reps 5 (--quick: --backends webgpu --quick --cap 30)
#   SKIPGRAD_GPU_TILES_ARGS     default: --size 256 --batch 8 --reps 5 --max-seconds 75 (--quick: --reps 3 --max-seconds 15)
#   SKIPGRAD_GPU_MODEL_ARGS     default: --backends webgpu --cap 60 --reps 20 --tfjs-reps 5 (--quick: --backends webgpu --quick)
#   SKIPGRAD_GPU_TORCH_ARGS     extra arguments for torch_ref.py
#   SKIPGRAD_GPU_PRECISION_ARGS default: --size 256 --batch 8 (--quick: --size 64 --batch 4)
#   SKIPGRAD_GPU_WORK           scratch folder: node, the app, raw results (default: ${TMPDIR:-/tmp}/skipgrad-gpu-run)
#   SKIPGRAD_DAWN_OPTIONS       Dawn toggles for skipgrad's webgpu backend, e.g. backend=vulkan
#   PYTHON                      the python with torch (default python3)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$(date +%s)
QUICK=0
OUT_DIR=${OUT:-}
PARTS=probe,dispatch,host,profile,torch,model,precision,tiles,ops
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT_DIR=$2; shift ;;
    --out=*) OUT_DIR=${1#--out=} ;;
    --parts) PARTS=$2; shift ;;
    --parts=*) PARTS=${1#--parts=} ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT_DIR=${OUT_DIR:-$PWD/gpu-results}
mkdir -p "$OUT_DIR" || { echo "run.sh: cannot create $OUT_DIR" >&2; exit 2; }
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${SKIPGRAD_GPU_WORK:-${TMPDIR:-/tmp}/skipgrad-gpu-run}   # outside the bundle: it stays small enough to carry
PY=${PYTHON:-python3}
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
LOG=$OUT_DIR/run.log
: >"$LOG"
# Everything (ours and the parts') goes to the terminal and run.log.
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
export PYTHONUNBUFFERED=1

if [ "$QUICK" = 1 ]; then BUDGET=${SKIPGRAD_GPU_BUDGET_S:-300}; else BUDGET=${SKIPGRAD_GPU_BUDGET_S:-470}; fi
T_PROBE=${SKIPGRAD_GPU_T_PROBE:-45}
T_DISPATCH=${SKIPGRAD_GPU_T_DISPATCH:-30}
T_HOST=${SKIPGRAD_GPU_T_HOST:-45}
T_PROFILE=${SKIPGRAD_GPU_T_PROFILE:-60}
T_OPS=${SKIPGRAD_GPU_T_OPS:-200}
T_TILES=${SKIPGRAD_GPU_T_TILES:-120}
T_MODEL=${SKIPGRAD_GPU_T_MODEL:-150}
T_TORCH=${SKIPGRAD_GPU_T_TORCH:-90}
T_PRECISION=${SKIPGRAD_GPU_T_PRECISION:-90}
if [ "$QUICK" = 1 ]; then
  OPS_ARGS=${SKIPGRAD_GPU_OPS_ARGS:---backends webgpu --quick --cap 30}
  MODEL_ARGS=${SKIPGRAD_GPU_MODEL_ARGS:---backends webgpu --quick}
  TILES_ARGS=${SKIPGRAD_GPU_TILES_ARGS:---size 256 --batch 8 --reps 3 --max-seconds 15}
else
  # On a GPU a step or an op takes milliseconds: more timed repetitions cost little and steady the medians (the
  # runtime's bind-group cache is warm from the third step on).
  OPS_ARGS=${SKIPGRAD_GPU_OPS_ARGS:---backends webgpu --cap 60 --reps 20 --tfjs-reps 5}
  MODEL_ARGS=${SKIPGRAD_GPU_MODEL_ARGS:---backends webgpu --cap 60 --reps 20 --tfjs-reps 5}
  TILES_ARGS=${SKIPGRAD_GPU_TILES_ARGS:---size 256 --batch 8 --reps 5 --max-seconds 75}
fi
TORCH_ARGS=${SKIPGRAD_GPU_TORCH_ARGS:-}
if [ "$QUICK" = 1 ]; then PRECISION_ARGS=${SKIPGRAD_GPU_PRECISION_ARGS:---size 64 --batch 4}
else PRECISION_ARGS=${SKIPGRAD_GPU_PRECISION_ARGS:---size 256 --batch 8}; fi
if [ "$QUICK" = 1 ]; then PROFILE_ARGS=${SKIPGRAD_GPU_PROFILE_ARGS:---backend webgpu --size 256 --batch 8 --warmup 1}
else PROFILE_ARGS=${SKIPGRAD_GPU_PROFILE_ARGS:---backend webgpu --size 256 --batch 8}; fi

say() { printf '\n=== [%4ss] %s\n' "$(($(date +%s) - START))" "$*"; }
want() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
# The timeout for a part: its own, cut to what is left of the budget (at least 10 s).
budget_for() {
  local left=$((BUDGET - ($(date +%s) - START)))
  [ "$left" -lt 10 ] && left=10
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}

say "skipgrad GPU run $STAMP on $(hostname) ($(uname -srm)); bundle $HERE; output $OUT_DIR; budget ${BUDGET}s"
RES=$WORK/results
rm -rf "$RES"
mkdir -p "$WORK" "$RES"

# ---------------------------------------------------------------------------------------------------
# Unpack node and the app (dist/, shaders/, node_modules/ with dawn.node)
# ---------------------------------------------------------------------------------------------------
NODE=$WORK/bin/node
unpack() {
  local stamp_file=$WORK/.unpacked want_stamp
  want_stamp=$(cat "$HERE/bundle.json" 2>/dev/null | cksum)
  if [ -x "$NODE" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want_stamp" ]; then
    echo "already unpacked in $WORK"
    return 0
  fi
  rm -rf "${WORK:?}/bin" "${WORK:?}/app"
  mkdir -p "$WORK/bin" "$WORK/app"
  xz -d -T0 -c "$HERE/node.xz" >"$NODE.tmp" && chmod +x "$NODE.tmp" && mv "$NODE.tmp" "$NODE" || return 1
  tar -xJf "$HERE/app.tar.xz" -C "$WORK/app" || return 1
  echo "$want_stamp" >"$stamp_file"
}
say "unpack"
if unpack && "$NODE" -e 0; then
  echo "node $("$NODE" --version 2>&1) at $NODE; app in $WORK/app"
  NODE_OK=1
else
  echo "run.sh: unpacking or starting node FAILED: the node parts are skipped"
  NODE_OK=0
fi
APP=$WORK/app

# ---------------------------------------------------------------------------------------------------
# Vulkan: loader (libvulkan.so.1) and ICD (the NVIDIA driver's json)
# ---------------------------------------------------------------------------------------------------
say "vulkan"
LOADER=none
if [ -n "${SKIPGRAD_VK_LIBRARY_PATH:-}" ]; then
  export LD_LIBRARY_PATH="$SKIPGRAD_VK_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# The driver's own libraries (libGLX_nvidia / libnvidia-*), where the image keeps them outside ld.so.conf.
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d" ;; esac
done
have_loader() {
  local d llp=${LD_LIBRARY_PATH:-}
  for d in ${llp//:/ }; do [ -e "$d/libvulkan.so.1" ] && return 0; done
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 ' && return 0
  return 1
}
unpack_deb() { # deb dest
  if command -v dpkg >/dev/null 2>&1; then dpkg -x "$1" "$2"; return $?; fi
  local t; t=$(mktemp -d)
  (cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2"); local rc=$?
  rm -rf "$t"; return $rc
}
if have_loader; then
  LOADER=system
  echo "loader: libvulkan.so.1 found ($(ldconfig -p 2>/dev/null | grep -m1 'libvulkan\.so\.1 ' | sed 's/.*=> //' || true))"
else
  VKROOT=$WORK/vk-root
  rm -rf "$VKROOT"; mkdir -p "$VKROOT"
  ok=0
  for deb in "$HERE"/debs/*.deb; do [ -f "$deb" ] && unpack_deb "$deb" "$VKROOT" && ok=1; done
  VKLIB=$(dirname "$(find "$VKROOT" -name 'libvulkan.so.1' | head -1)" 2>/dev/null)
  if [ "$ok" = 1 ] && [ -n "$VKLIB" ] && [ -e "$VKLIB/libvulkan.so.1" ]; then
    export LD_LIBRARY_PATH="$VKLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    LOADER=bundled
    echo "loader: the bundled libvulkan1 unpacked in $VKLIB"
  else
    echo "loader: none on the system and the bundled .deb did not unpack"
  fi
fi
ICD=${SKIPGRAD_VK_ICD:-}
if [ -z "$ICD" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
           /etc/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json \
           /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json /etc/vulkan/icd.d/nvidia_icd.x86_64.json; do
    [ -f "$f" ] && { ICD=$f; break; }
  done
fi
if [ -z "$ICD" ]; then
  ICD=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan /usr/local/share/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
fi
if [ -n "$ICD" ]; then
  export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
  echo "ICD: $ICD"; cat "$ICD" 2>/dev/null | tr -s ' \n' ' '; echo
else
  echo "ICD: no nvidia_icd.json found; leaving the loader to its own search"
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

# ---------------------------------------------------------------------------------------------------
# nvidia-smi
# ---------------------------------------------------------------------------------------------------
say "nvidia-smi"
SMI_FIELDS=name,driver_version,memory.total,memory.used,pstate,clocks.sm,clocks.mem,clocks.max.sm,power.draw,power.limit,temperature.gpu,utilization.gpu
smi_csv() { timeout 20 nvidia-smi --query-gpu=$SMI_FIELDS --format=csv >"$RES/$1" 2>&1 || true; cat "$RES/$1"; }
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 20 nvidia-smi 2>&1 | head -40
  timeout 30 nvidia-smi -q >"$RES/nvidia-smi-q.txt" 2>&1 || true
  smi_csv nvidia-smi-before.csv
else
  echo "nvidia-smi: not found"
fi

# ---------------------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------------------
# run_part NAME TIMEOUT CMD...: runs CMD in $APP under a timeout; its bench/results/*.json are kept in
# $RES/NAME/; its status in $RES/NAME/status.txt. Never stops the run.
FAILED=0
run_part() {
  local name=$1 t=$2; shift 2
  local dir=$RES/$name t0 rc
  mkdir -p "$dir"
  t=$(budget_for "$t")
  say "$name (timeout ${t}s): $*"
  rm -rf "$APP/bench/results"; mkdir -p "$APP/bench/results"
  t0=$(date +%s)
  (cd "$APP" && timeout --kill-after=15 "$t" "$@") 2>&1 | tee "$dir/output.log"
  rc=${PIPESTATUS[0]}
  local secs=$(($(date +%s) - t0)) timed_out=0
  { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && timed_out=1
  cp "$APP"/bench/results/*.json "$dir"/ 2>/dev/null || true
  { echo "rc=$rc"; echo "seconds=$secs"; echo "timedOut=$timed_out"; echo "timeout=$t"; echo "cmd=$*"; } >"$dir/status.txt"
  if [ "$rc" = 0 ]; then echo "[$name] ok in ${secs}s"; else echo "[$name] FAILED rc=$rc$([ $timed_out = 1 ] && echo ' (timed out)') after ${secs}s"; FAILED=1; fi
  return 0
}
skip_part() { mkdir -p "$RES/$1"; { echo "skipped=$2"; } >"$RES/$1/status.txt"; say "$1 skipped: $2"; }

export NODE_OPTIONS=${NODE_OPTIONS:-}
export PATH="$WORK/bin:$PATH"   # node for the parts (the tfjs child processes are forked from process.execPath; be safe)

if want probe; then
  if [ "$NODE_OK" = 1 ]; then
    FAILED_BEFORE=$FAILED
    run_part probe "$T_PROBE" "$NODE" bench/gpu/adapter.mjs
    # No adapter with a bundled or system loader: as root, do what the device README's .gl recipe does.
    if [ "$(grep -c '^rc=0$' "$RES/probe/status.txt")" = 0 ] && [ "$LOADER" != system ] && [ "$(id -u)" = 0 ] \
       && [ -z "${SKIPGRAD_VK_NO_SYSTEM_INSTALL:-}" ] && ls "$HERE"/debs/*.deb >/dev/null 2>&1; then
      say "no adapter: unpacking the bundled .deb into / and running ldconfig (the device README's .gl recipe)"
      for f in "$HERE"/debs/*.deb; do dpkg -x "$f" / ; done; ldconfig
      LOADER=installed
      mv "$RES/probe" "$RES/probe-first"
      FAILED=$FAILED_BEFORE
      run_part probe "$T_PROBE" "$NODE" bench/gpu/adapter.mjs
    fi
    # The adapter: the JSON line adapter.mjs prints.
    grep -h '^{"node":' "$RES/probe/output.log" | tail -1 >"$RES/probe/adapter.json" || true
  else
    skip_part probe "node did not unpack"
  fi
fi
# run_node_part NAME TIMEOUT SCRIPT ARGS...: a node part, when node unpacked and the bundle has SCRIPT.
run_node_part() {
  local name=$1 t=$2 script=$3; shift 3
  if [ "$NODE_OK" != 1 ]; then skip_part "$name" "node did not unpack"
  elif [ ! -f "$APP/$script" ]; then skip_part "$name" "$script is not in this bundle"
  else run_part "$name" "$t" "$NODE" "$script" "$@"; fi
}
want dispatch && run_node_part dispatch "$T_DISPATCH" dist/bench/dispatch-cost.js
want host && run_node_part host "$T_HOST" dist/bench/model.js --host-only
# shellcheck disable=SC2086
want profile && run_node_part profile "$T_PROFILE" dist/bench/profile.js $PROFILE_ARGS
if want torch; then
  if command -v "$PY" >/dev/null 2>&1 && timeout 60 "$PY" -c 'import torch' >/dev/null 2>&1; then
    TORCH_MODE=""
    if [ "$QUICK" = 1 ]; then TORCH_MODE=--quick; fi
    if ! timeout 60 "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
      TORCH_MODE=--smoke; echo "torch: no CUDA device, smoke sizes on the CPU"
    fi
    # shellcheck disable=SC2086
    run_part torch "$T_TORCH" "$PY" "$HERE/torch_ref.py" --out "$RES/torch" $TORCH_MODE $TORCH_ARGS
  else
    skip_part torch "$PY cannot import torch"
  fi
fi

# shellcheck disable=SC2086
want model && run_node_part model "$T_MODEL" dist/bench/model.js $MODEL_ARGS
# shellcheck disable=SC2086
want precision && run_node_part precision "$T_PRECISION" dist/bench/precision.js $PRECISION_ARGS
# shellcheck disable=SC2086
want tiles && run_node_part tiles "$T_TILES" dist/bench/tiles.js $TILES_ARGS
# shellcheck disable=SC2086
want ops && run_node_part ops "$T_OPS" dist/bench/ops.js $OPS_ARGS

if command -v nvidia-smi >/dev/null 2>&1; then say "nvidia-smi after"; smi_csv nvidia-smi-after.csv; fi

# ---------------------------------------------------------------------------------------------------
# Collect
# ---------------------------------------------------------------------------------------------------
say "collect"
SUMMARY=$OUT_DIR/gpu-$STAMP.json
{ echo "stamp=$STAMP"; echo "quick=$QUICK"; echo "budget=$BUDGET"; echo "loader=$LOADER"; echo "icd=${ICD:-}";
  echo "ldLibraryPath=${LD_LIBRARY_PATH:-}"; echo "seconds=$(($(date +%s) - START))"; } >"$RES/run.txt"
if command -v "$PY" >/dev/null 2>&1 && "$PY" "$HERE/collect.py" --results "$RES" --bundle "$HERE/bundle.json" --out "$SUMMARY"; then
  :
elif [ "$NODE_OK" = 1 ]; then
  # No python: a plain listing of the raw files, so nothing is lost.
  "$NODE" -e '
    const fs = require("fs"), path = require("path");
    const [res, out] = process.argv.slice(1);
    const all = {};
    const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else { const t = fs.readFileSync(p, "utf8"); try { all[path.relative(res, p)] = JSON.parse(t); } catch { all[path.relative(res, p)] = t; } } } };
    walk(res);
    fs.writeFileSync(out, JSON.stringify({ kind: "skipgrad-gpu-run", files: all }, null, 2) + "\n");' "$RES" "$SUMMARY" || FAILED=1
else
  FAILED=1; echo "run.sh: neither python3 nor node to write $SUMMARY"
fi
[ -f "$RES/nvidia-smi-q.txt" ] && cp "$RES/nvidia-smi-q.txt" "$OUT_DIR/"
# The parts' own JSON, as long as the output stays within 8 files (the device tool brings back no more).
n=$(find "$OUT_DIR" -maxdepth 1 -type f | wc -l)
for f in "$RES"/profile/*.json "$RES"/ops/*.json "$RES"/model/*.json "$RES"/torch/*.json "$RES"/tiles/*.json "$RES"/precision/*.json; do
  [ -f "$f" ] || continue
  if [ "$n" -ge 8 ]; then echo "not copied (8-file limit; it is inside $(basename "$SUMMARY")): $f"; continue; fi
  cp "$f" "$OUT_DIR/" && n=$((n + 1))
done
say "done in $(($(date +%s) - START))s: $SUMMARY"
ls -la "$OUT_DIR"
# Let tee write the last lines before leaving.
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit $FAILED
