/**
 * Each model kernel against its CPU reference (src/model/reference_ops.ts),
 * on seeded random data with the awkward sizes: head_dim 256 and 8, several
 * 64-query workgroups, GQA and MHA, a sliding window, rows beyond one
 * workgroup. Every variant runs whichever the device would pick: both
 * rmsnorm layouts, the software and hardware attention tilings and others,
 * the vec4 and scalar entry points of rope and silu_mul.
 */

import { getGpu } from "../../../src/gpu/device.ts";
import { CommandBatch } from "../../../src/gpu/batch.ts";
import { GpuTensor } from "../../../src/gpu/tensor.ts";
import { EngineError } from "../../../src/engine/engine_error.ts";
import {
  type AttentionShape,
  type AttentionTiling,
  attentionTiling,
  ModelOps,
  type RmsnormLayout,
} from "../../../src/engine/webgpu/model_ops.ts";
import * as ref from "../../../src/model/reference_ops.ts";
import { ropeTable } from "../../../src/model/rope.ts";
import { seededRandom } from "../../../src/model/seeded_random.ts";
import { assert, assertClose, assertEquals, assertThrows } from "../../model/_assert.ts";

const random = seededRandom(99);
function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * scale;
  return a;
}

const gpu = await getGpu();
const ops = await ModelOps.load(gpu);

const RMSNORM_LAYOUTS: RmsnormLayout[] = ["workgroup_per_row", "row_per_invocation"];

async function checkRmsnorm(rows: number, cols: number, layout: RmsnormLayout): Promise<void> {
  const x = rand(rows * cols, 3);
  const w = rand(cols);
  const batch = new CommandBatch(gpu);
  const xt = GpuTensor.fromArray(gpu, x, [rows, cols]);
  const wt = GpuTensor.fromArray(gpu, w, [cols]);
  const y = ops.rmsnorm(batch, xt, wt, 1e-5, layout);
  batch.submit();
  assertClose(
    await y.readF32(),
    ref.rmsnorm(x, w, rows, 1e-5),
    1e-6,
    `${layout} [${rows}, ${cols}]`,
  );
  for (const t of [xt, wt, y]) t.destroy();
}

Deno.test("rmsnorm matches the reference in both layouts (rows > 1 workgroup, cols % 4 = 0 and not, head-sized rows)", async () => {
  for (const layout of RMSNORM_LAYOUTS) {
    // 172 = 43 vec4s (the vec4 entry point), 171 and 1 the scalar one, 8 a
    // Qwen3 q_norm head, 70 and 130 rows more than one 64-row workgroup.
    for (const [rows, cols] of [[70, 172], [70, 171], [130, 8], [3, 1], [1, 2052]]) {
      await checkRmsnorm(rows, cols, layout);
    }
  }
});

Deno.test("rmsnorm folds more workgroups than one grid dimension holds, in both layouts", async () => {
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  // One workgroup per row, then 64 rows per workgroup: just past one dimension.
  await checkRmsnorm(max + 3, 5, "workgroup_per_row");
  await checkRmsnorm((max + 1) * 64 + 3, 1, "row_per_invocation");
});

Deno.test("rope matches the reference for every scaling type (vec4 and scalar entry points)", async () => {
  const rows = 2 * 19, heads = 3;
  // head_dim 16 rotates 4 pairs per invocation, 12 (half 6) one pair.
  for (const headDim of [16, 12]) {
    for (
      const ropeScaling of [
        { type: "default" as const },
        { type: "linear" as const, factor: 4 },
        { type: "dynamic" as const, factor: 2 },
        {
          type: "llama3" as const,
          factor: 8,
          lowFreqFactor: 1,
          highFreqFactor: 4,
          originalMaxPositionEmbeddings: 16,
        },
      ]
    ) {
      const table = ropeTable(
        { headDim, ropeTheta: 500, ropeScaling, maxPositionEmbeddings: 8 },
        19,
      );
      const x = rand(rows * heads * headDim);
      const expected = x.slice();
      ref.rope(expected, table, rows, heads, headDim);
      const batch = new CommandBatch(gpu);
      const xt = GpuTensor.fromArray(gpu, x, [rows, heads * headDim]);
      const cos = GpuTensor.fromArray(gpu, table.cos, [19, headDim / 2]);
      const sin = GpuTensor.fromArray(gpu, table.sin, [19, headDim / 2]);
      ops.ropeInPlace(batch, xt, cos, sin, heads, headDim);
      batch.submit();
      assertClose(await xt.readF32(), expected, 1e-6, `${ropeScaling.type} head_dim ${headDim}`);
      for (const t of [xt, cos, sin]) t.destroy();
    }
  }
});

