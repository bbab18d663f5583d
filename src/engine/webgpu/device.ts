/**
 * Getting a WebGPU device: `navigator.gpu` in a browser, the `webgpu` package (Dawn) in Node.
 *
 * Dawn's instance (the object create() returns) must stay reachable for the life of the process:
 * if V8 collects it, Dawn is torn down under running work (random segfaults). It is kept on a
 * module-level object that is never released.
 */
export interface GpuDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean };
  /** A CPU-emulated adapter (lavapipe / SwiftShader / llvmpipe): fine for tests, not for speed. */
  software: boolean;
  features: string[];
  hasTimestamps: boolean;
}

const keepAlive: { gpu: GPU | null } = { gpu: null };

async function getGpu(): Promise<GPU | null> {
  if (keepAlive.gpu) return keepAlive.gpu;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    keepAlive.gpu = nav.gpu;
    return nav.gpu;
  }
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  let mod: { create: (options: string[]) => GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new Error(`webgpu: the 'webgpu' package (Dawn for Node) could not be loaded: ${(e as Error).message}`);
  }
  // GPUBufferUsage, GPUMapMode, ... as globals, as in a browser.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  keepAlive.gpu = mod.create((process.env.SKIPGRAD_DAWN_OPTIONS ?? '').split(/\s+/).filter(Boolean));
  return keepAlive.gpu;
}

/** The Dawn / browser GPU object (kept alive), e.g. to hand to TensorFlow.js as navigator.gpu. */
export async function gpuInstance(): Promise<GPU | null> {
  return getGpu();
}

/**
 * Requests an adapter and a device with the adapter's own values of the limits listed below (the others stay at
 * WebGPU's defaults) and timestamp-query where the adapter has it; null when there is no adapter.
 */
export async function requestGpuDevice(): Promise<GpuDevice | null> {
  const gpu = await getGpu();
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  const wanted: GPUFeatureName[] = ['timestamp-query'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const limits = adapter.limits;
  const requiredLimits: Record<string, number> = {};
  for (const name of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxStorageBuffersPerShaderStage'] as const) {
    requiredLimits[name] = limits[name];
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const i = adapter.info;
  const info = {
    vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
    isFallbackAdapter: (i as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
  };
  const software = info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.architecture} ${info.device} ${info.description}`);
  return { adapter, device, info, software, features: [...adapter.features].map(String), hasTimestamps: requiredFeatures.includes('timestamp-query') };
}
