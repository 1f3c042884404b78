// transpose: y[c, r] = x[r, c], bit for bit (any 4-byte dtype)
//
// Bindings (group 0):
//   0  x  storage read        u32[R * C], row-major [R, C]
//   1  y  storage read_write  u32[C * R], row-major [C, R]
//   2  p  uniform             { R, C }
//
// Workgroup layout: 16 x 16 invocations per 16 x 16 tile; dispatch
// [ceil(C / 16), ceil(R / 16)]. The tile goes through workgroup memory so
// that both the reads of x and the writes of y are row-contiguous; the +1
// column of padding keeps the column reads free of bank conflicts.

struct Params {
  R: u32,
  C: u32,
}

const T: u32 = 16u;

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> tile: array<array<u32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let r = wid.y * T + lid.y;
  let c = wid.x * T + lid.x;
  if (r < p.R && c < p.C) {
    tile[lid.y][lid.x] = x[r * p.C + c];
  }
  workgroupBarrier();
  // Swap roles: this invocation now writes row c' = wid.x*T + lid.y of y.
  let yr = wid.x * T + lid.y;
  let yc = wid.y * T + lid.x;
  if (yr < p.C && yc < p.R) {
    y[yr * p.R + yc] = tile[lid.x][lid.y];
  }
}
