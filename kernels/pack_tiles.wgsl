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
// Bindings (group 0; Params, RB, dst and p come from pack_tiles_common.wgsl):
//   0  src  storage read        f32
//   1  dst  storage read_write  vec4<f32>[blocks · k_tiles · tile_stride / 4]
//   2  p    uniform             Params
//
// Workgroup layout: 64 invocations in x, each writes one vec4 of the
// destination (four rows of one term; padding between tiles is left alone);
// dispatch [ceil(RB · kc / 4 / 64), k_tiles, blocks] for blocks block0 ..
// (in pieces of at most maxComputeWorkgroupsPerDimension). Why vec4 stores and
// the tile from the workgroup id: llvmpipe turns every storage access into a
// loop over the SIMD lanes (one loop per load or store, all components in
// it), and divides lane by lane; one store loop per four floats and no
// division by a runtime value cut the pack's cost (1024² packed, CPU time:
// about 22 ms with one load and one store loop per float and a division by
// k_tiles, about 16.5 ms this way, about 12 ms with pack_tiles_vec4.wgsl).

//! include "pack_tiles_common.wgsl"

@group(0) @binding(0) var<storage, read> src: array<f32>;

// S(r, l), or 0 outside the matrix.
fn element(r: u32, l: u32) -> f32 {
  if (r >= p.rows || l >= p.k) {
    return 0.0;
  }
  if (p.transposed == 0u) {
    return src[p.offset + r * p.ld + l];
  }
  return src[p.offset + l * p.ld + r];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>) {
  // Quad q of the tile: rows 4·(q mod RB/4) .. +3 of its term q / (RB/4).
  let q = gid.x;
  if (q >= RB / 4u * p.kc) {
    return;
  }
  let block = p.block0 + wid.z;
  let kt = wid.y;
  let r = block * RB + (q % (RB / 4u)) * 4u;
  let l = kt * p.kc + q / (RB / 4u);
  let t = block * p.k_tiles + kt;
  dst[t * (p.tile_stride / 4u) + q] = vec4(
    element(r, l),
    element(r + 1u, l),
    element(r + 2u, l),
    element(r + 3u, l),
  );
}
