import assert from "node:assert/strict";
import {
  adoptDevice,
  ChunkedWeight,
  CommandBatch,
  defaultMatmulPath,
  getGpu,
  GpuTensor,
  ImmutableTensorError,
  kernelSync,
  matmul,
  matmulF16,
  type MatmulPath,
  packF16,
  recordUniformGram,
  recordUniformGramRows,
  ShapeError,
  uniformMatmulSource,
  uniformTiling,
} from "../../src/gpu/mod.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { assertClose, matmulRef, randomF32 } from "./_helpers.ts";

const gpu = await getGpu();

/** Both kernels, whatever the adapter: the uniform one is the default only on software adapters. */
const PATHS: MatmulPath[] = ["storage", "uniform"];

for (const path of PATHS) {
  Deno.test(`matmul_f32 (${path} path) matches a TypeScript reference`, async (t) => {
    await matmulMatchesReference(t, path);
  });
}

async function matmulMatchesReference(t: Deno.TestContext, path: MatmulPath): Promise<void> {
  const random = seededRandom(7);
  const batch = new CommandBatch(gpu);

  // [M, K, N, bias]: tile-aligned, ragged M/N, K % 4 != 0 (the unaligned entry point), M = 1;
  // past one 128-row tile in M and N, and past 4 k-tiles of 128 (a second k group adds into y).
  const cases: Array<[number, number, number, boolean]> = [
    [1, 3, 5, false],
    [1, 4, 1, true],
    [115, 172, 64, false],
    [64, 64, 64, true],
    [9, 17, 13, true],
    [33, 128, 71, true],
    [8, 1, 8, false],
    [130, 260, 9, false],
    [3, 0, 5, true],
    [131, 601, 137, true],
  ];
  for (const [m, k, n, withBias] of cases) {
    await t.step(`[${m},${k}]·[${n},${k}]ᵀ${withBias ? " + bias" : ""}`, async () => {
      const x = randomF32(random, m * k);
      const w = randomF32(random, n * k);
      const b = withBias ? randomF32(random, n) : undefined;
      const gx = GpuTensor.fromArray(gpu, x, [m, k]);
      const gw = GpuTensor.fromArray(gpu, w, [n, k]);
      const gb = b && GpuTensor.fromArray(gpu, b, [n]);
      const y = matmul(batch, gx, gw, gb, { path });
      assert.deepEqual(y.shape, [m, n]);
      const ref = matmulRef(x, w, m, n, k, b);
      assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: "y" });
      for (const tensor of [gx, gw, gb, y]) tensor?.destroy();
    });
  }

  await t.step("leading dimensions of x are flattened into M", async () => {
    const x = randomF32(random, 2 * 3 * 8);
    const w = randomF32(random, 5 * 8);
    const y = matmul(
      batch,
      GpuTensor.fromArray(gpu, x, [2, 3, 8]),
      GpuTensor.fromArray(gpu, w, [5, 8]),
      undefined,
      { path },
    );
    assert.deepEqual(y.shape, [2, 3, 5]);
    const ref = matmulRef(x, w, 6, 5, 8);
    assertClose(await y.readF32(), ref.y, { scale: ref.magnitude });
  });

  await t.step("shape errors name both operands", () => {
    const x = GpuTensor.empty(gpu, [4, 8]);
    const o = { path };
    assert.throws(() => matmul(batch, x, GpuTensor.empty(gpu, [3, 7]), undefined, o), /K=8.*K=7/);
    assert.throws(
      () => matmul(batch, x, GpuTensor.empty(gpu, [3, 8]), GpuTensor.empty(gpu, [4]), o),
      ShapeError,
    );
    assert.throws(
      () => matmul(batch, x, GpuTensor.empty(gpu, [3, 8], "u32"), undefined, o),
      ShapeError,
    );
  });

  await batch.done();
}

