// batchnorm_forward: the elementwise BatchNorm2d normalisation (NCHW), from per-channel statistics.
//   y[idx] = (x[idx] - mean[c]) * (gamma[c] * invStd[c]) + beta[c],   c = (idx / HW) % C
// (= gamma * (x - mean) * invStd + beta; x - mean is formed first so a large mean does not cost precision).
//
// Params: total = N*C*H*W, channels = C, hw = H*W (all u32)
// Bindings:
//   0  Params (uniform)
//   1  x       [total]  var<storage, read>
//   2  gamma   [C]      var<storage, read>
//   3  beta    [C]      var<storage, read>
//   4  mean    [C]      var<storage, read>   (saveMean)
//   5  invStd  [C]      var<storage, read>   (saveInvStd)
//   6  y       [total]  var<storage, read_write>
// Launch: grid1d(total, WG), one thread per element; linear index = gid.x + gid.y * nwg.x * WG.

override WG: u32 = 256u;

struct Params {
  total: u32,
  channels: u32,
  hw: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> invStd: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= P.total) {
    return;
  }
  let c = (idx / P.hw) % P.channels;
  let scale = gamma[c] * invStd[c];
  y[idx] = (x[idx] - mean[c]) * scale + beta[c];
}
