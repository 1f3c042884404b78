// matmul_at_b_update: C ← β·C + α·(Aᵀ·B) [⊙ Mask], the rank-K update that
// GPTQ and SparseGPT spend their time in:
//   - Hessian accumulation        H ← β·H + α·XᵀX      (A = B = X [tokens, in])
//   - Cholesky trailing update    A22 ← A22 − P·Pᵀ     (A = B = Pᵀ, lower tiles only)
//   - triangular-inverse update   B2 ← B2 − L21·X1     (A = L21ᵀ, B = X1)
//   - GPTQ inter-block update     Wᵀ[i2:] ← Wᵀ[i2:] − U12ᵀ·Errᵀ   (optionally × mask)
// Both operands are stored K-major (row l holds the l-th term of every
// output row / column), so one invocation's loads are two contiguous vec4
// pairs per l and its 8×8 outputs need 64 FMAs per 4 loads.
//
// Bindings:
//   0 params  uniform              Params (below)
//   1 a       storage, read        f32 [K rows, lda]: A[l, i] at a_off + l·lda + i
//   2 b       storage, read        f32 [K rows, ldb]: B[l, j] at b_off + l·ldb + j
//   3 c       storage, read_write  f32 C[i, j] at c_off + i·ldc + j
//   4 mask    storage, read        f32 Mask[i, j] at mask_off + i·ldmask + j (read only if use_mask)
// Shapes: i < m, j < n, l < k. m and n must be multiples of 8; lda, ldb,
// ldc, ldmask and the four offsets multiples of 4 (vec4 loads/stores).
// lower_only skips every 8×8 tile lying strictly above the global diagonal
// (row_global0 + i < col_global0 + j for the whole tile): symmetric results.
// Layout: workgroup WG×WG (override, 8 or 16); invocation (x, y) owns the
// 8×8 output tile at rows 8·gid.y, columns 8·gid.x; dispatch
// [ceil(n/(8·WG)), ceil(m/(8·WG))]. No workgroup memory: on llvmpipe it
// measured 5× slower than register tiles with vec4 loads.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  lda: u32,
  ldb: u32,
  ldc: u32,
  a_off: u32,
  b_off: u32,
  c_off: u32,
  lower_only: u32,
  row_global0: u32,
  col_global0: u32,
  use_mask: u32,
  mask_off: u32,
  ldmask: u32,
  _pad: u32,
  beta: f32,
  alpha: f32,
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<vec4<f32>>;

// Invocations per workgroup side: 16 for short sums (K ≤ a few hundred:
// fewer, larger workgroups halve llvmpipe's per-workgroup cost), 8 for long
// ones (a workgroup's A and B columns stay in cache).
override WG: u32 = 16u;

@compute @workgroup_size(WG, WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j0 = gid.x * 8u;
  let i0 = gid.y * 8u;
  if (i0 >= p.m || j0 >= p.n) {
    return;
  }
  if (p.lower_only != 0u && p.col_global0 + j0 > p.row_global0 + i0) {
    return;
  }
  var acc: array<vec4<f32>, 16>;
  var ai = (p.a_off + i0) / 4u;
  var bj = (p.b_off + j0) / 4u;
  let astep = p.lda / 4u;
  let bstep = p.ldb / 4u;
  for (var l = 0u; l < p.k; l++) {
    let a0 = a[ai];
    let a1 = a[ai + 1u];
    let b0 = b[bj];
    let b1 = b[bj + 1u];
    acc[0] += a0.x * b0;
    acc[1] += a0.x * b1;
    acc[2] += a0.y * b0;
    acc[3] += a0.y * b1;
    acc[4] += a0.z * b0;
    acc[5] += a0.z * b1;
    acc[6] += a0.w * b0;
    acc[7] += a0.w * b1;
    acc[8] += a1.x * b0;
    acc[9] += a1.x * b1;
    acc[10] += a1.y * b0;
    acc[11] += a1.y * b1;
    acc[12] += a1.z * b0;
    acc[13] += a1.z * b1;
    acc[14] += a1.w * b0;
    acc[15] += a1.w * b1;
    ai += astep;
    bj += bstep;
  }
  for (var r = 0u; r < 8u; r++) {
    let o = (p.c_off + (i0 + r) * p.ldc + j0) / 4u;
    var u0 = p.alpha * acc[2u * r];
    var u1 = p.alpha * acc[2u * r + 1u];
    if (p.use_mask != 0u) {
      let mo = (p.mask_off + (i0 + r) * p.ldmask + j0) / 4u;
      u0 *= mask[mo];
      u1 *= mask[mo + 1u];
    }
    c[o] = p.beta * c[o] + u0;
    c[o + 1u] = p.beta * c[o + 1u] + u1;
  }
}
