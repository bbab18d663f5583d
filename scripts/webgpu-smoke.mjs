// WebGPU smoke test for Node via the npm package `webgpu` (Dawn).
//
//   bash scripts/provision-vulkan.sh && source .vk/env.sh && node scripts/webgpu-smoke.mjs
//
// Prints the adapter's info, features and key limits, runs a tiny compute
// shader (doubles 1024 floats, read back through a MAP_READ staging buffer)
// and times a naive 256x256x256 f32 matmul to show how fast the adapter is.
// Exits non-zero with a message when there is no adapter or a check fails.
//
// Extra Dawn options can be passed as arguments, e.g.
//   node scripts/webgpu-smoke.mjs backend=vulkan
//   node scripts/webgpu-smoke.mjs adapter=foo      (lists the adapters Dawn sees)
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

// Keep the GPU object reachable for the life of the process: if it is
// collected, Dawn is torn down under running work and crashes at random.
const keep = { gpu: create(process.argv.slice(2)) };
globalThis.__webgpuSmokeKeep = keep;

function fail(msg) {
  console.error(`webgpu-smoke: FAIL: ${msg}`);
  process.exit(1);
}

async function runCompute(device, code, bindings, workgroups) {
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  for (const m of info.messages) {
    if (m.type === 'error') fail(`WGSL error: ${m.message} (line ${m.lineNum})`);
  }
  const pipeline = await device.createComputePipelineAsync({
    layout: 'auto',
    compute: { module, entryPoint: 'main' },
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  return { pipeline, bindGroup, dispatch: (enc) => {
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...workgroups);
    pass.end();
  } };
}

async function readBack(device, src, size) {
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

async function main() {
  const adapter = await keep.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    fail('no WebGPU adapter. For a software Vulkan driver run ' +
      '`bash scripts/provision-vulkan.sh && source .vk/env.sh` first ' +
      `(VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '<unset>'}).`);
  }
  const ai = adapter.info;
  console.log('adapter.info:', JSON.stringify({
    vendor: ai.vendor, architecture: ai.architecture, device: ai.device,
    description: ai.description, isFallbackAdapter: ai.isFallbackAdapter,
    subgroupMinSize: ai.subgroupMinSize, subgroupMaxSize: ai.subgroupMaxSize,
  }));
  const features = [...adapter.features].sort();
  console.log('features:', features.join(', '));
  const L = adapter.limits;
  const limitNames = [
    'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
    'maxBufferSize', 'maxStorageBufferBindingSize',
  ];
  console.log('limits:', JSON.stringify(Object.fromEntries(limitNames.map((k) => [k, L[k]]))));

  const wanted = ['shader-f16', 'timestamp-query', 'subgroups'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({
    requiredFeatures: wanted,
    requiredLimits: {
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      maxBufferSize: L.maxBufferSize,
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    },
  });
  device.addEventListener?.('uncapturederror', (e) => fail(`uncaptured GPU error: ${e.error?.message}`));
  device.lost.then((i) => { if (i.reason !== 'destroyed') fail(`device lost: ${i.message}`); });

  // ---- 1. tiny compute: double 1024 floats
  const N = 1024;
  const input = new Float32Array(N).map((_, i) => i * 0.5 - 7);
  const buf = device.createBuffer({
    size: N * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buf, 0, input);
  const dbl = await runCompute(device, /* wgsl */ `
    @group(0) @binding(0) var<storage, read_write> data: array<f32>;
    @compute @workgroup_size(64)
    fn main(@builtin(global_invocation_id) id: vec3u) {
      if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0; }
    }`, [buf], [N / 64]);
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder();
  dbl.dispatch(enc);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) fail(`validation error: ${err.message}`);
  const got = await readBack(device, buf, N * 4);
  for (let i = 0; i < N; i++) {
    if (got[i] !== input[i] * 2) fail(`double: out[${i}] = ${got[i]}, want ${input[i] * 2}`);
  }
  console.log(`double ${N} floats: OK`);

  // ---- 2. naive matmul 256x256x256 timing
  const M = 256, K = 256, Nn = 256;
  const A = new Float32Array(M * K).map(() => Math.random() - 0.5);
  const B = new Float32Array(K * Nn).map(() => Math.random() - 0.5);
  const mk = (arr, usage) => {
    const b = device.createBuffer({ size: arr.byteLength, usage });
    device.queue.writeBuffer(b, 0, arr);
    return b;
  };
  const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const bufA = mk(A, S), bufB = mk(B, S);
  const bufC = device.createBuffer({ size: M * Nn * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const mm = await runCompute(device, /* wgsl */ `
    @group(0) @binding(0) var<storage, read> a: array<f32>;
    @group(0) @binding(1) var<storage, read> b: array<f32>;
    @group(0) @binding(2) var<storage, read_write> c: array<f32>;
    const M = ${M}u; const K = ${K}u; const N = ${Nn}u;
    @compute @workgroup_size(16, 16)
    fn main(@builtin(global_invocation_id) id: vec3u) {
      let row = id.y; let col = id.x;
      if (row >= M || col >= N) { return; }
      var acc = 0.0;
      for (var k = 0u; k < K; k++) { acc += a[row * K + k] * b[k * N + col]; }
      c[row * N + col] = acc;
    }`, [bufA, bufB, bufC], [Nn / 16, M / 16]);
  const runOnce = async () => {
    const e = device.createCommandEncoder();
    mm.dispatch(e);
    device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  let t = performance.now();
  await runOnce(); // warm-up (includes any lazy shader compilation)
  const first = performance.now() - t;
  const reps = 5;
  t = performance.now();
  for (let r = 0; r < reps; r++) await runOnce();
  const per = (performance.now() - t) / reps;
  const C = await readBack(device, bufC, M * Nn * 4);
  let maxErr = 0;
  for (const [i, j] of [[0, 0], [17, 200], [255, 255], [128, 3], [99, 99]]) {
    let ref = 0;
    for (let k = 0; k < K; k++) ref += A[i * K + k] * B[k * Nn + j];
    maxErr = Math.max(maxErr, Math.abs(ref - C[i * Nn + j]));
  }
  if (!(maxErr < 1e-3)) fail(`matmul mismatch, max abs err ${maxErr}`);
  const gflops = (2 * M * K * Nn) / (per * 1e6);
  console.log(`matmul ${M}x${K}x${Nn} naive: first ${first.toFixed(1)} ms, ` +
    `then ${per.toFixed(1)} ms/run (${gflops.toFixed(2)} GFLOP/s), max abs err ${maxErr.toExponential(2)}: OK`);

  for (const b of [buf, bufA, bufB, bufC]) b.destroy();
  device.destroy();
  console.log('webgpu-smoke: OK');
}

main().then(
  () => {
    // Let Dawn drain, then drop the reference so Node can exit.
    setTimeout(() => { delete globalThis.__webgpuSmokeKeep; process.exit(0); }, 50);
  },
  (e) => fail(e?.stack ?? String(e)),
);
