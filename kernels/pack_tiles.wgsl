// pack_tiles: copies a matrix into the tile layout that the uniform-window
// matmul (src/gpu/matmul_uniform.ts) reads through uniform-buffer bindings.
//
// The source is a logical matrix S [rows, k]: element (r, l) lies at
//   src[src_off + r·ld + l]   (transposed = 0: a row-major x or w)
//   src[src_off + l·ld + r]   (transposed = 1: S is the transpose of a row-major
//                              [k, rows] matrix, e.g. X for XᵀX)
// The destination holds tiles of rb rows × kc terms; tile t = block·k_tiles + kt
// covers rows block·rb .. +rb and terms kt·kc .. +kc, starts at t·tile_stride
// and is stored term-major: S(r, l) at t·tile_stride + (l mod kc)·rb + (r mod rb).
// So one term's rb values are contiguous and the matmul reads four rows per
// vec4 load. Rows past `rows` and terms past `k` are written as zeros: the
// matmul needs no bounds checks in its inner loop.
//
// Bindings (group 0):
//   0  src  storage read        f32
//   1  dst  storage read_write  f32[blocks · k_tiles · tile_stride]
//   2  p    uniform             Params
//
// Workgroup layout: 256 invocations in x, one destination float each
// (padding between tiles is left alone); a 1-D count folded into 2-D by the
// host (linear index wid.x + wid.y · nwg.x).

struct Params {
  rows: u32,
  k: u32,
  ld: u32,
  transposed: u32,
  rb: u32,
  kc: u32,
  k_tiles: u32,
  tile_stride: u32,
  src_off: u32,
  total: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (g >= p.total) {
    return;
  }
  let tile_floats = p.rb * p.kc;
  let t = g / tile_floats;
  let e = g % tile_floats;
  let r = (t / p.k_tiles) * p.rb + e % p.rb;
  let l = (t % p.k_tiles) * p.kc + e / p.rb;
  var v = 0.0;
  if (r < p.rows && l < p.k) {
    if (p.transposed == 0u) {
      v = src[p.src_off + r * p.ld + l];
    } else {
      v = src[p.src_off + l * p.ld + r];
    }
  }
  dst[t * p.tile_stride + e] = v;
}
