// pack_tiles_common: what pack_tiles.wgsl and pack_tiles_vec4.wgsl share
// through the kernel loader's include directive: the parameters, the tile
// height RB and the destination. Each kernel declares its own src (f32 or
// vec4<f32>) at binding 0.
//
//   //! include "pack_tiles_common.wgsl"

struct Params {
  rows: u32,
  k: u32,
  ld: u32,
  transposed: u32,
  kc: u32,
  k_tiles: u32,
  tile_stride: u32,
  block0: u32,
  offset: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

// A power of two, so % and / by it are shifts.
override RB: u32 = 128u;

@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;
