// pack_tiles_vec4: kernels/pack_tiles.wgsl for a source whose rows start on
// 16-byte boundaries (ld and offset multiples of 4, kc a multiple of 4):
// the same tiles, read and written four floats at a time. Each invocation
// copies a 4 × 4 block, rows 4·(q mod RB/4) .. +3 and terms 4·(q div RB/4)
// .. +3 of its tile: four vec4 loads (along l for a row-major source, along r
// for a transposed one) and four vec4 stores. Why: llvmpipe turns each
// storage access into one loop over the SIMD lanes, so four floats per
// access cost far less than one.
//
// Bindings, Params and the dispatch are those of pack_tiles.wgsl, except that
// src is read as vec4<f32> and x counts blocks of 4 × 4:
// dispatch [ceil(RB · kc / 16 / 64), k_tiles, blocks].

//! include "pack_tiles_common.wgsl"

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;

// src[at .. at + 3] (at a multiple of 4) with component i zeroed where !keep[i].
fn load4(at: u32, keep: vec4<bool>) -> vec4<f32> {
  if (!any(keep)) {
    return vec4<f32>();
  }
  return select(vec4<f32>(), src[at / 4u], keep);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>) {
  let q = gid.x;
  if (q >= RB / 16u * p.kc) {
    return;
  }
  let block = p.block0 + wid.z;
  let kt = wid.y;
  let rq = q % (RB / 4u);
  let lq = q / (RB / 4u);
  let r = block * RB + rq * 4u;
  let l = kt * p.kc + lq * 4u;
  let four = vec4(0u, 1u, 2u, 3u);
  let rows_in = vec4(r) + four < vec4(p.rows);
  let terms_in = vec4(l) + four < vec4(p.k);
  // quad j = S(r .. r + 3, l + j)
  var quad: array<vec4<f32>, 4>;
  if (p.transposed == 1u) {
    for (var j = 0u; j < 4u; j++) {
      quad[j] = load4(p.offset + (l + j) * p.ld + r, rows_in & vec4(terms_in[j]));
    }
  } else {
    var row: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
      row[i] = load4(p.offset + (r + i) * p.ld + l, terms_in & vec4(rows_in[i]));
    }
    for (var j = 0u; j < 4u; j++) {
      quad[j] = vec4(row[0][j], row[1][j], row[2][j], row[3][j]);
    }
  }
  let base = (block * p.k_tiles + kt) * (p.tile_stride / 4u) + lq * RB + rq;
  for (var j = 0u; j < 4u; j++) {
    dst[base + j * (RB / 4u)] = quad[j];
  }
}
