/**
 * Choosing a backend: 'cpu', 'webgpu', or 'auto' (a hardware GPU adapter when there is one, else the CPU;
 * a software adapter such as lavapipe is only used when asked for by name). SKIPGRAD_BACKEND=cpu|webgpu|auto
 * overrides the default of useBackend().
 */
import type { Backend } from './backend.js';
import { host } from './host.js';
import { getBackend, registerBackend, setBackend } from './registry.js';

export type BackendChoice = 'auto' | 'cpu' | 'webgpu';

let webgpu: Promise<Backend | null> | null = null;

/** The webgpu backend (created once), or null when no adapter can be had. */
export function webgpuBackend(): Promise<Backend | null> {
  webgpu ??= (async () => {
    const { createWebGPUBackend } = await import('./webgpu/backend.js');
    const b = await createWebGPUBackend();
    if (b) registerBackend(b);
    return b;
  })();
  const attempt = webgpu;
  // A failure (say, a shader loader that could not reach its server) is not kept: the next call tries again.
  attempt.catch(() => {
    if (webgpu === attempt) webgpu = null;
  });
  return attempt;
}

/** Makes `choice` the backend new tensors go to, and returns it. */
export async function useBackend(choice: BackendChoice | string = host.env('SKIPGRAD_BACKEND') ?? 'auto'): Promise<Backend> {
  if (choice === 'cpu') return setBackend('cpu');
  if (choice === 'webgpu') {
    const b = await webgpuBackend();
    if (!b) throw new Error('backend webgpu: no WebGPU adapter found (in Node, a Vulkan driver is needed: see scripts/provision-vulkan.sh)');
    return setBackend('webgpu');
  }
  if (choice === 'auto') {
    const b = await webgpuBackend().catch(() => null);
    const software = b && 'gpu' in b && (b as { gpu: { software: boolean } }).gpu.software;
    return b && !software ? setBackend('webgpu') : setBackend('cpu');
  }
  throw new Error(`unknown backend '${choice}' (expected auto, cpu or webgpu)`);
}

/**
 * The backend `choice` resolved to, for logs; for 'auto' on the CPU, why: no adapter at all (Dawn may have warned
 * that it could not load Vulkan), or only a software one, which auto passes over.
 */
export async function describeChoice(choice: BackendChoice | string, backend: Backend): Promise<string> {
  if (choice !== 'auto' || backend.name !== 'cpu') return backend.describe();
  const gpu = await webgpuBackend().catch(() => null);
  const why = gpu ? `the only WebGPU adapter is CPU-emulated (${gpu.describe()}); --backend webgpu would use it`
    : 'no WebGPU adapter (in Node that takes a Vulkan driver; see scripts/provision-vulkan.sh)';
  return `${backend.describe()} (auto: ${why})`;
}

export { getBackend };