Deno.test("the uniform and storage paths agree within float32 rounding", async () => {
  const random = seededRandom(5);
  const batch = new CommandBatch(gpu);
  const [m, k, n] = [70, 530, 131];
  const x = randomF32(random, m * k);
  const w = randomF32(random, n * k);
  const b = randomF32(random, n);
  const gx = GpuTensor.fromArray(gpu, x, [m, k]);
  const gw = GpuTensor.fromArray(gpu, w, [n, k]);
  const gb = GpuTensor.fromArray(gpu, b, [n]);
  const [ys, yu] = await Promise.all(
    PATHS.map((path) => matmul(batch, gx, gw, gb, { path }).readF32()),
  );
  const ref = matmulRef(x, w, m, n, k, b);
  // Each path's sum is within (k + 2)·2⁻²⁴·Σ|terms| of the exact one; so is their difference, twice.
  const bound = ref.magnitude.map((s) => 2 * (k + 2) * 2 ** -24 * s);
  for (let i = 0; i < ys.length; i++) {
    assert.ok(Math.abs(ys[i] - yu[i]) <= bound[i], `y[${i}]: storage ${ys[i]}, uniform ${yu[i]}`);
  }
  assert.notDeepEqual(ys, new Float32Array(m * n)); // the comparison saw real values
});

Deno.test("uniform path: an immutable weight's kept packed tiles give the per-call result bit for bit", async () => {
  const random = seededRandom(11);
  const [m, k, n] = [37, 300, 70];
  const w = randomF32(random, n * k);
  const xs = [randomF32(random, m * k), randomF32(random, m * k), randomF32(random, m * k)];
  const mutable = GpuTensor.fromArray(gpu, w, [n, k]);
  const kept = GpuTensor.fromArray(gpu, w, [n, k], { immutable: true });
  const perCall: Float32Array[] = [];
  for (const x of xs) {
    const gx = GpuTensor.fromArray(gpu, x, [m, k]);
    perCall.push(
      await matmul(new CommandBatch(gpu), gx, mutable, undefined, { path: "uniform" }).readF32(),
    );
  }
  // The first product packs w into batch a, left unsubmitted; batch b reuses the tiles and is
  // read first, so the pack must be submitted ahead of it.
  const a = new CommandBatch(gpu);
  const b = new CommandBatch(gpu);
  const gxs = xs.map((x) => GpuTensor.fromArray(gpu, x, [m, k]));
  const y0 = matmul(a, gxs[0], kept, undefined, { path: "uniform" });
  const y1 = matmul(b, gxs[1], kept, undefined, { path: "uniform" });
  const y2 = matmul(b, gxs[2], kept, undefined, { path: "uniform" });
  assert.deepEqual(await y1.readF32(), perCall[1]);
  assert.deepEqual(await y2.readF32(), perCall[2]);
  assert.deepEqual(await y0.readF32(), perCall[0]);
  assert.notDeepEqual(perCall[0], new Float32Array(m * n));
  kept.destroy();
  mutable.destroy();
});

