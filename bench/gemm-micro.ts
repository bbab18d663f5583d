/**
 * Micro-benchmark of the CPU GEMM and convolution kernels (src/engine/cpu/gemm.ts, conv.ts, conv-direct.ts):
 * GFLOP/s of matmul and of conv forward / input gradient / weight gradient on the two reference
 * shapes and the esann decoder's last layer (one output channel: the direct kernels), on 1 thread
 * and on all threads, plus the parallel break-even point for small matmuls.
 *
 *   npx tsx bench/gemm-micro.ts [all|gemm|conv|threshold]    (--help: the usage)
 *
 * FLOP counts are 2 x multiply-adds of the mathematical operation (padding zeros not counted).
 * Each figure is the best (fastest) of several timed runs after a warm-up run: on a shared
 * machine other processes only ever slow a run down, so the minimum is the most repeatable
 * estimate. Runs during which other processes used the CPU (Linux /proc/stat) are retried; a
 * figure that could only be taken on a busy machine is flagged with the others' load in cores.
 */
import { readFileSync } from 'node:fs';
import type { Conv2dGeometry } from '../src/engine/backend.js';
import { allocArray, type DType, type FloatArray } from '../src/engine/dtype.js';
import { conv2dForward, conv2dGradInput, conv2dGradWeight, matmul } from '../src/engine/cpu/conv.js';
import { getThreadCount, setParallelMinFlops, setThreadCount, warmUpThreads } from '../src/engine/cpu/threads.js';

const maxThreads = getThreadCount();

function filled(dtype: DType, size: number): FloatArray {
  const a = allocArray(dtype, size, true); // shared, so the threaded path is possible
  for (let i = 0; i < size; i++) a[i] = Math.random() - 0.5;
  return a;
}

/** Busy CPU seconds of the whole machine so far (null where /proc/stat is unavailable). */
function machineBusySeconds(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait; ticks are 1/100 s.
    return (f.reduce((x, y) => x + y, 0) - f[3] - f[4]) / 100;
  } catch {
    return null;
  }
}

/** Load (in cores) that other processes put on the machine during the runs time() kept. */
let othersLoad = 0;

/**
 * Best seconds of `runs` timed calls, after one warm-up call, counting only calls during which
 * other processes kept the machine (nearly) idle: it retries, up to 4x `runs` calls, until it has
 * `runs` quiet ones. If it never gets any, it keeps the fastest call and othersLoad says how busy
 * the machine was.
 */
function time(fn: () => void, runs: number): number {
  fn();
  let bestQuiet = Infinity;
  let bestAny = Infinity;
  let loadOfBestAny = 0;
  let quiet = 0;
  for (let attempt = 0; attempt < 4 * runs && quiet < runs; attempt++) {
    const busy0 = machineBusySeconds();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const seconds = (performance.now() - t0) / 1000;
    const busy1 = machineBusySeconds();
    const cpu = process.cpuUsage(cpu0);
    const others = busy0 === null || busy1 === null ? 0 : Math.max(0, (busy1 - busy0 - (cpu.user + cpu.system) / 1e6) / seconds);
    if (others < 0.15) {
      quiet++;
      bestQuiet = Math.min(bestQuiet, seconds);
    }
    if (seconds < bestAny) {
      bestAny = seconds;
      loadOfBestAny = others;
    }
  }
  othersLoad = quiet > 0 ? 0 : loadOfBestAny;
  return quiet > 0 ? bestQuiet : bestAny;
}

const load = (): string => (othersLoad > 0.1 ? `  [others' load ${othersLoad.toFixed(1)} cores]` : '');

function threadSettings(): number[] {
  return maxThreads > 1 ? [1, maxThreads] : [1];
}

function benchGemm(): void {
  console.log('\n== matmul (GFLOP/s, best of 5 quiet runs) ==');
  const n = 512;
  // Naive baseline: i-k-j loop order (the good one for row-major), float64 accumulate.
  const a = filled('float32', n * n), b = filled('float32', n * n), c = filled('float32', n * n);
  const naive = time(() => {
    const row = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      row.fill(0);
      for (let p = 0; p < n; p++) {
        const av = a[i * n + p];
        for (let j = 0; j < n; j++) row[j] += av * b[p * n + j];
      }
      for (let j = 0; j < n; j++) c[i * n + j] = row[j];
    }
  }, 3);
  console.log(`naive JS 512^3 float32: ${(2 * n ** 3 / naive / 1e9).toFixed(2)}${load()}`);
  for (const dtype of ['float32', 'float64'] as const) {
    const x = filled(dtype, n * n), y = filled(dtype, n * n), z = filled(dtype, n * n);
    for (const threads of threadSettings()) {
      setThreadCount(threads);
      warmUpThreads();
      for (const [tA, tB] of [[false, false], [true, false], [false, true]] as const) {
        const s = time(() => matmul(x, y, z, 1, n, n, n, tA, tB), 5);
        console.log(`matmul 512^3 ${dtype} transA=${tA} transB=${tB} threads=${threads}: ${(2 * n ** 3 / s / 1e9).toFixed(2)}${load()}`);
      }
    }
  }
}

