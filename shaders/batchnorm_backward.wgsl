// batchnorm_backward: the elementwise BatchNorm2d input gradient (NCHW), from the per-channel coefficients
// (kc, mean, B, D) = coef[c] written by batchnorm_grad_merge.wgsl, c = (idx / HW) % C:
//   training: dx[idx] = kc * dy[idx] - D - (x[idx] - mean) * B
//                     (= gamma*invStd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)), xhat = (x - mean)*invStd)
//   eval:     dx[idx] = kc * dy[idx]          (= gamma * invStd * dy)
//
// Params: total = N*C*H*W, channels = C, hw = H*W, training (0/1) (all u32)
// Bindings:
//   0  Params (uniform)
//   1  dy    [total]    var<storage, read>
//   2  x     [total]    var<storage, read>
//   3  coef  [C] vec4   var<storage, read>
//   4  dx    [total]    var<storage, read_write>
// Launch: grid1d(total, WG), one thread per element; linear index = gid.x + gid.y * nwg.x * WG.

override WG: u32 = 256u;

struct Params {
  total: u32,
  channels: u32,
  hw: u32,
  training: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= P.total) {
    return;
  }
  let q = coef[(idx / P.hw) % P.channels];
  if (P.training != 0u) {
    dx[idx] = q.x * dy[idx] - q.w - (x[idx] - q.y) * q.z;
  } else {
    dx[idx] = q.x * dy[idx];
  }
}
