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
// then each thread accumulates a TM x TN block in registers. Thread (ty, tx) owns rows
// m0 + ty*TM + r and columns n0 + tx + j*(BN/TN), j < TN (strided, so a warp's loads and stores
// touch consecutive n). As packs 4 consecutive m per vec4; Bs packs 4 of a thread's columns per vec4
// (slot h*(BN/TN) + tx: columns tx + (4h + q)*(BN/TN), see bCol).
//
// Bindings: 0 uniform Params, 1 a (read), 2 b (read), 3 out (read_write).
// Launch: WG = (BM / TM) * (BN / TN) threads; one workgroup per (bi, m-tile, n-tile), numbered
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
override TM: u32 = 4u;    // rows per thread (4 or 8)
override TN: u32 = 4u;    // columns per thread (4 or 8)
override WG: u32 = 256u;  // threads = (BM / TM) * (BN / TN)
// ROLLED: the tile loops run to P.bk, P.aSlots and P.bSlots (the values of BK, A_SLOTS and B_SLOTS,
// read at run time), so the shader compiler keeps them rolled. Set on CPU-emulated adapters
// (lavapipe), which take seconds to compile the fully unrolled kernel; a GPU gets the constants.
override ROLLED: bool = false;
// vec4 slots of the A and B tiles each thread loads per step (at most MAX_SLOTS = 4).
override A_SLOTS: u32 = (BK * BM / 4u + WG - 1u) / WG;
override B_SLOTS: u32 = (BK * BN / 4u + WG - 1u) / WG;

const MAX_TM: u32 = 8u;
const MAX_TN: u32 = 8u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;  // As[k * BM/4 + m/4][m % 4] = A[m0 + m][k0 + k]
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;  // Bs[k * BN/4 + s][q] = B[k0 + k][n0 + bCol(s, q)]

// The column (from n0) of component q of B-tile slot s: slot h*(BN/TN) + t holds the columns t + (4h + q)*(BN/TN)
// of the thread with tx = t (for TN = 4, the columns s + q*BN/4).
fn bCol(s: u32, q: u32) -> u32 {
  return s % (BN / TN) + (4u * (s / (BN / TN)) + q) * (BN / TN);
}

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

  let tx = tid % (BN / TN);  // this thread's columns: n0 + tx + j * BN/TN
  let ty = tid / (BN / TN);  // this thread's rows:    m0 + ty * TM + r
  let ma = tid % (BM / 4u);  // the A-tile vec4 column this thread loads (rows m0 + 4*ma .. +3)
  let bs = tid % (BN / 4u);  // the B-tile vec4 slot this thread loads (columns n0 + bCol(bs, q))
  // Trip counts of the tile loops (see ROLLED).
  let kSteps = select(BK, P.bk, ROLLED);
  let aSlots = select(A_SLOTS, P.aSlots, ROLLED);
  let bSlots = select(B_SLOTS, P.bSlots, ROLLED);

  // acc[h * MAX_TM + r][q] = C[row m0 + ty*TM + r][column n0 + tx + (4h + q)*(BN/TN)].
  var acc: array<vec4<f32>, MAX_TM * MAX_TN / 4u>;
  for (var r = 0u; r < MAX_TM * MAX_TN / 4u; r++) {
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
    // B tile: slot holds B[k0 + row][n0 + bCol(bs, q)].
    for (var j = 0u; j < bSlots; j++) {
      let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
      if (row < BK) {
        let k = k0 + row;
        var v = vec4<f32>(0.0);
        for (var q = 0u; q < 4u; q++) {
          let n = n0 + bCol(bs, q);
          let ok = n < N && k < K;
          v[q] = select(0.0, b[select(0u, bBase + k * P.bStrideK + n * P.bStrideN, ok)], ok);
        }
        Bs[row * (BN / 4u) + bs] = v;
      }
    }
    workgroupBarrier();

    for (var kk = 0u; kk < kSteps; kk++) {
      var bv: array<vec4<f32>, MAX_TN / 4u>;
      for (var h = 0u; h < TN / 4u; h++) {
        bv[h] = Bs[kk * (BN / 4u) + h * (BN / TN) + tx];
      }
      for (var i = 0u; i < TM / 4u; i++) {
        let av = As[kk * (BM / 4u) + ty * (TM / 4u) + i];
        for (var h = 0u; h < TN / 4u; h++) {
          let r = h * MAX_TM + 4u * i;
          acc[r + 0u] = fma(vec4<f32>(av.x), bv[h], acc[r + 0u]);
          acc[r + 1u] = fma(vec4<f32>(av.y), bv[h], acc[r + 1u]);
          acc[r + 2u] = fma(vec4<f32>(av.z), bv[h], acc[r + 2u]);
          acc[r + 3u] = fma(vec4<f32>(av.w), bv[h], acc[r + 3u]);
        }
      }
    }
    workgroupBarrier();
  }

  let outBase = bi * M * N;
  for (var col = 0u; col < TN; col++) {
    let n = n0 + tx + col * (BN / TN);
    if (n < N) {
      for (var r = 0u; r < TM; r++) {
        let m = m0 + ty * TM + r;
        if (m < M) {
          out[outBase + m * N + n] = acc[(col / 4u) * MAX_TM + r][col % 4u];
        }
      }
    }
  }
}
