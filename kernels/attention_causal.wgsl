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
//   0 q       storage, read        f32 [sequences * seq_len, heads * head_dim]
//   1 k       storage, read        f32 [sequences * seq_len, kv_heads * head_dim]
//   2 v       storage, read        f32 [sequences * seq_len, kv_heads * head_dim]
//   3 out     storage, read_write  f32 [sequences * seq_len, heads * head_dim]
//   4 params  uniform  { seq_len, heads, kv_heads, head_dim, window, scale, sequences }
// Override constants (ModelOps.attention / attentionTiling choose them):
//   HEAD_DIM        (<= 256) equals params.head_dim; fixes every head loop's trip count
//   QUERIES, GROUP  each invocation owns QUERIES consecutive positions t0 .. t0 +
//                   QUERIES - 1 of GROUP query heads h0 .. h0 + GROUP - 1 that share
//                   one KV head: QUERIES * GROUP "states" (<= MAX_STATES), whose q
//                   rows and accumulators fill QUERIES * GROUP * HEAD_DIM / 4 <= 64
//                   vec4s; each K/V row it loads serves all of them
//   HEADS_IN_LANES  false: invocation (x * 64 + lane) takes positions t0 = that *
//                   QUERIES, grid (ceil(seq_len / (64 * QUERIES)), heads / GROUP,
//                   sequences); true: it takes the (sequence, head group)
//                   b * heads / GROUP + hg = x * 64 + lane at t0 = block(y) * QUERIES,
//                   grid (ceil(sequences * heads / GROUP / 64), ceil(seq_len / QUERIES), 1),
//                   block(y) = y / 2 for even y, last - (y - 1) / 2 for odd y
// Per invocation: the q rows (pre-multiplied by scale) and output accumulators
// stay in registers; each visible key j is loaded once and updates every state
// with an online softmax: running max m and sum l, and with e = exp(-|s - m|)
// a single exp per key: a new max rescales by f = e and adds p = 1, otherwise
// f = 1 and p = e (acc = acc * f + p * v, l = l * f + p, m = max(m, s)).
//
// Why no workgroup memory: on llvmpipe (256-bit SIMD, 2 cores) the barriers
// of a shared-memory K/V tile serialize the SIMD lanes; the barrier-free form
// measured 4-10x faster there (T = 256, 8 heads of 8: 6 ms vs 69 ms; 12 heads
// of 64: 42 ms vs 204 ms). On real GPUs ModelOps keeps QUERIES = GROUP = 1 and
// HEADS_IN_LANES = false: neighbouring lanes are neighbouring queries reading
// the same key, so K/V rows stay in cache.
// Why several states per invocation on llvmpipe: there every storage load is a
// loop over the 8 SIMD lanes (a vec4 costs about a scalar), so K/V loads, not
// arithmetic, bounded the one-query-per-invocation form; sharing each load
// among QUERIES * GROUP states cuts them by that factor. The state arrays are
// indexed by loop counters, so this only pays when Mesa's NIR fully unrolls
// those loops (at most 32 iterations and a size budget): keeping QUERIES *
// GROUP * HEAD_DIM / 4 <= 32 did for every head size tried (4 to 256); at 64
// some stayed loops and the states went to memory (head_dim 16: 5.7x slower,
// 32: 2.8x, 64: 1.2x; only 128 gained). The single-exp update without branches measured faster than a
// lazy rescale under `if`, which llvmpipe runs masked for every key anyway.
// HEADS_IN_LANES keeps the 8 SIMD lanes of llvmpipe on the same positions, so
// they loop over the same keys (lanes along t loop until the last lane's t);
// its position blocks are dealt from both ends of the sequence because
// llvmpipe hands each thread one contiguous run of workgroups (the first half
// of the grid to one core, the second to the other): in order, one core got
// 3/4 of the causal triangle (16 x 256, 8 heads of 8: 6.6 -> 5.4 ms).
// Measured on llvmpipe, ms per call, wall / CPU summed over both cores; before:
// one query per invocation, chunks of 4 keys, rescale under `if`:
//   16 seqs x 256, 8 heads of 8, 4 KV heads  18.7-19.1 / 33  ->  5.4-5.5 / 6.2
//     (QUERIES 8, GROUP 2, heads in lanes; lanes along t: 9 CPU ms)
//   1 seq x 256, 12 heads of 64 (MHA)        20.8-21.4 / 37-38  ->  10.4 / 16.5
//     (QUERIES 2, lanes along t; heads in lanes: 18-19 CPU ms)
//   4 seqs x 256, 6 heads of 48 (MHA)        30 / 55  ->  15 / 26
//   1 seq x 256, 8 heads of 128, 2 KV heads  27 / 49  ->  22 / 39-40
//   1 seq x 128, 4 heads of 256, 2 KV heads  9.7 / 14.8  ->  8.6 / 12.6