Deno.test("uniform path: a weight's packed tiles never go stale", async (t) => {
  const random = seededRandom(12);
  const [m, k, n] = [9, 40, 24];
  const x = randomF32(random, m * k);
  const w1 = randomF32(random, n * k);
  const w2 = randomF32(random, n * k);
  const gx = GpuTensor.fromArray(gpu, x, [m, k]);
  const w2t = GpuTensor.fromArray(gpu, transposeRef(w2, n, k), [k, n]);
  const product = (w: GpuTensor) =>
    matmul(new CommandBatch(gpu), gx, w, undefined, { path: "uniform" }).readF32();
  const expected = async (w: Float32Array) => await product(GpuTensor.fromArray(gpu, w, [n, k]));
  const rewrite = (batch: CommandBatch, w: GpuTensor) =>
    batch.dispatch(
      kernelSync(gpu, "transpose.wgsl"),
      [
        w2t,
        w,
        { uniform: new Uint32Array([k, n]) },
      ],
      [Math.ceil(n / 16), Math.ceil(k / 16)],
      "rewrite w",
    );

  await t.step("no kernel may write an immutable weight (or its view)", async () => {
    const w = GpuTensor.fromArray(gpu, w1, [n, k], { immutable: true });
    const before = await product(w);
    assert.throws(() => rewrite(new CommandBatch(gpu), w), ImmutableTensorError);
    assert.throws(() => rewrite(new CommandBatch(gpu), w.view([n * k])), ImmutableTensorError);
    assert.throws(() => w.view([n * k]).derived("x", () => ({ destroy() {} })), ShapeError);
    assert.deepEqual(await product(w), before);
    // Reading it is fine: the same kernel with w as its input.
    const out = GpuTensor.allocate(gpu, [k, n]);
    const batch = new CommandBatch(gpu);
    batch.dispatch(kernelSync(gpu, "transpose.wgsl"), [w, out, {
      uniform: new Uint32Array([n, k]),
    }], [
      Math.ceil(k / 16),
      Math.ceil(n / 16),
    ]);
    assert.deepEqual(await out.readF32(), transposeRef(w1, n, k));
    w.destroy();
  });

  await t.step("a rewritten mutable weight is packed again", async () => {
    const w = GpuTensor.fromArray(gpu, w1, [n, k]);
    assert.deepEqual(await product(w), await expected(w1));
    const batch = new CommandBatch(gpu);
    rewrite(batch, w);
    batch.submit();
    assert.deepEqual(await product(w), await expected(w2));
  });

  await t.step(
    "a destroyed weight's pooled buffer, reused by a new weight, is packed afresh",
    async () => {
      const first = GpuTensor.fromArray(gpu, w1, [n, k], { immutable: true });
      assert.deepEqual(await product(first), await expected(w1));
      let freed = false;
      first.derived("probe", () => ({ destroy: () => freed = true }));
      first.destroy();
      assert.ok(freed, "derived copies are destroyed with the weight");
      const second = GpuTensor.fromArray(gpu, w2, [n, k], { immutable: true });
      assert.deepEqual(await product(second), await expected(w2));
    },
  );
});

Deno.test("uniform path: products in one batch share x's packed tiles until x is written", async () => {
  const random = seededRandom(13);
  // k spans three k-tiles of 128 terms.
  const [m, k, n] = [9, 300, 24];
  const x1 = randomF32(random, m * k);
  const x2 = randomF32(random, m * k);
  const w1 = GpuTensor.fromArray(gpu, randomF32(random, n * k), [n, k]);
  const w2 = GpuTensor.fromArray(gpu, randomF32(random, n * k), [n, k]);
  const alone = (x: Float32Array, w: GpuTensor) =>
    matmul(new CommandBatch(gpu), GpuTensor.fromArray(gpu, x, [m, k]), w, undefined, {
      path: "uniform",
    }).readF32();
  const gx = GpuTensor.fromArray(gpu, x1, [m, k]);
  const x2t = GpuTensor.fromArray(gpu, transposeRef(x2, m, k), [k, m]);
  const batch = new CommandBatch(gpu);
  const product = (w: GpuTensor) => matmul(batch, gx, w, undefined, { path: "uniform" });
  const recorded = (record: () => GpuTensor) => {
    const before = batch.pending;
    return { y: record(), dispatches: batch.pending - before };
  };
  const first = recorded(() => product(w1));
  const second = recorded(() => product(w2));
  // Same products and k-groups, no pack of x the second time.
  assert.equal(first.dispatches - second.dispatches, 1, "x is packed once for both products");
  // x rewritten (through a view) in the same batch: the next product packs it again.
  batch.dispatch(
    kernelSync(gpu, "transpose.wgsl"),
    [x2t, gx.view([m * k]), { uniform: new Uint32Array([k, m]) }],
    [Math.ceil(m / 16), Math.ceil(k / 16)],
    "rewrite x",
  );
  const third = recorded(() => product(w1));
  // One pack again, of x: w1 (mutable, but not written since) keeps its tiles from the first.
  assert.equal(third.dispatches, first.dispatches - 1, "x is packed again, w1 is not");
  const [y1, y2, y3] = await Promise.all([first.y, second.y, third.y].map((y) => y.readF32()));
  assert.deepEqual(y1, await alone(x1, w1));
  assert.deepEqual(y2, await alone(x1, w2));
  assert.deepEqual(y3, await alone(x2, w1));
  // Once submitted, the batch forgets its tiles: x rewritten by another batch is packed afresh.
  const other = new CommandBatch(gpu);
  other.dispatch(
    kernelSync(gpu, "transpose.wgsl"),
    [GpuTensor.fromArray(gpu, transposeRef(x1, m, k), [k, m]), gx, {
      uniform: new Uint32Array([k, m]),
    }],
    [Math.ceil(m / 16), Math.ceil(k / 16)],
    "rewrite x again",
  );
  await other.done();
  assert.deepEqual(await product(w2).readF32(), await alone(x1, w2));
});

