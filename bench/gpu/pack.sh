#!/usr/bin/env bash
# Packs a self-contained skipgrad GPU bench bundle for an offline Linux x64 GPU host (no Node, no network).
#
#   bash bench/gpu/pack.sh [OUT_DIR]        (default: .gpu-bundle at the repo root; also OUT_DIR.tar)
#     --no-strip            keep node's and dawn.node's symbols (bigger)
#     --allow-type-errors   pack even when tsc reports type errors (it still emits JavaScript)
#
# The bundle (see bench/gpu/README.md):
#   run.sh  torch_ref.py  collect.py  README.md  bundle.json (manifest: versions, files, sizes, sha256)
#   node.xz        this machine's node (`which node`), stripped, xz-compressed
#   app.tar.xz     dist/ (a fresh tsc build, no source maps), shaders/, bench/gpu/adapter.mjs, package.json
#                  ("type": "module") and node_modules/ holding exactly the files the bench path loads at run
#                  time (bench/gpu/deps.mjs traces them): webgpu with only its linux-x64 dawn.node (stripped),
#                  the TensorFlow.js node bundles (+ the wasm backend's .wasm files) and their few deps
#   debs/libvulkan1_*.deb   the Vulkan loader, fetched as the device README's .gl recipe does
# Fails when the folder and the tarball together exceed SKIPGRAD_PACK_LIMIT_MIB (default 60) MiB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIMIT_MIB=${SKIPGRAD_PACK_LIMIT_MIB:-60}
STRIP=1
ALLOW_TSC_ERRORS=0
OUT_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --no-strip) STRIP=0 ;;
    --allow-type-errors) ALLOW_TSC_ERRORS=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "pack.sh: unknown option '$1'" >&2; exit 2 ;;
    *) OUT_DIR=$1 ;;
  esac
  shift
