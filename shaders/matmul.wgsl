// matmul: batched matrix product with optional transposes, tiled in workgroup memory.
//
//   out[bi][i][j] = sum_p opA(a[bi])[i][p] * opB(b[bi])[p][j]     (bi < batch, i < M, j < N, p < K)
//   a[bi] is [M, K] (or [K, M] with transA), b[bi] is [K, N] (or [N, K] with transB), out[bi] is [M, N];
//   the transposes are only a choice of strides in the tile loads:
//     A[m][k] = a[bi*M*K + m*aStrideM + k*aStrideK]    (aStrideM, aStrideK) = transA ? (1, M) : (K, 1)
//     B[k][n] = b[bi*K*N + k*bStrideK + n*bStrideN]    (bStrideK, bStrideN) = transB ? (1, K) : (N, 1)
//
// Tiling (the same scheme as conv2d.wgsl): a workgroup computes a BM x BN tile of one product,
// walking K in steps of BK; each step loads the A and B tiles into workgroup memory (vec4 slots),
// then each thread accumulates a TM x 4 block in registers. Thread (ty, tx) owns rows
// m0 + ty*TM + r and columns n0 + tx + q*(BN/4), q < 4 (strided, so a warp's loads and stores
// touch consecutive n). As packs 4 consecutive m per vec4; Bs packs a thread's 4 columns per vec4.
//
// Bindings: 0 uniform Params, 1 a (read), 2 b (read), 3 out (read_write).
// Launch: WG = (BM / TM) * (BN / 4) threads; one workgroup per (bi, m-tile, n-tile), numbered
//         tile = mt + tilesM * (nt + tilesN * bi), folded into x/y by grid1d (tile = wid.x + wid.y * nwg.x);
//         workgroups past the last tile return at once.
// Constraints (checked on the host): as in conv2d.wgsl.

struct Params {
  M: u32,
  K: u32,
  N: u32,
  aStrideM: u32,
  aStrideK: u32,
  bStrideK: u32,
  bStrideN: u32,
  tilesM: u32,
  tilesN: u32,
  tiles: u32,   // batch * tilesM * tilesN
  bk: u32,      // BK, A_SLOTS and B_SLOTS again, read at run time (see ROLLED)
  aSlots: u32,
  bSlots: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 4u;    // rows per thread (4 or 8); each thread has 4 columns
override WG: u32 = 256u;  // threads = (BM / TM) * (BN / 4)
// ROLLED: the tile loops run to P.bk, P.aSlots and P.bSlots (the values of BK, A_SLOTS and B_SLOTS,
// read at run time), so the shader compiler keeps them rolled. Set on CPU-emulated adapters
// (lavapipe), which take seconds to compile the fully unrolled kernel; a GPU gets the constants.
override ROLLED: bool = false;
// vec4 slots of the A and B tiles each thread loads per step (at most MAX_SLOTS = 4).
override A_SLOTS: u32 = (BK * BM / 4u + WG - 1u) / WG;
override B_SLOTS: u32 = (BK * BN / 4u + WG - 1u) / WG;

const MAX_TM: u32 = 8u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;  // As[k * BM/4 + m/4][m % 4] = A[m0 + m][k0 + k]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;  // Bs[k * BN/4 + t][q] = B[k0 + k][n0 + t + q*BN/4]

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= P.tiles) {
    return;
  }
  let mt = tile % P.tilesM;
  let rest = tile / P.tilesM;
  let nt = rest % P.tilesN;
  let bi = rest / P.tilesN;
  let m0 = mt * BM;
  let n0 = nt * BN;
  let M = P.M;
  let K = P.K;
  let N = P.N;
  let aBase = bi * M * K;
  let bBase = bi * K * N;

  let tx = tid % (BN / 4u);
  let ty = tid / (BN / 4u);
  let ma = tid % (BM / 4u);  // the A-tile vec4 column this thread loads (rows m0 + 4*ma .. +3)
  // Trip counts of the tile loops (see ROLLED).
  let kSteps = select(BK, P.bk, ROLLED);
  let aSlots = select(A_SLOTS, P.aSlots, ROLLED);
  let bSlots = select(B_SLOTS, P.bSlots, ROLLED);

  var acc: array<vec4<f32>, MAX_TM>;
  for (var r = 0u; r < MAX_TM; r++) {
    acc[r] = vec4<f32>(0.0);
  }

  for (var k0 = 0u; k0 < K; k0 += BK) {
    // A tile: slot holds A[m0 + 4*ma .. +3][k0 + row].
    for (var j = 0u; j < aSlots; j++) {
      let row = tid / (BM / 4u) + j * (WG / (BM / 4u));
      if (row < BK) {
        let k = k0 + row;
        var v = vec4<f32>(0.0);
        for (var q = 0u; q < 4u; q++) {
          let m = m0 + ma * 4u + q;
          let ok = m < M && k < K;
          v[q] = select(0.0, a[select(0u, aBase + m * P.aStrideM + k * P.aStrideK, ok)], ok);
        }
        As[row * (BM / 4u) + ma] = v;
      }
    }
    // B tile: slot holds B[k0 + row][n0 + tx + q*BN/4].
    for (var j = 0u; j < bSlots; j++) {
      let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
      if (row < BK) {
        let k = k0 + row;
        var v = vec4<f32>(0.0);
        for (var q = 0u; q < 4u; q++) {
          let n = n0 + tx + q * (BN / 4u);
          let ok = n < N && k < K;
          v[q] = select(0.0, b[select(0u, bBase + k * P.bStrideK + n * P.bStrideN, ok)], ok);
        }
        Bs[row * (BN / 4u) + tx] = v;
      }
    }
    workgroupBarrier();

    for (var kk = 0u; kk < kSteps; kk++) {
      let bv = Bs[kk * (BN / 4u) + tx];
      for (var i = 0u; i < TM / 4u; i++) {
        let av = As[kk * (BM / 4u) + ty * (TM / 4u) + i];
        acc[4u * i + 0u] = fma(vec4<f32>(av.x), bv, acc[4u * i + 0u]);
        acc[4u * i + 1u] = fma(vec4<f32>(av.y), bv, acc[4u * i + 1u]);
        acc[4u * i + 2u] = fma(vec4<f32>(av.z), bv, acc[4u * i + 2u]);
        acc[4u * i + 3u] = fma(vec4<f32>(av.w), bv, acc[4u * i + 3u]);
      }
    }
    workgroupBarrier();
  }

  let outBase = bi * M * N;
  for (var q = 0u; q < 4u; q++) {
    let n = n0 + tx + q * (BN / 4u);
    if (n < N) {
      for (var r = 0u; r < TM; r++) {
        let m = m0 + ty * TM + r;
        if (m < M) {
          out[outBase + m * N + n] = acc[r][q];
        }
      }
    }
  }
}