function transposeRef(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/**
 * Runs `fn` on a second device of the same kind of adapter, destroyed afterwards: with WebGPU's
 * default limits, or with the adapter's own maximum for the named limits.
 */
async function withSecondDevice<T>(
  fn: (g: typeof gpu) => Promise<T>,
  raised: Array<keyof GPUSupportedLimits> = [],
): Promise<T> {
  const adapter = await navigator.gpu.requestAdapter({ forceFallbackAdapter: gpu.isFallback });
  assert.ok(adapter, "an adapter");
  const requiredLimits: Record<string, number> = {};
  for (const name of raised) requiredLimits[name] = adapter.limits[name] as number;
  const device = await adapter.requestDevice({ requiredLimits });
  try {
    return await fn(adoptDevice(adapter, device));
  } finally {
    device.destroy();
  }
}

Deno.test("the uniform path runs on a device with WebGPU's default limits", async () => {
  // A second device with WebGPU's default limits, whatever the adapter allows:
  // minUniformBufferOffsetAlignment 256, 12 uniform buffers per stage.
  await withSecondDevice(async (plain) => {
    const tiling = uniformTiling(plain.limits)!;
    assert.equal(tiling.align, plain.limits.minUniformBufferOffsetAlignment);
    const random = seededRandom(3);
    const [m, k, n] = [20, 150, 33];
    const x = randomF32(random, m * k);
    const w = randomF32(random, n * k);
    const y = matmul(
      new CommandBatch(plain),
      GpuTensor.fromArray(plain, x, [m, k]),
      GpuTensor.fromArray(plain, w, [n, k]),
      undefined,
      { path: "uniform" },
    );
    const ref = matmulRef(x, w, m, n, k);
    assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: "y" });
  });
});

Deno.test("uniform path: one bind group with dynamic offsets serves a product's dispatches, bit for bit", async () => {
  // WebGPU's default limits allow 8 dynamic uniform buffers: too few for the 9 the uniform
  // matmul binds, so that device takes a bind group per dispatch; getGpu raises the limit.
  await withSecondDevice(async (plain) => {
    const tiling = uniformTiling(gpu.limits)!;
    const windows = 1 + 2 * tiling.chunks;
    // [M, K, N]: 3 × 3 output blocks, 5 k-tiles (2 k-groups: the second adds into y), a bias.
    const [m, k, n] = [300, 601, 290];
    const random = seededRandom(11);
    const x = randomF32(random, m * k);
    const w = randomF32(random, n * k);
    const b = randomF32(random, n);
    const run = async (g: typeof gpu) => {
      let groups = 0;
      const create = g.device.createBindGroup.bind(g.device);
      g.device.createBindGroup = (d: GPUBindGroupDescriptor) => (groups++, create(d));
      try {
        const batch = new CommandBatch(g);
        const gx = GpuTensor.fromArray(g, x, [m, k]);
        const gw = GpuTensor.fromArray(g, w, [n, k]);
        const gb = GpuTensor.fromArray(g, b, [n]);
        await batch.done(); // uploads: no bind groups
        groups = 0;
        const y = matmul(batch, gx, gw, gb, { path: "uniform" });
        await batch.done();
        return { y: await y.readF32(), groups };
      } finally {
        g.device.createBindGroup = create;
      }
    };
    const dynamic = await run(gpu);
    const perDispatch = await run(plain);
    // 9 product dispatches (3 × 3 blocks) × 2 k-groups, plus one pack of x and one of w.
    const dispatches = 3 * 3 * 2;
    if (gpu.limits.maxDynamicUniformBuffersPerPipelineLayout >= windows) {
      assert.equal(dynamic.groups, 2 + 1, "the packs' bind groups and one shared by the product");
    }
    if (plain.limits.maxDynamicUniformBuffersPerPipelineLayout < windows) {
      assert.equal(perDispatch.groups, 2 + dispatches, "a bind group per dispatch");
    }
    assert.deepEqual(dynamic.y, perDispatch.y);
    const ref = matmulRef(x, w, m, n, k, b);
    assertClose(dynamic.y, ref.y, { scale: ref.magnitude, what: "y" });
  });
});

