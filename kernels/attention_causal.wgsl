// attention_causal: causal (optionally sliding-window) grouped-query attention
// with a numerically stable softmax in f32:
//   out[b, t, h, :] = sum_j softmax_j(scale * q[b, t, h, :] . k[b, j, g, :]) * v[b, j, g, :]
// over the visible keys first(t) <= j <= t, where g = h / (heads / kv_heads) is
// the KV head shared by h's group and first(t) = max(0, t + 1 - window): a
// query sees at most `window` keys including itself (transformers' sliding
// window mask, kv_idx > q_idx - sliding_window). window = 0xffffffff means
// plain causal attention. Q and K arrive already rotated (RoPE).
//
// Bindings (rows are tokens b * seq_len + t; heads are contiguous in a row;
// every row is read as vec4s, so head_dim must be a multiple of 4):
//   0 q       storage, read        f32 [batch * seq_len, heads * head_dim]
//   1 k       storage, read        f32 [batch * seq_len, kv_heads * head_dim]
//   2 v       storage, read        f32 [batch * seq_len, kv_heads * head_dim]
//   3 out     storage, read_write  f32 [batch * seq_len, heads * head_dim]
//   4 params  uniform              { seq_len, heads, kv_heads, head_dim, window, scale }
// Override constant: HEAD_DIM (<= 256) must equal params.head_dim; as a
// pipeline constant it fixes the trip count of every head-dimension loop.
// Layout: one invocation per query (t, h, b), 64 per workgroup along t: grid
// (ceil(seq_len / 64), heads, batch). Each invocation keeps its q row and
// output accumulator in registers and walks its visible keys in chunks of 4
// with an online softmax: a running max m and sum l, the accumulator
// rescaled by exp(m_old - m_new) when a chunk raises the max.
//
// Why no workgroup memory: on llvmpipe (256-bit SIMD, 2 cores) the barriers
// of a shared-memory K/V tile serialize the SIMD lanes; this barrier-free
// form measured 4-10x faster there (T = 256, 8 heads of 8: 6 ms vs 69 ms;
// 12 heads of 64: 42 ms vs 204 ms). Neighbouring lanes are neighbouring
// queries reading the same key, so K/V rows stay in cache.

struct Params {
  seq_len: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  window: u32,
  scale: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;

override HEAD_DIM: u32 = 64u;
const MAX_HEAD_VEC4: u32 = 64u; // head_dim <= 256
const CHUNK: u32 = 4u;
// Stands in for -inf, which WGSL cannot spell; exp(NEG_BIG - finite) is 0.
const NEG_BIG: f32 = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  let h = gid.y;
  let b = gid.z;
  let seq_len = params.seq_len;
  if (t >= seq_len) {
    return;
  }
  let nv = HEAD_DIM / 4u;
  let g = h / (params.heads / params.kv_heads);
  let q_base = ((b * seq_len + t) * params.heads + h) * nv;
  let kv_stride = params.kv_heads * nv;
  let kv_base = b * seq_len * kv_stride + g * nv;
  var first = 0u;
  if (t + 1u > params.window) {
    first = t + 1u - params.window;
  }

  var q_row: array<vec4<f32>, MAX_HEAD_VEC4>;
  var acc: array<vec4<f32>, MAX_HEAD_VEC4>;
  for (var d = 0u; d < nv; d++) {
    q_row[d] = q[q_base + d];
  }
  var m = NEG_BIG;
  var l = 0.0;
  for (var j0 = first; j0 <= t; j0 += CHUNK) {
    // Scores of keys j0 .. j0 + CHUNK - 1 (those past t are masked).
    var s: array<f32, CHUNK>;
    var chunk_max = NEG_BIG;
    for (var c = 0u; c < CHUNK; c++) {
      let j = j0 + c;
      var score = NEG_BIG;
      if (j <= t) {
        let k_row = kv_base + j * kv_stride;
        var dot4 = vec4<f32>(0.0);
        for (var d = 0u; d < nv; d++) {
          dot4 += q_row[d] * k[k_row + d];
        }
        score = (dot4.x + dot4.y + dot4.z + dot4.w) * params.scale;
      }
      s[c] = score;
      chunk_max = max(chunk_max, score);
    }

    let m_new = max(m, chunk_max);
    let rescale = exp(m - m_new);
    l *= rescale;
    for (var d = 0u; d < nv; d++) {
      acc[d] *= rescale;
    }
    for (var c = 0u; c < CHUNK; c++) {
      let j = j0 + c;
      if (j <= t) {
        let p = exp(s[c] - m_new);
        l += p;
        let v_row = kv_base + j * kv_stride;
        for (var d = 0u; d < nv; d++) {
          acc[d] += p * v[v_row + d];
        }
      }
    }
    m = m_new;
  }

  for (var d = 0u; d < nv; d++) {
    out[q_base + d] = acc[d] / l;
  }
}
