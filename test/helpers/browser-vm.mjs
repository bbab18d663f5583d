// Runs the browser bundle (dist/browser/skipgrad.js) the way a page would: as an ES module in a realm of its own
// (node:vm) whose globals are a browser's, not Node's: no process, no require, no Node modules; navigator.gpu is
// Dawn's GPU object (the `webgpu` package, made here in Node's realm, standing in for the browser's) and the
// WebGPU constants and error classes are globals. fetch is there but fails: the bundle must not need it (its
// shaders are built in).
//
//   node --experimental-vm-modules test/helpers/browser-vm.mjs <bundle> [--no-gpu] [--page <html>]
//
// Prints one JSON line: { ok, process, cpu, webgpu }: cpu = the CPU backend's describe() and the loss and
// gradient norm of a small network's training step; webgpu = the same on the GPU (null with --no-gpu or no
// adapter) and the largest difference from the CPU's numbers.
// With --page: runs the page's <script type="module"> instead (its import of the bundle resolved to the bundle,
// document.getElementById giving elements with a textContent) and prints { ok, text: { id: textContent } }.
import fs from 'node:fs';
import vm from 'node:vm';

const args = process.argv.slice(2);
const bundlePath = args[0];
const useGpu = !args.includes('--no-gpu');
const pagePath = args.includes('--page') ? args[args.indexOf('--page') + 1] : null;

let gpu = null;
let webgpuGlobals = {};
if (useGpu) {
  const dawn = await import('webgpu');
  webgpuGlobals = dawn.globals;
  gpu = dawn.create([]);
  globalThis.keepDawnAlive = gpu; // Dawn is torn down if V8 collects this object
}

const context = vm.createContext({
  ...webgpuGlobals,
  navigator: { gpu: gpu ?? undefined, userAgent: 'skipgrad-browser-vm', hardwareConcurrency: 2 },
  console, performance, setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask, URL, TextEncoder, TextDecoder,
  fetch: async (url) => { throw new Error(`the bundle fetched ${url}`); },
});
context.globalThis = context;
context.window = context;
const elements = {};
context.document = { getElementById: (id) => (elements[id] ??= { textContent: '' }) };

const bundle = new vm.SourceTextModule(fs.readFileSync(bundlePath, 'utf8'), { context, identifier: 'skipgrad.js' });
await bundle.link(() => { throw new Error('the bundle imports another module statically'); });
await bundle.evaluate();

if (pagePath) {
  const html = fs.readFileSync(pagePath, 'utf8');
  const script = /<script type="module">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (!script) throw new Error(`${pagePath}: no <script type="module">`);
  const mod = new vm.SourceTextModule(script, { context, identifier: pagePath });
  await mod.link(() => bundle); // its one import is the bundle
  await mod.evaluate();
  const text = Object.fromEntries(Object.entries(elements).map(([id, e]) => [id, e.textContent]));
  console.log(JSON.stringify({ ok: true, text }));
  process.exit(0);
}

const page = new vm.SourceTextModule(`
import * as sg from 'skipgrad';
function net(backend) {
  const r = new sg.Rng(7);
  const o = { backend, rng: r };
  const p = {
    w1: sg.uniform([4, 1, 3, 3], -0.5, 0.5, o), b1: sg.zeros([4], { backend }),
    gamma: sg.ones([4], { backend }), beta: sg.zeros([4], { backend }),
    w2: sg.uniform([4, 1, 3, 3], -0.5, 0.5, o),
  };
  for (const t of Object.values(p)) t.requiresGrad = true;
  const x = sg.uniform([2, 1, 16, 16], 0, 1, o);
  const target = sg.uniform([2, 1, 16, 16], 0, 1, o);
  return { p, x, target };
}
async function step(backend) {
  sg.setBackend(backend);
  const { p, x, target } = net(backend);
  const opt = new sg.Adam(Object.values(p), { lr: 1e-2 });
  const loss = sg.scope(() => {
    let h = sg.conv2d(x, p.w1, { bias: p.b1, stride: 2, padding: 'same' });
    h = sg.batchNorm2d(h, p.gamma, p.beta, null, null, { training: true });
    h = sg.leakyRelu(sg.upsampleNearest2d(h, 2), 0.2);
    const y = sg.sigmoid(sg.convTranspose2d(h, p.w2, { padding: 1 }));
    const l = sg.mseLoss(y, target);
    l.backward();
    return l;
  });
  const grads = await Promise.all(Object.values(p).map((t) => t.grad.data()));
  opt.step();
  const after = await p.w1.data();
  return { loss: await loss.item(), grads: grads.map((g) => Array.from(g)), w1: Array.from(after) };
}
const out = { process: typeof process, require: typeof require, cpu: null, webgpu: null, maxDiff: null };
out.cpu = { describe: sg.getBackend('cpu').describe(), ...(await step('cpu')) };
const gpu = ${useGpu} ? await sg.webgpuBackend() : null;
if (gpu) {
  out.webgpu = { describe: gpu.describe(), ...(await step('webgpu')) };
  let d = Math.abs(out.cpu.loss - out.webgpu.loss);
  out.cpu.grads.forEach((g, i) => g.forEach((v, j) => { d = Math.max(d, Math.abs(v - out.webgpu.grads[i][j])); }));
  out.cpu.w1.forEach((v, j) => { d = Math.max(d, Math.abs(v - out.webgpu.w1[j])); });
  out.maxDiff = d;
}
globalThis.result = out;
`, { context, identifier: 'page.js' });
await page.link((specifier) => {
  if (specifier === 'skipgrad') return bundle;
  throw new Error(`unexpected import ${specifier}`);
});
await page.evaluate();
const r = context.result;
console.log(JSON.stringify({
  ok: true, process: r.process, require: r.require, maxDiff: r.maxDiff,
  cpu: { describe: r.cpu.describe, loss: r.cpu.loss, gradNorm: Math.hypot(...r.cpu.grads.flat()) },
  webgpu: r.webgpu && { describe: r.webgpu.describe, loss: r.webgpu.loss },
}));
process.exit(0);