Deno.test("uniform path: reused pack buffers hold no stale tiles", async () => {
  // Per-call packs come from a pool: a product with k = 601 after one with k = 640 reuses the
  // first one's buffers (same tiles, same size), whose last tile held terms 601 .. 639.
  const random = seededRandom(5);
  const [m, n] = [260, 130];
  const big = (len: number) => randomF32(random, len).map((v) => v * 1e6);
  const product = async (g: typeof gpu, x: Float32Array, w: Float32Array, k: number) => {
    const batch = new CommandBatch(g);
    const y = matmul(
      batch,
      GpuTensor.fromArray(g, x, [m, k]),
      GpuTensor.fromArray(g, w, [n, k]),
      undefined,
      { path: "uniform" },
    );
    return await y.readF32();
  };
  await product(gpu, big(m * 640), big(n * 640), 640);
  const x = randomF32(random, m * 601);
  const w = randomF32(random, n * 601);
  const reused = await product(gpu, x, w, 601);
  const fresh = await withSecondDevice(
    (g) => product(g, x, w, 601),
    ["maxDynamicUniformBuffersPerPipelineLayout"],
  );
  assert.deepEqual(reused, fresh);
  const ref = matmulRef(x, w, m, n, 601);
  assertClose(reused, ref.y, { scale: ref.magnitude, what: "y" });
});

Deno.test("uniform matmul: the bench's other kernel shapes match the reference", async (t) => {
  const random = seededRandom(29);
  const [m, k, n] = [131, 601, 137];
  const x = randomF32(random, m * k);
  const w = randomF32(random, n * k);
  const gx = GpuTensor.fromArray(gpu, x, [m, k]);
  const gw = GpuTensor.fromArray(gpu, w, [n, k]);
  const ref = matmulRef(x, w, m, n, k);
  for (
    const shape of [
      { tm: 32, tn: 8 },
      { tm: 16, tn: 8, wy: 1 },
      { tm: 32, tn: 8, wy: 1 },
      { tm: 16, tn: 16, wx: 8, wy: 2 },
      { tm: 16, tn: 16, wx: 8, wy: 2, unroll: 1 },
      { interleave: false },
      { unroll: 1 },
      { unroll: 4 },
    ]
  ) {
    await t.step(JSON.stringify(shape), async () => {
      const y = matmul(new CommandBatch(gpu), gx, gw, undefined, { path: "uniform", shape });
      assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: "y" });
      y.destroy();
    });
  }
  gx.destroy();
  gw.destroy();
});

