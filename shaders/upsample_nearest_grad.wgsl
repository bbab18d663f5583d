// upsample_nearest_grad: gradient of nearest-neighbour upsampling by integer factors (NCHW).
//   dx[p, i, j] = sum_{a < sh} sum_{b < sw} dy[p, i*sh + a, j*sw + b]     p < N*C, i < H, j < W
// dy is [N, C, H*sh, W*sw], dx is [N, C, H, W]. Summed in the order a, then b (as the CPU kernel).
//
// Params: total = N*C*H*W, h = H, w = W, sh, sw (all u32)
// Bindings:
//   0  Params (uniform)
//   1  dy [N*C*(H*sh)*(W*sw)]  var<storage, read>
//   2  dx [total]              var<storage, read_write>
// Launch: grid1d(total, WG), one thread per dx element; linear index = gid.x + gid.y * nwg.x * WG.

override WG: u32 = 256u;

struct Params {
  total: u32,
  h: u32,
  w: u32,
  sh: u32,
  sw: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= P.total) {
    return;
  }
  let ow = P.w * P.sw;
  let oh = P.h * P.sh;
  let j = idx % P.w;
  let t = idx / P.w;
  let i = t % P.h;
  let p = t / P.h;
  var s = 0.0;
  for (var a = 0u; a < P.sh; a++) {
    let row = (p * oh + i * P.sh + a) * ow + j * P.sw;
    for (var b = 0u; b < P.sw; b++) {
      s += dy[row + b];
    }
  }
  dx[idx] = s;
}
