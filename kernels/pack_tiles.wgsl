// pack_tiles: copies a matrix into the tile layout that the uniform-window
// matmul (src/gpu/matmul_uniform.ts) reads through uniform-buffer bindings.
//
// The source is a logical matrix S [rows, k]: element (r, l) lies at
//   src[offset + r·ld + l]   (transposed = 0: a row-major x or w)
//   src[offset + l·ld + r]   (transposed = 1: S is the transpose of a row-major
//                                      [k, rows] matrix, e.g. X for XᵀX)
// (offset: the first element, e.g. a chunk of X's tokens)
// The destination holds tiles of RB rows × kc terms; tile t = block·k_tiles + kt
// covers rows block·RB .. +RB and terms kt·kc .. +kc, starts at t·tile_stride
// and is stored term-major: S(r, l) at t·tile_stride + (l mod kc)·RB + (r mod RB).
// So one term's RB values are contiguous and the matmul reads four rows per
// vec4 load. Rows past `rows` and terms past `k` are written as zeros: the
// matmul needs no bounds checks in its inner loop.
//
// Bindings (group 0):
//   0  src  storage read        f32
//   1  dst  storage read_write  f32[blocks · k_tiles · tile_stride]
//   2  p    uniform             Params
//
// Workgroup layout: 256 invocations in x, one destination float each
// (padding between tiles is left alone); dispatch [ceil(RB · kc / 256), tiles]
// for tiles t0 .. (in pieces of at most maxComputeWorkgroupsPerDimension).
// RB is an override constant (a power of two) and the tile comes from the
// workgroup id, so no invocation divides by a runtime value: llvmpipe
// divides lane by lane (1024² packed: 37.7 -> 31.9 ms CPU with the division-free form).

struct Params {
  rows: u32,
  k: u32,
  ld: u32,
  transposed: u32,
  kc: u32,
  k_tiles: u32,
  tile_stride: u32,
  t0: u32,
  offset: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override RB: u32 = 128u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.x;
  if (e >= RB * p.kc) {
    return;
  }
  let t = p.t0 + wid.y;
  let r = (t / p.k_tiles) * RB + e % RB;
  let l = (t % p.k_tiles) * p.kc + e / RB;
  var v = 0.0;
  if (r < p.rows && l < p.k) {
    if (p.transposed == 0u) {
      v = src[p.offset + r * p.ld + l];
    } else {
      v = src[p.offset + l * p.ld + r];
    }
  }
  dst[t * p.tile_stride + e] = v;
}