Deno.test("uniform matmul: every loop unroll, load order and write-out gives the same bits", async (t) => {
  const random = seededRandom(31);
  // Odd k (padded with zero terms up to a whole iteration), k in one tile, k past a dispatch's
  // k-tiles; and an odd token count through the Gram.
  for (const [m, k, n] of [[5, 1, 3], [131, 7, 137], [131, 601, 137]]) {
    await t.step(`[${m},${k}]·[${n},${k}]ᵀ`, async () => {
      const gx = GpuTensor.fromArray(gpu, randomF32(random, m * k), [m, k]);
      const gw = GpuTensor.fromArray(gpu, randomF32(random, n * k), [n, k]);
      const bias = GpuTensor.fromArray(gpu, randomF32(random, n), [n]);
      const ys = [];
      const shapes = [
        { unroll: 1 },
        { unroll: 2 },
        { unroll: 4 },
        { interleave: false },
        { selectStores: false },
      ];
      for (const shape of shapes) {
        const y = matmul(new CommandBatch(gpu), gx, gw, bias, { path: "uniform", shape });
        ys.push(await y.readF32());
        y.destroy();
      }
      for (const y of ys.slice(1)) assert.deepEqual(y, ys[0]);
      for (const g of [gx, gw, bias]) g.destroy();
    });
  }
  await t.step("Gram of 301 tokens", async () => {
    const [tokens, k] = [301, 40];
    const gx = GpuTensor.fromArray(gpu, randomF32(random, tokens * k), [tokens, k]);
    const hs = [];
    for (
      const shape of [
        { unroll: 1 },
        { unroll: 2 },
        { unroll: 4 },
        { interleave: false },
        { selectStores: false },
      ]
    ) {
      const h = GpuTensor.fromArray(gpu, new Float32Array(k * k), [k, k]);
      recordUniformGramRows(
        new CommandBatch(gpu),
        gx,
        [{ tensor: h, row0: 0, rows: k, ld: k }],
        2,
        0,
        { shape },
      );
      hs.push(await h.readF32());
      h.destroy();
    }
    for (const h of hs.slice(1)) assert.deepEqual(h, hs[0]);
    gx.destroy();
  });
});

Deno.test("recordUniformGram: h ← β·h + α·xᵀx through uniform windows", async (t) => {
  const random = seededRandom(17);
  // [T, K, beta]: one tile; K past a 128-row block and T past 4 k-tiles of 128; beta 0 ignores h;
  // K a multiple of 4 (x packed four floats at a time, kernels/pack_tiles_vec4.wgsl).
  const cases = [[5, 3, 1], [600, 150, 0.5], [37, 20, 0], [600, 152, 0.5]] as const;
  for (const [tokens, k, beta] of cases) {
    await t.step(`T ${tokens}, K ${k}, beta ${beta}`, async () => {
      const x = randomF32(random, tokens * k);
      const h0 = randomF32(random, k * k);
      if (beta === 0) h0.fill(NaN); // must never be read
      const alpha = 2 / tokens;
      const gh = GpuTensor.fromArray(gpu, h0, [k, k]);
      recordUniformGram(
        new CommandBatch(gpu),
        GpuTensor.fromArray(gpu, x, [tokens, k]),
        gh,
        alpha,
        beta,
      );
      const want = new Float64Array(k * k);
      const scale = new Float64Array(k * k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          let s = 0;
          let a = 0;
          for (let l = 0; l < tokens; l++) {
            s += x[l * k + i] * x[l * k + j];
            a += Math.abs(x[l * k + i] * x[l * k + j]);
          }
          const old = beta === 0 ? 0 : beta * h0[i * k + j];
          want[i * k + j] = old + alpha * s;
          scale[i * k + j] = Math.abs(old) + alpha * a;
        }
      }
      assertClose(await gh.readF32(), want, { scale, what: "h" });
    });
  }
  await t.step("shape errors name both tensors", () => {
    const batch = new CommandBatch(gpu);
    assert.throws(
      () =>
        recordUniformGram(batch, GpuTensor.empty(gpu, [4, 8]), GpuTensor.empty(gpu, [8, 7]), 1, 0),
      /x \[4,8\].*h \[8,7\]/,
    );
  });
});

