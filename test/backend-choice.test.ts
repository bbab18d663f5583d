/**
 * Choosing a backend (src/engine/backends.ts): 'cpu', 'webgpu', 'auto' (a hardware adapter, else the CPU: a
 * CPU-emulated adapter such as lavapipe is passed over), an unknown name, and the line the pipeline logs for the
 * choice, which says why 'auto' ended on the CPU.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { describeChoice, getBackend, useBackend, webgpuBackend } from '../src/engine/backends.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';

afterAll(async () => {
  await useBackend('cpu');
});

describe('useBackend and describeChoice', () => {
  it("'cpu' is the CPU, and an unknown name says which are known", async () => {
    expect((await useBackend('cpu')).name).toBe('cpu');
    await expect(useBackend('tpu')).rejects.toThrow("unknown backend 'tpu' (expected auto, cpu or webgpu)");
    expect(await describeChoice('cpu', getBackend('cpu'))).toBe(getBackend('cpu').describe());
  });

  it("'auto' takes a hardware adapter, else the CPU, and the log line says why", async () => {
    const gpu = await webgpuBackend();
    const software = gpu instanceof WebGPUBackend && gpu.gpu.software;
    const b = await useBackend('auto');
    const line = await describeChoice('auto', b);
    if (gpu && !software) {
      expect(b.name).toBe('webgpu');
      expect(line).toBe(b.describe());
    } else {
      expect(b.name).toBe('cpu');
      expect(line.startsWith(`${b.describe()} (auto: `)).toBe(true);
      expect(line).toMatch(gpu
        ? /the only WebGPU adapter is CPU-emulated \(webgpu: .*\); --backend webgpu would use it\)$/
        : /no WebGPU adapter \(in Node that takes a Vulkan driver; see scripts\/provision-vulkan\.sh\)\)$/);
    }
  });
});
