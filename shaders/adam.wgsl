// adam: one fused Adam / AdamW step, in place, for i < n:
//   decoupled (AdamW): p = p * (1 - lr*wd);  g' = g          (PyTorch's order: decay first)
//   otherwise (Adam):  g' = g + wd * p                        (L2 penalty in the gradient)
//   m = beta1 * m + omb1 * g'                                 (omb1 = 1 - beta1)
//   v = beta2 * v + omb2 * g'^2                               (omb2 = 1 - beta2)
//   p = p - lr * (m / bc1) / (sqrt(v / bc2) + eps),   bc1 = 1 - beta1^step, bc2 = 1 - beta2^step
// (decay = 1 - lr*wd, omb1, omb2, bc1 and bc2 are computed on the host in float64, then rounded to f32).
//
// Bindings:
//   0  uniform Params { n: u32, lr: f32, beta1: f32, beta2: f32, omb1: f32, omb2: f32, eps: f32,
//                       wd: f32, decay: f32, bc1: f32, bc2: f32, decoupled: u32 }
//   1  p: array<f32>   (read_write)
//   2  g: array<f32>   (read)
//   3  m: array<f32>   (read_write)
//   4  v: array<f32>   (read_write)
// Launch: grid1d(n, WG) workgroups of WG threads, one thread per element;
//         i = gid.x + gid.y * num_workgroups.x * WG.

override WG: u32 = 256u;

struct Params {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  omb1: f32,
  omb2: f32,
  eps: f32,
  wd: f32,
  decay: f32,
  bc1: f32,
  bc2: f32,
  decoupled: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  var pi = p[i];
  var gi = g[i];
  if (params.decoupled != 0u) {
    pi = pi * params.decay;
  } else {
    gi = gi + params.wd * pi;
  }
  let mi = params.beta1 * m[i] + params.omb1 * gi;
  let vi = params.beta2 * v[i] + params.omb2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = pi - params.lr * (mi / params.bc1) / (sqrt(vi / params.bc2) + params.eps);
}
