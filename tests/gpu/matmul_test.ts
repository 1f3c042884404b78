import assert from "node:assert/strict";
import {
  ChunkedWeight,
  CommandBatch,
  getGpu,
  GpuTensor,
  matmul,
  matmulF16,
  packF16,
  ShapeError,
} from "../../src/gpu/mod.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { assertClose, matmulRef, randomF32 } from "./_helpers.ts";

const gpu = await getGpu();

Deno.test("matmul_f32 matches a TypeScript reference", async (t) => {
  const random = seededRandom(7);
  const batch = new CommandBatch(gpu);

  // [M, K, N, bias]: tile-aligned, ragged M/N, K % 4 != 0 (the unaligned entry point), M = 1.
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
  ];
  for (const [m, k, n, withBias] of cases) {
    await t.step(`[${m},${k}]·[${n},${k}]ᵀ${withBias ? " + bias" : ""}`, async () => {
      const x = randomF32(random, m * k);
      const w = randomF32(random, n * k);
      const b = withBias ? randomF32(random, n) : undefined;
      const gx = GpuTensor.fromArray(gpu, x, [m, k]);
      const gw = GpuTensor.fromArray(gpu, w, [n, k]);
      const gb = b && GpuTensor.fromArray(gpu, b, [n]);
      const y = matmul(batch, gx, gw, gb);
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
    );
    assert.deepEqual(y.shape, [2, 3, 5]);
    const ref = matmulRef(x, w, 6, 5, 8);
    assertClose(await y.readF32(), ref.y, { scale: ref.magnitude });
  });

  await t.step("shape errors name both operands", () => {
    const x = GpuTensor.empty(gpu, [4, 8]);
    assert.throws(() => matmul(batch, x, GpuTensor.empty(gpu, [3, 7])), /K=8.*K=7/);
    assert.throws(
      () => matmul(batch, x, GpuTensor.empty(gpu, [3, 8]), GpuTensor.empty(gpu, [4])),
      ShapeError,
    );
    assert.throws(() => matmul(batch, x, GpuTensor.empty(gpu, [3, 8], "u32")), ShapeError);
  });

  await batch.done();
});

Deno.test("matmul over a ChunkedWeight writes each chunk's output columns", async (t) => {
  const random = seededRandom(11);
  const batch = new CommandBatch(gpu);
  for (const [m, k, n, rowsPerChunk] of [[19, 36, 50, 13], [5, 35, 21, 8], [1, 4, 3, 1]]) {
    await t.step(`[${m},${k}]·[${n},${k}]ᵀ in chunks of ${rowsPerChunk} rows`, async () => {
      const x = randomF32(random, m * k);
      const w = randomF32(random, n * k);
      const b = randomF32(random, n);
      // An artificial chunk limit: the real one (maxStorageBufferBindingSize) needs huge weights.
      const cw = ChunkedWeight.fromArray(gpu, w, [n, k], { maxChunkBytes: rowsPerChunk * k * 4 });
      assert.equal(cw.chunks.length, Math.ceil(n / rowsPerChunk));
      const gx = GpuTensor.fromArray(gpu, x, [m, k]);
      const y = matmul(batch, gx, cw, GpuTensor.fromArray(gpu, b, [n]));
      const ref = matmulRef(x, w, m, n, k, b);
      assertClose(await y.readF32(), ref.y, { scale: ref.magnitude, what: "y" });
      cw.destroy();
    });
  }
  await t.step("a row larger than the chunk limit is refused", () => {
    assert.throws(
      () => ChunkedWeight.fromArray(gpu, new Float32Array(16), [2, 8], { maxChunkBytes: 16 }),
      /exceeds the chunk limit/,
    );
  });
});

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