done
OUT_DIR=${OUT_DIR:-$ROOT/.gpu-bundle}
case "$OUT_DIR" in /*) ;; *) OUT_DIR=$PWD/$OUT_DIR ;; esac
OUT_DIR=${OUT_DIR%/}
TARBALL=$OUT_DIR.tar
CACHE=${SKIPGRAD_PACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skipgrad-gpu-pack}

for tool in node npx xz tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "pack.sh: '$tool' is needed" >&2; exit 1; }
done
[ "$(uname -m)" = x86_64 ] || { echo "pack.sh: the host is x86-64 and so must node and dawn.node be: pack on an x86-64 machine" >&2; exit 1; }
[ -f "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" ] || { echo "pack.sh: node_modules/webgpu/dist/linux-x64/dawn.node is missing (npm ci first)" >&2; exit 1; }
if [ -e "$OUT_DIR" ] && [ ! -f "$OUT_DIR/bundle.json" ] && [ -n "$(ls -A "$OUT_DIR" 2>/dev/null)" ]; then
  echo "pack.sh: $OUT_DIR exists and is not a bundle (no bundle.json): refusing to replace it" >&2; exit 1
fi
mkdir -p "$CACHE"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/skipgrad-pack.XXXXXX")
NEW=$OUT_DIR.new-$$
trap 'rm -rf "$STAGE" "$NEW"' EXIT
step() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------------
step "build: tsc -p tsconfig.build.json into a clean folder (the repo's dist/ is left alone)"
cd "$ROOT"
if ! npx tsc -p tsconfig.build.json --outDir "$STAGE/dist" --sourceMap false --declaration false; then
  if [ "$ALLOW_TSC_ERRORS" = 1 ] && [ -f "$STAGE/dist/bench/ops.js" ]; then
    echo "pack.sh: tsc reported errors; packing what it emitted (--allow-type-errors)"
  else
    echo "pack.sh: tsc failed (pass --allow-type-errors to pack what it emitted anyway)" >&2; exit 1
  fi
fi
ln -s "$ROOT/node_modules" "$STAGE/node_modules"   # so the tracer resolves packages as the repo does

step "run-time dependencies of the bench path (bench/gpu/deps.mjs)"
node "$ROOT/bench/gpu/deps.mjs" "$STAGE/dist" "$ROOT" >"$STAGE/deps.json"
node -e '
  const d = require(process.argv[1]);
  console.log("entries:      " + d.entries.join(", "));
  console.log("imports:      " + d.packages.join(", ") + (d.dataPackages.length ? "; data: " + d.dataPackages.join(", ") : "") + " (left out: " + d.excluded.join(", ") + ")");
  console.log("packages:     " + d.owners.join(", "));
  console.log("files:        " + d.files.length);' "$STAGE/deps.json"

# ---------------------------------------------------------------------------------------------------
step "app: dist/, shaders/, node_modules/"
APP=$STAGE/app
mkdir -p "$APP/bench/gpu"
(cd "$STAGE" && find dist -name '*.js' -print0 | tar --null -T - -cf - | tar -xf - -C "$APP")
cp -r "$ROOT/shaders" "$APP/shaders"
cp "$ROOT/bench/gpu/adapter.mjs" "$APP/bench/gpu/"
node -e '
  const fs = require("fs");
  const pkg = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const out = { name: pkg.name + "-gpu-bundle", version: pkg.version, private: true, type: "module",
    description: "skipgrad built code for the GPU bench bundle (bench/gpu/pack.sh)" };
  fs.writeFileSync(process.argv[2], JSON.stringify(out, null, 2) + "\n");' "$ROOT/package.json" "$APP/package.json"
node -e '
  const d = require(process.argv[1]);
  const fs = require("fs"), path = require("path");
  const [src, dst] = process.argv.slice(2);
  const owners = new Set(d.owners);
  for (const f of d.files) {
    fs.mkdirSync(path.dirname(path.join(dst, f)), { recursive: true });
    fs.copyFileSync(path.join(src, f), path.join(dst, f));
  }
  // Each package keeps its licence.
  for (const o of owners) {
    for (const f of fs.existsSync(path.join(src, o)) ? fs.readdirSync(path.join(src, o)) : []) {
      if (/^(licen[cs]e|copying|notice)/i.test(f)) fs.copyFileSync(path.join(src, o, f), path.join(dst, o, f));
    }
  }' "$STAGE/deps.json" "$ROOT/node_modules" "$APP/node_modules"
DAWN=$APP/node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$DAWN" ] || { echo "pack.sh: the trace did not include webgpu's linux-x64 dawn.node" >&2; exit 1; }
if [ "$STRIP" = 1 ] && command -v strip >/dev/null; then strip "$DAWN"; fi
# Only linux-x64: nothing of the other platforms' builds may have slipped in.
if find "$APP/node_modules" \( -name '*.dll' -o -path '*win32*' -o -path '*darwin*' -o -path '*linux-arm64*' -o -name '*.map' -o -name '*.d.ts' \) | grep -q .; then
  echo "pack.sh: unexpected files in the app:" >&2
  find "$APP/node_modules" \( -name '*.dll' -o -path '*win32*' -o -path '*darwin*' -o -path '*linux-arm64*' -o -name '*.map' -o -name '*.d.ts' \) >&2
  exit 1
fi
APP_RAW=$(du -sb "$APP" | cut -f1)

rm -rf "$NEW"
mkdir -p "$NEW/debs"
tar -C "$APP" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -T0 -9 >"$NEW/app.tar.xz"

# ---------------------------------------------------------------------------------------------------
step "node: $(command -v node) ($(node --version)), stripped and xz-compressed (cached)"
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_SHA=$(sha256sum "$NODE_BIN" | cut -c1-16)
NODE_XZ=$CACHE/node-$NODE_SHA-strip$STRIP.xz
if [ ! -s "$NODE_XZ" ]; then
  cp "$NODE_BIN" "$STAGE/node"
  if [ "$STRIP" = 1 ] && command -v strip >/dev/null; then strip "$STAGE/node"; fi
  "$STAGE/node" -e 'process.exit(0)' || { echo "pack.sh: the stripped node does not run" >&2; exit 1; }
  xz -T0 -9 -c "$STAGE/node" >"$NODE_XZ.tmp" && mv "$NODE_XZ.tmp" "$NODE_XZ"
else
  echo "cached: $NODE_XZ"
fi
cp "$NODE_XZ" "$NEW/node.xz"

# ---------------------------------------------------------------------------------------------------
step "libvulkan1 .deb (the device README's .gl recipe: apt-get download, amd64)"
DEB=
for d in "$ROOT/.gl" "$CACHE/debs"; do
  f=$(ls "$d"/libvulkan1_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$f" ] && { DEB=$f; break; }
done
if [ -z "$DEB" ]; then
  command -v apt-get >/dev/null || { echo "pack.sh: no libvulkan1 .deb cached and no apt-get to fetch one" >&2; exit 1; }
  mkdir -p "$CACHE/debs" /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd "$CACHE/debs" && apt-get "${o[@]}" download libvulkan1)
  DEB=$(ls "$CACHE/debs"/libvulkan1_*_amd64.deb | sort -V | tail -1)
fi
echo "deb: $DEB"
cp "$DEB" "$NEW/debs/"

# ---------------------------------------------------------------------------------------------------
step "runner, reference, README, manifest"
cp "$ROOT/bench/gpu/run.sh" "$ROOT/bench/gpu/torch_ref.py" "$ROOT/bench/gpu/collect.py" "$ROOT/bench/gpu/README.md" "$NEW/"
chmod +x "$NEW/run.sh" "$NEW/torch_ref.py" "$NEW/collect.py"
# The commit the bundle was built from, read from .git without running git (uncommitted changes are not seen).
COMMIT=
if [ -f "$ROOT/.git/HEAD" ]; then
  head=$(cat "$ROOT/.git/HEAD")
  case "$head" in
    ref:*) ref=${head#ref: }; COMMIT=$(cat "$ROOT/.git/$ref" 2>/dev/null || grep " $ref\$" "$ROOT/.git/packed-refs" 2>/dev/null | cut -d' ' -f1 || true) ;;
    *) COMMIT=$head ;;
  esac
fi
node -e '
  const fs = require("fs"), path = require("path"), crypto = require("crypto");
  const [dir, depsFile, root, commit, nodeBin, appRaw, deb] = process.argv.slice(1);
  const deps = require(depsFile);
  const ver = (p) => { try { return JSON.parse(fs.readFileSync(path.join(root, "node_modules", p, "package.json"), "utf8")).version; } catch { return null; } };
  const files = {};
  for (const f of fs.readdirSync(dir, { recursive: true }).sort()) {
    const p = path.join(dir, f);
    if (!fs.statSync(p).isFile()) continue;
    const b = fs.readFileSync(p);
    files[f] = { bytes: b.length, sha256: crypto.createHash("sha256").update(b).digest("hex") };
  }
  const m = {
    kind: "skipgrad-gpu-bundle",
    created: new Date().toISOString(),
    commit: commit || null,
    skipgrad: JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).version,
    node: { version: process.version, from: nodeBin },
    packages: Object.fromEntries(deps.owners.map((o) => [o, ver(o)])),
    benchEntries: deps.entries,
    appFiles: deps.files.length,
    appBytesUnpacked: Number(appRaw),
    vulkanLoaderDeb: path.basename(deb),
    files,
  };
  fs.writeFileSync(path.join(dir, "bundle.json"), JSON.stringify(m, null, 2) + "\n");' \
  "$NEW" "$STAGE/deps.json" "$ROOT" "$COMMIT" "$NODE_BIN" "$APP_RAW" "$DEB"

# ---------------------------------------------------------------------------------------------------
step "swap in $OUT_DIR and write $TARBALL"
rm -rf "$OUT_DIR"
mv "$NEW" "$OUT_DIR"
rm -f "$TARBALL"
# Its members are compressed already: a plain tar (extract with tar -xf; one top folder, $(basename "$OUT_DIR")/).
tar -C "$(dirname "$OUT_DIR")" --sort=name --owner=0 --group=0 --numeric-owner -cf "$TARBALL" "$(basename "$OUT_DIR")"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
echo
printf '%-32s %s\n' "node.xz" "$(mib "$(stat -c %s "$OUT_DIR/node.xz")")"
printf '%-32s %s (%s unpacked, %s files from node_modules)\n' "app.tar.xz" "$(mib "$(stat -c %s "$OUT_DIR/app.tar.xz")")" "$(mib "$APP_RAW")" \
  "$(node -e 'console.log(require(process.argv[1]).files.length)' "$STAGE/deps.json")"
printf '%-32s %s\n' "debs/$(basename "$DEB")" "$(mib "$(stat -c %s "$DEB")")"
DIR_BYTES=$(du -sb "$OUT_DIR" | cut -f1)
TAR_BYTES=$(stat -c %s "$TARBALL")
TOTAL=$((DIR_BYTES + TAR_BYTES))
printf '%-32s %s\n' "$OUT_DIR/" "$(mib "$DIR_BYTES")" "$TARBALL" "$(mib "$TAR_BYTES")" "together" "$(mib "$TOTAL")"
if [ "$TOTAL" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "pack.sh: FAIL: the bundle and its tarball take $(mib "$TOTAL"), over the ${LIMIT_MIB} MiB limit" >&2
  exit 1
fi
echo "ok: under ${LIMIT_MIB} MiB. On the GPU host: bash $(basename "$OUT_DIR")/run.sh (or tar -xf $(basename "$TARBALL") first)"
