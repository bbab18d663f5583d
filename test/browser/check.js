// The check a browser page runs against the bundle (test/browser.test.ts serves it next to the bundle): one
// training step of a small network that goes through conv2d, batch norm, nearest upsampling, leaky ReLU,
// convTranspose2d, sigmoid, MSE, backward and Adam, on the CPU backend and, when the page has an adapter, on
// WebGPU; the two must agree. Plain JavaScript: the page imports it as it is.

function net(sg, backend) {
  const rng = new sg.Rng(7);
  const o = { backend, rng };
  const p = {
    w1: sg.uniform([4, 1, 3, 3], -0.5, 0.5, o), b1: sg.zeros([4], { backend }),
    gamma: sg.ones([4], { backend }), beta: sg.zeros([4], { backend }),
    w2: sg.uniform([4, 1, 3, 3], -0.5, 0.5, o),
  };
  for (const t of Object.values(p)) t.requiresGrad = true;
  return { p, x: sg.uniform([2, 1, 16, 16], 0, 1, o), target: sg.uniform([2, 1, 16, 16], 0, 1, o) };
}

async function step(sg, backend) {
  sg.setBackend(backend);
  const { p, x, target } = net(sg, backend);
  const opt = new sg.Adam(Object.values(p), { lr: 1e-2 });
  const loss = sg.scope(() => {
    let h = sg.conv2d(x, p.w1, { bias: p.b1, stride: 2, padding: 'same' });
    h = sg.batchNorm2d(h, p.gamma, p.beta, null, null, { training: true });
    h = sg.leakyRelu(sg.upsampleNearest2d(h, 2), 0.2);
    const l = sg.mseLoss(sg.sigmoid(sg.convTranspose2d(h, p.w2, { padding: 1 })), target);
    l.backward();
    return l;
  });
  const grads = await Promise.all(Object.values(p).map((t) => t.grad.data()));
  opt.step();
  return { loss: await loss.item(), grads: grads.map((g) => Array.from(g)), w1: Array.from(await p.w1.data()) };
}

/** exp, log and sqrt where WGSL leaves the builtins undefined, and tanh and sigmoid (made of exp): the values must be
 *  Math's (NaN, -Infinity...). */
async function domainEdges(sg, backend) {
  sg.setBackend(backend);
  const x = sg.fromArray([-1, -0, 0, NaN, -Infinity, Infinity, 2], [7]);
  const out = {};
  for (const op of ['exp', 'log', 'sqrt', 'tanh', 'sigmoid']) out[op] = Array.from(await sg[op](x).data(), (v) => String(v));
  return out;
}

/** { process, cpu: {describe, loss, gradNorm}, webgpu: {describe, loss} | null, maxDiff, edges: {cpu, webgpu} } */
export async function check(sg) {
  const cpu = await step(sg, 'cpu');
  const out = {
    process: typeof process,
    cpu: { describe: sg.getBackend('cpu').describe(), loss: cpu.loss, gradNorm: Math.hypot(...cpu.grads.flat()) },
    webgpu: null, maxDiff: null,
  };
  const gpu = await sg.webgpuBackend();
  if (gpu) {
    const g = await step(sg, 'webgpu');
    let d = Math.abs(cpu.loss - g.loss);
    cpu.grads.forEach((a, i) => a.forEach((v, j) => { d = Math.max(d, Math.abs(v - g.grads[i][j])); }));
    cpu.w1.forEach((v, j) => { d = Math.max(d, Math.abs(v - g.w1[j])); });
    out.webgpu = { describe: gpu.describe(), loss: g.loss };
    out.maxDiff = d;
    out.edges = { cpu: await domainEdges(sg, 'cpu'), webgpu: await domainEdges(sg, 'webgpu') };
  }
  return out;
}
