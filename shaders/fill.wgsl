// fill: out[i] = value for i < n.
//
// Bindings:
//   0  uniform Params { n: u32, value: f32 }
//   1  out: array<f32>   (read_write)
// Launch: grid1d(n, WG) workgroups of WG threads, one thread per element; linear index
//         i = gid.x + gid.y * num_workgroups.x * WG.

override WG: u32 = 256u;

struct Params {
  n: u32,
  value: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  out[i] = params.value;
}