const ATTENTION_CASES: AttentionShape[] = [
  { sequences: 2, seqLen: 150, heads: 4, kvHeads: 2, headDim: 8, window: null },
  { sequences: 1, seqLen: 130, heads: 2, kvHeads: 2, headDim: 256, window: null },
  { sequences: 2, seqLen: 100, heads: 4, kvHeads: 1, headDim: 64, window: 37 },
  { sequences: 1, seqLen: 9, heads: 6, kvHeads: 3, headDim: 96, window: 1 },
  { sequences: 3, seqLen: 70, heads: 16, kvHeads: 2, headDim: 4, window: 20 },
  { sequences: 16, seqLen: 33, heads: 8, kvHeads: 4, headDim: 8, window: null },
];

/**
 * The tilings each case runs with: both devices' defaults, and 3 positions
 * per invocation (not dividing seqLen) with the KV-head group and the other
 * lane order than the software default.
 */
function tilingsFor(shape: AttentionShape): AttentionTiling[] {
  const software = attentionTiling(shape, true);
  const tilings = [software, attentionTiling(shape, false)];
  const perKvHead = shape.heads / shape.kvHeads;
  const group = 3 * perKvHead <= 16 && (3 * perKvHead * shape.headDim) / 4 <= 64 ? perKvHead : 1;
  if ((3 * group * shape.headDim) / 4 <= 64) {
    tilings.push({ queries: 3, group, headsInLanes: !software.headsInLanes });
  }
  return tilings;
}

Deno.test("attention matches the reference in every tiling: GQA, MHA, windows, head_dim 4..256", async () => {
  for (const shape of ATTENTION_CASES) {
    const rows = shape.sequences * shape.seqLen;
    // Large scores exercise the running-max rescale of the online softmax.
    const q = rand(rows * shape.heads * shape.headDim, 4);
    const k = rand(rows * shape.kvHeads * shape.headDim, 4);
    const v = rand(rows * shape.kvHeads * shape.headDim);
    const expected = ref.attention(q, k, v, shape);
    const qt = GpuTensor.fromArray(gpu, q, [rows, shape.heads * shape.headDim]);
    const kt = GpuTensor.fromArray(gpu, k, [rows, shape.kvHeads * shape.headDim]);
    const vt = GpuTensor.fromArray(gpu, v, [rows, shape.kvHeads * shape.headDim]);
    for (const tiling of tilingsFor(shape)) {
      const batch = new CommandBatch(gpu);
      const out = ops.attention(batch, qt, kt, vt, shape, tiling);
      batch.submit();
      const what = `${JSON.stringify(shape)} ${JSON.stringify(tiling)}`;
      assertClose(await out.readF32(), expected, 1e-5, what);
      out.destroy();
    }
    for (const t of [qt, kt, vt]) t.destroy();
  }
});

Deno.test("attentionTiling: one query per invocation on hardware, tilings that fit the kernel on software", () => {
  const shapes: AttentionShape[] = [
    ...ATTENTION_CASES,
    { sequences: 16, seqLen: 256, heads: 8, kvHeads: 4, headDim: 8, window: null },
    { sequences: 1, seqLen: 256, heads: 12, kvHeads: 12, headDim: 64, window: null },
    { sequences: 1, seqLen: 1, heads: 32, kvHeads: 8, headDim: 128, window: 4096 },
  ];
  for (const shape of shapes) {
    assertEquals(attentionTiling(shape, false), { queries: 1, group: 1, headsInLanes: false });
    const { queries, group } = attentionTiling(shape, true);
    const states = queries * group;
    assert((shape.heads / shape.kvHeads) % group === 0, `group ${group}`);
    assert(states <= 16 && (states * shape.headDim) / 4 <= 64, `${queries} x ${group}`);
    assert(queries === 1 || queries <= shape.seqLen, `queries ${queries}`);
  }
  // stories260K's calibration batch: the two heads of a KV head and 8
  // positions per invocation, the 64 (sequence, KV head) pairs in lanes.
  assertEquals(
    attentionTiling(
      { sequences: 16, seqLen: 256, heads: 8, kvHeads: 4, headDim: 8, window: null },
      true,
    ),
    { queries: 8, group: 2, headsInLanes: true },
  );
});

Deno.test("attention rejects a tiling that does not fit the shape or the kernel", () => {
  const shape = ATTENTION_CASES[0];
  const x = GpuTensor.allocate(gpu, [shape.sequences * shape.seqLen, shape.heads * shape.headDim]);
  const kv = GpuTensor.allocate(gpu, [
    shape.sequences * shape.seqLen,
    shape.kvHeads * shape.headDim,
  ]);
  const batch = new CommandBatch(gpu);
  for (
    const tiling of [
      { queries: 1, group: 3, headsInLanes: false }, // 3 does not divide 4 / 2
      { queries: 17, group: 1, headsInLanes: false }, // more than 16 states
      { queries: 0, group: 1, headsInLanes: true },
    ]
  ) {
    assertThrows(() => ops.attention(batch, x, kv, kv, shape, tiling), EngineError, "tiling");
  }
  assertEquals(batch.pending, 0);
  for (const t of [x, kv]) t.destroy();
});