Deno.test("recordUniformGramRows: row panels, padding, lower triangle, token chunks", async () => {
  const random = seededRandom(23);
  // K 150 in panels of 60, 70 and 40 rows (not multiples of a 128-row block), stride 160 with
  // 10 padding columns and 20 padding rows; 1300 tokens packed in two chunks (1024 tokens fit 1 MiB).
  // K 152: the same through the four-floats-at-a-time pack (the second chunk starts at 1024·K).
  const [tokens, ld] = [1300, 160];
  const heights = [60, 70, 40];
  const [alpha, beta] = [0.25, 0.5];
  for (const [k, lowerOnly] of [[150, false], [150, true], [152, false]] as const) {
    const x = randomF32(random, tokens * k);
    const starts = heights.map((_, q) => heights.slice(0, q).reduce((a, b) => a + b, 0));
    const h0 = heights.map((rows) => randomF32(random, rows * ld));
    const panels = heights.map((rows, q) => GpuTensor.fromArray(gpu, h0[q], [rows, ld]));
    recordUniformGramRows(
      new CommandBatch(gpu),
      GpuTensor.fromArray(gpu, x, [tokens, k]),
      panels.map((tensor, q) => ({ tensor, row0: starts[q], rows: heights[q], ld })),
      alpha,
      beta,
      { lowerOnly, maxPackBytes: 2 * 4 * 65536 * 2 },
    );
    for (let q = 0; q < panels.length; q++) {
      const got = await panels[q].readF32();
      for (let r = 0; r < heights[q]; r++) {
        const i = starts[q] + r;
        for (let j = 0; j < ld; j++) {
          const at = r * ld + j;
          if (
            i >= k || j >= k || (lowerOnly && j > i && Math.floor(j / 128) > Math.floor(i / 128))
          ) {
            // Padding, and blocks above the diagonal when only the lower triangle is asked for.
            assert.equal(got[at], h0[q][at], `panel ${q} [${r}, ${j}] must be left alone`);
            continue;
          }
          if (lowerOnly && j > i) continue; // inside a diagonal block: any value
          let s = 0;
          let a = 0;
          for (let l = 0; l < tokens; l++) {
            s += x[l * k + i] * x[l * k + j];
            a += Math.abs(x[l * k + i] * x[l * k + j]);
          }
          const want = beta * h0[q][at] + alpha * s;
          const tol = 1e-4 * (Math.abs(beta * h0[q][at]) + alpha * a) + 1e-6;
          assert.ok(Math.abs(got[at] - want) <= tol, `H[${i}, ${j}] = ${got[at]}, want ${want}`);
        }
      }
    }
    for (const p of panels) p.destroy();
  }
});

Deno.test("uniformTiling follows the limits it is given", () => {
  const limits = {
    maxUniformBufferBindingSize: 65536,
    maxUniformBuffersPerShaderStage: 12,
    minUniformBufferOffsetAlignment: 256,
  };
  assert.deepEqual(uniformTiling(limits), {
    windowBytes: 65536,
    rb: 128,
    kcMax: 128,
    chunks: 4,
    align: 256,
    tm: 16,
    tn: 8,
    wx: 8,
    wy: 4,
    unroll: 2,
    interleave: true,
    selectStores: true,
  });
  // Larger windows are capped at 64 KiB; smaller ones shorten the tiles in k.
  assert.equal(uniformTiling({ ...limits, maxUniformBufferBindingSize: 1 << 20 })!.kcMax, 128);
  assert.equal(uniformTiling({ ...limits, maxUniformBufferBindingSize: 16384 })!.kcMax, 32);
  // Fewer uniform bindings: fewer k-tiles per dispatch; too few: no uniform path.
  assert.equal(uniformTiling({ ...limits, maxUniformBuffersPerShaderStage: 5 })!.chunks, 2);
  assert.equal(uniformTiling({ ...limits, maxUniformBuffersPerShaderStage: 2 }), null);
  assert.equal(uniformTiling({ ...limits, maxUniformBufferBindingSize: 1024 }), null);
  assert.throws(() => uniformTiling(limits, { tm: 6 }), ShapeError);
  assert.throws(() => uniformTiling(limits, { wy: 3 }), /wy 3 must divide/);
  assert.throws(() => uniformTiling(limits, { tn: 16, wx: 16 }), /wx 16 must divide rb\/tn = 8/);
  assert.throws(() => uniformTiling(limits, { unroll: 3 }), /unroll 3 must be 1, 2 or 4/);
  // The generated kernel declares exactly one window binding per k-tile and operand.
  const source = uniformMatmulSource(
    uniformTiling({ ...limits, maxUniformBuffersPerShaderStage: 5 })!,
  );
  assert.equal(source.match(/var<uniform> [xw]\d: Window/g)?.length, 4);
  assert.match(source, /array<vec4<f32>, 4096>/);
});

