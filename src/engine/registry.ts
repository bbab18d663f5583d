/** Which backend new tensors go to. The CPU backend always exists; others (webgpu) register themselves. */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/backend.js';

const backends = new Map<string, Backend>();
const cpu = new CpuBackend();
backends.set('cpu', cpu);
let current: Backend = cpu;

export function registerBackend(backend: Backend): void {
  backends.set(backend.name, backend);
}

/** The backend by name, or the current default. */
export function getBackend(name?: string): Backend {
  if (name === undefined) return current;
  const b = backends.get(name);
  if (!b) throw new Error(`backend '${name}' is not available (registered: ${[...backends.keys()].join(', ')})`);
  return b;
}

export function setBackend(name: string): Backend {
  current = getBackend(name);
  return current;
}

export function cpuBackend(): CpuBackend {
  return cpu;
}
