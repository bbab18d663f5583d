/**
 * Test access to a WebGPU device. With CI=true a missing adapter is a failure, never a skip;
 * elsewhere the WebGPU suites skip with a message saying why.
 */
import type { Backend } from '../../src/engine/backend.js';
import { webgpuBackend } from '../../src/engine/backends.js';
import { requestGpuDevice, type GpuDevice } from '../../src/engine/webgpu/device.js';
import { GpuRuntime } from '../../src/engine/webgpu/runtime.js';
import { loadShaders } from '../../src/engine/webgpu/shaders.js';

const NO_ADAPTER = 'no WebGPU adapter (run: bash scripts/provision-vulkan.sh && source .vk/env.sh)';

/** No adapter: a failure under CI=true, elsewhere a warning that `what` is skipped. */
function noAdapter(what: string): void {
  if (process.env.CI === 'true') throw new Error(`CI=true but ${NO_ADAPTER}`);
  console.warn(`${what} skipped: ${NO_ADAPTER}`);
}

/** The webgpu backend, or null when there is no adapter (see noAdapter). */
export async function webgpuBackendOrSkip(what: string): Promise<Backend | null> {
  const b = await webgpuBackend();
  if (!b) noAdapter(what);
  return b;
}

let cached: Promise<{ gpu: GpuDevice; rt: GpuRuntime } | null> | null = null;

export function gpuRuntime(): Promise<{ gpu: GpuDevice; rt: GpuRuntime } | null> {
  cached ??= (async () => {
    const gpu = await requestGpuDevice();
    if (!gpu) {
      noAdapter('WebGPU tests');
      return null;
    }
    await loadShaders();
    return { gpu, rt: new GpuRuntime(gpu.device, gpu.hasTimestamps, gpu.software) };
  })();
  return cached;
}

/** The runtime; throws if there is none (call only inside tests that were not skipped). */
export async function rtOrThrow(): Promise<GpuRuntime> {
  const r = await gpuRuntime();
  if (!r) throw new Error('no WebGPU runtime');
  return r.rt;
}

/** Whether the WebGPU suites should run (throws under CI=true without an adapter). */
export async function haveGpu(): Promise<boolean> {
  return (await gpuRuntime()) !== null;
}

/** Runs fn (kernel calls) as one op named `name`, as the backend does; errors surface at the next read or sync. */
export function inOp(rt: GpuRuntime, name: string, fn: () => void): void {
  rt.beginOp(name);
  try {
    fn();
  } finally {
    void rt.endOp();
  }
}

export function upload(rt: GpuRuntime, data: ArrayLike<number>): GPUBuffer {
  const f = Float32Array.from(data);
  const buf = rt.acquire(Math.max(4, f.byteLength));
  rt.write(buf, f);
  return buf;
}

/** A buffer of n floats filled with NaN, so elements a kernel forgets to write are caught. */
export function poisoned(rt: GpuRuntime, n: number): GPUBuffer {
  return upload(rt, new Float32Array(Math.max(1, n)).fill(NaN));
}

export async function download(rt: GpuRuntime, buf: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await rt.read(buf, n * 4));
}