Deno.test("defaultMatmulPath: uniform windows on software adapters, LLMC_WGSL_MATMUL overrides", () => {
  const before = Deno.env.get("LLMC_WGSL_MATMUL");
  try {
    Deno.env.delete("LLMC_WGSL_MATMUL");
    assert.equal(defaultMatmulPath(gpu), gpu.isFallback ? "uniform" : "storage");
    Deno.env.set("LLMC_WGSL_MATMUL", "storage");
    assert.equal(defaultMatmulPath(gpu), "storage");
    Deno.env.set("LLMC_WGSL_MATMUL", "texture");
    assert.throws(() => defaultMatmulPath(gpu), /LLMC_WGSL_MATMUL=texture/);
  } finally {
    if (before === undefined) Deno.env.delete("LLMC_WGSL_MATMUL");
    else Deno.env.set("LLMC_WGSL_MATMUL", before);
  }
});

Deno.test("matmul over a ChunkedWeight writes each chunk's output columns", async (t) => {
  for (const path of PATHS) await chunkedWeightColumns(t, path);
});

async function chunkedWeightColumns(t: Deno.TestContext, path: MatmulPath): Promise<void> {
  const random = seededRandom(11);
  const batch = new CommandBatch(gpu);
  for (const [m, k, n, rowsPerChunk] of [[19, 36, 50, 13], [5, 35, 21, 8], [1, 4, 3, 1]]) {
    await t.step(
      `${path}: [${m},${k}]·[${n},${k}]ᵀ in chunks of ${rowsPerChunk} rows`,
      async () => {
        const x = randomF32(random, m * k);
        const w = randomF32(random, n * k);
        const b = randomF32(random, n);
        // An artificial chunk limit: the real one (maxStorageBufferBindingSize) needs huge weights.
        const cw = ChunkedWeight.fromArray(gpu, w, [n, k], { maxChunkBytes: rowsPerChunk * k * 4 });
        assert.equal(cw.chunks.length, Math.ceil(n / rowsPerChunk));
        const gx = GpuTensor.fromArray(gpu, x, [m, k]);
        const y = matmul(batch, gx, cw, GpuTensor.fromArray(gpu, b, [n]), { path });
        const ref = matmulRef(x, w, m, n, k, b);
        assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: "y" });
        cw.destroy();
      },
    );
  }
  await t.step(`${path}: a row larger than the chunk limit is refused`, () => {
    assert.throws(
      () => ChunkedWeight.fromArray(gpu, new Float32Array(16), [2, 8], { maxChunkBytes: 16 }),
      /exceeds the chunk limit/,
    );
  });
}

Deno.test({
  name: "matmul_f16 (f16 weights, f32 accumulate) matches a reference",
  ignore: !gpu.hasF16, // needs the shader-f16 feature; llvmpipe does not have it
  fn: async () => {
    const random = seededRandom(13);
    const batch = new CommandBatch(gpu);
    for (const [m, k, n] of [[1, 4, 1], [115, 172, 64], [9, 16, 13]]) {
      const x = randomF32(random, m * k);
      const w = randomF32(random, n * k);
      const b = randomF32(random, n);
      const w16 = new Float32Array(new Float16Array(w)); // the values the GPU sees
      const y = matmulF16(
        batch,
        GpuTensor.fromArray(gpu, x, [m, k]),
        GpuTensor.fromArray(gpu, packF16(w), [n, k / 2]),
        GpuTensor.fromArray(gpu, b, [n]),
      );
      const ref = matmulRef(x, w16, m, n, k, b);
      assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: `f16 [${m},${k},${n}]` });
    }
  },
});

Deno.test("packF16 packs pairs little-endian, even index low", () => {
  assert.deepEqual(packF16(new Float32Array([1, -2])), new Uint32Array([0xc0003c00]));
  assert.throws(() => packF16(new Float32Array(3)), ShapeError);
});
