// conv2d_grad_weight_reduce: sums the split-K partial weight gradients of conv2d_grad_weight.wgsl.
//
//   dw[i] = sum_{s < splits} partial[s * size + i]      (i < size = O*C*KH*KW)
//
// Bindings: 0 uniform Params, 1 partial (read), 2 dw (read_write).
// Launch: grid1d(size, WG): one thread per element, i = gid.x + gid.y * nwg.x * WG.

struct Params {
  size: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.size) {
    return;
  }
  var sum = 0.0;
  for (var s = 0u; s < P.splits; s++) {
    sum += partial[s * P.size + i];
  }
  dw[i] = sum;
}