function geometry(batch: number, c: number, h: number, w: number, o: number, k: number, stride: number, pad: number, oh: number, ow: number): Conv2dGeometry {
  return { batch, inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernelH: k, kernelW: k,
    outHeight: oh, outWidth: ow, strideH: stride, strideW: stride, padTop: pad, padLeft: pad };
}

function benchConv(): void {
  console.log('\n== conv2d float32 (GFLOP/s, best of 3 quiet runs) ==');
  const shapes: [string, Conv2dGeometry][] = [
    ['[8,16,256,256] -> 32, 5x5 s2 valid (126x126)', geometry(8, 16, 256, 256, 32, 5, 2, 0, 126, 126)],
    ['[4,32,128,128] -> 64, 5x5 s2 same (64x64)   ', geometry(4, 32, 128, 128, 64, 5, 2, 1, 64, 64)],
    // The esann decoder's last conv: one output channel, so the direct kernels (conv-direct.ts), not im2col + GEMM.
    ['[8,16,256,256] -> 1, 5x5 s1 same (direct)   ', geometry(8, 16, 256, 256, 1, 5, 1, 2, 256, 256)],
  ];
  for (const [name, g] of shapes) {
    const x = filled('float32', g.batch * g.inChannels * g.inHeight * g.inWidth);
    const w = filled('float32', g.outChannels * g.inChannels * g.kernelH * g.kernelW);
    const bias = filled('float32', g.outChannels);
    const y = filled('float32', g.batch * g.outChannels * g.outHeight * g.outWidth);
    const dx = filled('float32', x.length), dw = filled('float32', w.length);
    const flops = 2 * g.batch * g.outChannels * g.inChannels * g.kernelH * g.kernelW * g.outHeight * g.outWidth;
    for (const threads of threadSettings()) {
      setThreadCount(threads);
      warmUpThreads();
      const r = (s: number) => `${(flops / s / 1e9).toFixed(2)} (${(s * 1000).toFixed(0)} ms)${load()}`;
      const f = r(time(() => conv2dForward(x, w, bias, y, g), 3));
      const gi = r(time(() => conv2dGradInput(y, w, dx, g), 3));
      const gw = r(time(() => conv2dGradWeight(x, y, dw, g), 3));
      console.log(`${name} threads=${threads}: forward ${f}  gradInput ${gi}  gradWeight ${gw}`);
    }
  }
}

/** Time small square float32 matmuls on 1 thread and on all threads, threshold disabled. */
function benchThreshold(): void {
  if (maxThreads < 2) return;
  console.log('\n== parallel break-even (square float32 matmul, microseconds per call, best of 7 quiet runs) ==');
  setParallelMinFlops(0);
  for (const n of [16, 32, 64, 80, 96, 112, 128, 160, 192, 256]) {
    const a = filled('float32', n * n), b = filled('float32', n * n), c = filled('float32', n * n);
    const reps = Math.max(5, Math.round(6e7 / (2 * n ** 3)));
    const us: number[] = [];
    for (const threads of [1, maxThreads]) {
      setThreadCount(threads);
      warmUpThreads();
      const s = time(() => { for (let r = 0; r < reps; r++) matmul(a, b, c, 1, n, n, n, false, false); }, 7);
      us.push((s / reps) * 1e6);
    }
    console.log(`n=${n} (${(2 * n ** 3 / 1e6).toFixed(2)} MFLOP): 1 thread ${us[0].toFixed(0)} us, ${maxThreads} threads ${us[1].toFixed(0)} us${load()}`);
  }
}

const USAGE = `usage: node dist/bench/gemm-micro.js [all|gemm|conv|threshold]   (or: npx tsx bench/gemm-micro.ts ...)
GFLOP/s of the CPU GEMM and convolution kernels on 1 thread and on all threads (SKIPGRAD_THREADS), and the
parallel break-even point for small matmuls.

  all         everything below (the default)
  gemm        matmul
  conv        conv forward, input gradient, weight gradient
  threshold   1 thread vs all threads on small matmuls
  --help      this text
`;
if (process.argv[2] === '--help' || process.argv[2] === '-h') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const what = process.argv[2] ?? 'all';
if (process.argv.length > 3 || !['all', 'gemm', 'conv', 'threshold'].includes(what)) {
  process.stderr.write(`gemm-micro: expected one of all, gemm, conv, threshold (or nothing: all), got '${process.argv.slice(2).join(' ')}'\n`);
  process.exit(2);
}
console.log(`threads available: ${maxThreads}`);
if (what === 'all' || what === 'gemm') benchGemm();
if (what === 'all' || what === 'conv') benchConv();
if (what === 'all' || what === 'threshold') benchThreshold();