Deno.test("silu_mul matches the reference, including large |gate| (vec4 and scalar entry points)", async () => {
  // 1000 elements run as vec4s, 999 one per invocation.
  for (const [rows, cols] of [[10, 100], [9, 111]]) {
    const gate = rand(rows * cols, 100);
    const up = rand(rows * cols);
    const batch = new CommandBatch(gpu);
    const g = GpuTensor.fromArray(gpu, gate, [rows, cols]);
    const u = GpuTensor.fromArray(gpu, up, [rows, cols]);
    const out = ops.siluMul(batch, g, u);
    batch.submit();
    const got = await out.readF32();
    assertClose(got, ref.siluMul(gate, up), 1e-6, `[${rows}, ${cols}]`);
    assertEquals(got.every(Number.isFinite), true);
    for (const t of [g, u, out]) t.destroy();
  }
});

Deno.test("log_softmax_nll over vocabulary blocks matches the reference; negative targets give 0", async () => {
  const rows = 33, vocab = 1000;
  const logits = rand(rows * vocab, 20);
  const targets = new Int32Array(rows);
  for (let r = 0; r < rows; r++) targets[r] = r % 7 === 3 ? -1 : Math.floor(random() * vocab);
  const expected = ref.logSoftmaxNll(logits, targets, vocab);
  const tt = GpuTensor.fromArray(gpu, targets, [rows]);
  // One block, then uneven blocks (the 3rd block's max exceeds the 1st's for some rows).
  for (const bounds of [[0, vocab], [0, 100, 350, 999, vocab]]) {
    const state = GpuTensor.allocate(gpu, [rows, 3]);
    const nll = GpuTensor.allocate(gpu, [rows]);
    const batch = new CommandBatch(gpu);
    const blocks: GpuTensor[] = [];
    for (let b = 0; b + 1 < bounds.length; b++) {
      const [v0, v1] = [bounds[b], bounds[b + 1]];
      const block = new Float32Array(rows * (v1 - v0));
      for (let r = 0; r < rows; r++) {
        block.set(logits.subarray(r * vocab + v0, r * vocab + v1), r * (v1 - v0));
      }
      const bt = GpuTensor.fromArray(gpu, block, [rows, v1 - v0]);
      ops.logSoftmaxNll(batch, bt, tt, state, nll, v0, b === 0, b + 2 === bounds.length);
      blocks.push(bt);
    }
    batch.submit();
    const got = await nll.readF32();
    assertClose(got, expected, 1e-6, `blocks ${bounds}`);
    assertEquals(got[3], 0);
    for (const t of [state, nll, ...blocks]) t.destroy();
  }
  tt.destroy();
});

Deno.test("copy_columns writes a block into the columns of a wider matrix", async () => {
  const rows = 5, cols = 3, ld = 8, col0 = 4;
  const block = rand(rows * cols);
  const batch = new CommandBatch(gpu);
  const bt = GpuTensor.fromArray(gpu, block, [rows, cols]);
  const out = GpuTensor.fromArray(gpu, new Float32Array(rows * ld).fill(7), [rows, ld]);
  ops.copyColumns(batch, bt, out, col0);
  batch.submit();
  const expected = new Float32Array(rows * ld).fill(7);
  for (let r = 0; r < rows; r++) {
    expected.set(block.subarray(r * cols, (r + 1) * cols), r * ld + col0);
  }
  assertEquals(await out.readF32(), expected);
  bt.destroy();
  out.destroy();
});

Deno.test("embedding_gather fills rows from table chunks", async () => {
  const vocab = 50, hidden = 24;
  const table = rand(vocab * hidden);
  const ids = new Int32Array([0, 49, 17, 25, 24, 3, 3]);
  const batch = new CommandBatch(gpu);
  const idt = GpuTensor.fromArray(gpu, ids, [ids.length]);
  const out = GpuTensor.allocate(gpu, [ids.length, hidden]);
  // Two chunks split at row 25, as a table above the binding limit would be.
  const chunks = [[0, 25], [25, 50]].map(([a, b]) =>
    GpuTensor.fromArray(gpu, table.slice(a * hidden, b * hidden), [b - a, hidden])
  );
  ops.embeddingGather(batch, chunks[0], 0, idt, out);
  ops.embeddingGather(batch, chunks[1], 25, idt, out);
  batch.submit();
  const expected = new Float32Array(ids.length * hidden);
  ids.forEach((id, n) => expected.set(table.subarray(id * hidden, (id + 1) * hidden), n * hidden));
  assertEquals(await out.readF32(), expected);
  for (const t of [idt, out, ...chunks]) t.destroy();
});
