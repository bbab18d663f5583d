// Prints the WebGPU adapter Dawn sees (one JSON line on stdout); exit 1 when there is none.
// Run from the bundle (bench/gpu/run.sh) or the repo: node bench/gpu/adapter.mjs [dawn options...]
// Dawn options (e.g. backend=vulkan) are passed to create(), as in scripts/webgpu-smoke.mjs.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
// Dawn's instance must stay reachable while it is used (else it is torn down under running work).
const keep = { gpu: create(process.argv.slice(2)) };
globalThis.__skipgradAdapterKeep = keep;

const out = { node: process.version, dawnOptions: process.argv.slice(2) };
try {
  const adapter = await keep.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    out.adapter = null;
    out.error = 'no adapter (is a Vulkan loader and driver ICD reachable? see VK_DRIVER_FILES, LD_LIBRARY_PATH)';
  } else {
    const i = adapter.info;
    out.adapter = {
      vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
      isFallbackAdapter: i.isFallbackAdapter ?? false,
    };
    out.software = out.adapter.isFallbackAdapter
      || /llvmpipe|lavapipe|swiftshader|software/i.test(`${i.architecture} ${i.device} ${i.description}`);
    out.features = [...adapter.features].map(String).sort();
    const l = adapter.limits;
    out.limits = {};
    for (const k of ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension',
      'maxStorageBuffersPerShaderStage', 'minSubgroupSize', 'maxSubgroupSize']) {
      if (l[k] !== undefined) out.limits[k] = l[k];
    }
  }
} catch (e) {
  out.adapter = null;
  out.error = String(e && e.message ? e.message : e);
}
process.stdout.write(JSON.stringify(out) + '\n');
// Dawn's threads can keep the process alive; leave explicitly.
process.exit(out.adapter ? 0 : 1);
