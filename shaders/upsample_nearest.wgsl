// upsample_nearest: nearest-neighbour upsampling by integer factors (NCHW).
//   y[p, oy, ox] = x[p, floor(oy / sh), floor(ox / sw)]     p < N*C, oy < H*sh, ox < W*sw
// x is [N, C, H, W], y is [N, C, H*sh, W*sw].
//
// Params: total = N*C*(H*sh)*(W*sw), h = H, w = W, sh, sw (all u32)
// Bindings:
//   0  Params (uniform)
//   1  x  [N*C*H*W]            var<storage, read>
//   2  y  [total]              var<storage, read_write>
// Launch: grid1d(total, WG), one thread per output element; linear index = gid.x + gid.y * nwg.x * WG.

override WG: u32 = 256u;

struct Params {
  total: u32,
  h: u32,
  w: u32,
  sh: u32,
  sw: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= P.total) {
    return;
  }
  let ow = P.w * P.sw;
  let oh = P.h * P.sh;
  let ox = idx % ow;
  let t = idx / ow;
  let oy = t % oh;
  let p = t / oh;
  y[idx] = x[(p * P.h + oy / P.sh) * P.w + ox / P.sw];
}