struct Params {
  seq_len: u32,
  heads: u32,
  kv_heads: u32,
  head_dim: u32,
  window: u32,
  scale: f32,
  sequences: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;

override HEAD_DIM: u32 = 64u;
override QUERIES: u32 = 1u;
override GROUP: u32 = 1u;
override HEADS_IN_LANES: bool = false;
const MAX_STATE_VEC4: u32 = 64u; // QUERIES * GROUP * HEAD_DIM / 4
const MAX_STATES: u32 = 16u; // QUERIES * GROUP
// Stands in for -inf, which WGSL cannot spell; exp(NEG_BIG - finite) is 0.
const NEG_BIG: f32 = -3.0e38;

fn first_key(t: u32) -> u32 {
  if (t + 1u > params.window) {
    return t + 1u - params.window;
  }
  return 0u;
}

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let seq_len = params.seq_len;
  let head_groups = params.heads / GROUP;
  var t0: u32;
  var hg: u32;
  var b: u32;
  if (HEADS_IN_LANES) {
    let lane = wid.x * 64u + lid;
    if (lane >= head_groups * params.sequences) {
      return;
    }
    b = lane / head_groups;
    hg = lane % head_groups;
    // Workgroups 2i and 2i + 1 take position blocks i and last - i, so every
    // run of consecutive workgroups holds a fair share of the causal triangle
    // (llvmpipe gives each of its threads one contiguous run of workgroups).
    let block = select(nwg.y - 1u - wid.y / 2u, wid.y / 2u, wid.y % 2u == 0u);
    t0 = block * QUERIES;
  } else {
    t0 = (wid.x * 64u + lid) * QUERIES;
    hg = wid.y;
    b = wid.z;
  }
  if (t0 >= seq_len) {
    return;
  }
  let nv = HEAD_DIM / 4u;
  let states = QUERIES * GROUP;
  let h0 = hg * GROUP;
  let g = h0 / (params.heads / params.kv_heads);
  let kv_stride = params.kv_heads * nv;
  let kv_base = b * seq_len * kv_stride + g * nv;
  // Positions past the end are computed on a clamped q row and never written.
  let t_last = min(t0 + QUERIES - 1u, seq_len - 1u);

  // State s = r * GROUP + gi is position t0 + r of head h0 + gi.
  var q_scaled: array<vec4<f32>, MAX_STATE_VEC4>;
  var acc: array<vec4<f32>, MAX_STATE_VEC4>;
  var m: array<f32, MAX_STATES>;
  var l: array<f32, MAX_STATES>;
  for (var r = 0u; r < QUERIES; r++) {
    let t = min(t0 + r, seq_len - 1u);
    for (var gi = 0u; gi < GROUP; gi++) {
      let s = r * GROUP + gi;
      let q_base = ((b * seq_len + t) * params.heads + h0 + gi) * nv;
      for (var d = 0u; d < nv; d++) {
        q_scaled[s * nv + d] = q[q_base + d] * params.scale;
        acc[s * nv + d] = vec4<f32>(0.0);
      }
      m[s] = NEG_BIG;
      l[s] = 0.0;
    }
  }

  for (var j = first_key(t0); j <= t_last; j++) {
    let row = kv_base + j * kv_stride;
    var dot4: array<vec4<f32>, MAX_STATES>;
    for (var s = 0u; s < states; s++) {
      dot4[s] = vec4<f32>(0.0);
    }
    for (var d = 0u; d < nv; d++) {
      let kd = k[row + d];
      for (var s = 0u; s < states; s++) {
        dot4[s] += q_scaled[s * nv + d] * kd;
      }
    }
    // Per state: the rescale factor f of what came before and the weight p of key j.
    var f: array<f32, MAX_STATES>;
    var p: array<f32, MAX_STATES>;
    for (var r = 0u; r < QUERIES; r++) {
      let t = t0 + r;
      let visible = j <= t && j >= first_key(t);
      for (var gi = 0u; gi < GROUP; gi++) {
        let s = r * GROUP + gi;
        // A hidden key scores m: f = 1, and p is masked to 0.
        let score = select(m[s], dot4[s].x + dot4[s].y + dot4[s].z + dot4[s].w, visible);
        let e = exp(-abs(score - m[s]));
        let raised = score > m[s];
        f[s] = select(1.0, e, raised);
        p[s] = select(0.0, select(e, 1.0, raised), visible);
        m[s] = max(m[s], score);
        l[s] = l[s] * f[s] + p[s];
      }
    }
    for (var d = 0u; d < nv; d++) {
      let vd = v[row + d];
      for (var s = 0u; s < states; s++) {
        acc[s * nv + d] = acc[s * nv + d] * f[s] + p[s] * vd;
      }
    }
  }

  for (var r = 0u; r < QUERIES; r++) {
    let t = t0 + r;
    if (t < seq_len) {
      for (var gi = 0u; gi < GROUP; gi++) {
        let s = r * GROUP + gi;
        let q_base = ((b * seq_len + t) * params.heads + h0 + gi) * nv;
        for (var d = 0u; d < nv; d++) {
          out[q_base + d] = acc[s * nv + d] / l[s];
        }
      }
    }
  }
}
