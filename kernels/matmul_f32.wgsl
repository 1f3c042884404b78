// matmul_f32: y[m, col0 + n] = sum_k x[m, k] * w[n, k] (+ bias[col0 + n])
//
// The Linear layout: x [M, K] and w [N, K] are both K-contiguous, so every
// invocation streams rows of both along K. col0 / ldy let a weight split
// into row chunks (ChunkedWeight) write its own columns of a wider y.
//
// Bindings (group 0):
//   0  x     storage read        main: vec4<f32>[M * K/4]   main_unaligned: f32[M * K]
//   1  w     storage read        main: vec4<f32>[N * K/4]   main_unaligned: f32[N * K]
//   2  y     storage read_write  f32[M * ldy]
//   3  bias  storage read        f32[>= col0 + N] (a dummy when has_bias = 0)
//   4  p     uniform             { M, N, K, ldy, col0, has_bias }
//
// Workgroup layout: WG_X x WG_Y invocations (override constants); each
// invocation computes an 8 x 8 block of y: 8 rows of x against 8 rows of w,
// 64 f32 accumulators. Dispatch [ceil(N / (8 WG_X)), ceil(M / (8 WG_Y))].
// Rows past M or N are clamped for loading (no branch in the K loop) and
// skipped for storing. "main" needs K % 4 == 0 and loads vec4 along K;
// "main_unaligned" takes any K with scalar loads.
//
// Why no workgroup memory: each invocation already reuses every x load 8
// times and every w load 8 times from registers. On llvmpipe (2 cores, 256-bit
// SIMD) this register-blocked form measured ~24 GFLOP/s at 1024^3 while a
// shared-memory tiled kernel was ~5x slower (barriers serialize the SIMD lanes).
// Workgroup shapes (WG_X x WG_Y) measured at M = N = K = 1024 on llvmpipe,
// 2 cores, with `bench/matmul_bench.ts --shapes`, GFLOP/s: 8x8 24.3,
// 16x16 24.4, 8x4 24.2, 16x4 23.7, 32x2 23.1, 4x16 19.6, 4x4 19.3. Shapes
// wide in x (more w rows per workgroup) win; 8x8 ties the best and keeps to
// 64 invocations, well inside every device's limits. 4096^3: 26.2 GFLOP/s.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  ldy: u32,
  col0: u32,
  has_bias: u32,
}

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
const TM: u32 = 8u;
const TN: u32 = 8u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> xs: array<f32>;
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn store(m0: u32, n0: u32, acc: ptr<function, array<f32, 64>>) {
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) {
      break;
    }
    for (var j = 0u; j < TN; j++) {
      let n = n0 + j;
      if (n >= p.N) {
        break;
      }
      var v = (*acc)[i * TN + j];
      if (p.has_bias != 0u) {
        v += bias[p.col0 + n];
      }
      y[m * p.ldy + p.col0 + n] = v;
    }
  }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (n0 >= p.N || m0 >= p.M) {
    return;
  }
  let k4 = p.K / 4u;
  var xrow: array<u32, TM>;
  var wrow: array<u32, TN>;
  for (var i = 0u; i < TM; i++) {
    xrow[i] = min(m0 + i, p.M - 1u) * k4;
  }
  for (var j = 0u; j < TN; j++) {
    wrow[j] = min(n0 + j, p.N - 1u) * k4;
  }
  var acc: array<f32, 64>;
  for (var k = 0u; k < k4; k++) {
    var xv: array<vec4<f32>, TM>;
    var wv: array<vec4<f32>, TN>;
    for (var i = 0u; i < TM; i++) {
      xv[i] = x[xrow[i] + k];
    }
    for (var j = 0u; j < TN; j++) {
      wv[j] = w[wrow[j] + k];
    }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        acc[i * TN + j] += dot(xv[i], wv[j]);
      }
    }
  }
  store(m0, n0, &acc);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main_unaligned(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (n0 >= p.N || m0 >= p.M) {
    return;
  }
  var xrow: array<u32, TM>;
  var wrow: array<u32, TN>;
  for (var i = 0u; i < TM; i++) {
    xrow[i] = min(m0 + i, p.M - 1u) * p.K;
  }
  for (var j = 0u; j < TN; j++) {
    wrow[j] = min(n0 + j, p.N - 1u) * p.K;
  }
  var acc: array<f32, 64>;
  for (var k = 0u; k < p.K; k++) {
    var xv: array<f32, TM>;
    var wv: array<f32, TN>;
    for (var i = 0u; i < TM; i++) {
      xv[i] = xs[xrow[i] + k];
    }
    for (var j = 0u; j < TN; j++) {
      wv[j] = ws[wrow[j] + k];
    }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        acc[i * TN + j] = fma(xv[i], wv[j], acc[i * TN + j]);
      }
    }
  }
  store(m0, n0, &acc);
}
