import assert from "node:assert/strict";
import {
  add,
  CommandBatch,
  copy,
  getGpu,
  GpuTensor,
  mul,
  reduceRows,
  type RowReduction,
  scale,
  ShapeError,
  transpose,
} from "../../src/gpu/mod.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { assertClose, randomF32 } from "./_helpers.ts";

Deno.test("elementwise ops, row reductions and transpose match TypeScript references", async (t) => {
  const gpu = await getGpu();
  const random = seededRandom(20240611);
  const batch = new CommandBatch(gpu);
  const upload = (data: Float32Array, shape: number[]) => GpuTensor.fromArray(gpu, data, shape);

  await t.step("add and mul, same shape and broadcast over leading dimensions", async () => {
    for (const [shape, bShape] of [[[1000], [1000]], [[37, 53], [53]], [[3, 5, 7], [5, 7]]]) {
      const n = shape.reduce((a, b) => a * b);
      const nb = bShape.reduce((a, b) => a * b);
      const a = randomF32(random, n);
      const b = randomF32(random, nb);
      const ga = upload(a, shape);
      const gb = upload(b, bShape);
      const sum = add(batch, ga, gb);
      const prod = mul(batch, ga, gb);
      assert.deepEqual(sum.shape, shape);
      assertClose(await sum.readF32(), a.map((v, i) => v + b[i % nb]), { what: "add" });
      assertClose(await prod.readF32(), a.map((v, i) => v * b[i % nb]), { what: "mul" });
      for (const x of [ga, gb, sum, prod]) x.destroy();
    }
    const a = upload(new Float32Array(6), [2, 3]);
    assert.throws(() => add(batch, a, upload(new Float32Array(2), [2])), ShapeError);
    assert.throws(() => mul(batch, a, upload(new Float32Array(12), [2, 2, 3])), ShapeError);
  });

  await t.step("scale and copy (copy is bit-exact for every dtype)", async () => {
    const x = randomF32(random, 777);
    const gx = upload(x, [777]);
    assertClose(await scale(batch, gx, -0.37).readF32(), x.map((v) => v * Math.fround(-0.37)));
    assert.deepEqual(await copy(batch, gx).readF32(), x);
    const ids = new Uint32Array(300).map((_, i) => (i * 2654435761) >>> 0);
    const gi = GpuTensor.fromArray(gpu, ids, [10, 30]);
    const ci = copy(batch, gi);
    assert.equal(ci.dtype, "u32");
    assert.deepEqual(await ci.read(), ids);
    assert.throws(() => scale(batch, gi, 2), ShapeError);
  });

  const refs: Record<RowReduction, (row: Float32Array) => number> = {
    sum: (r) => r.reduce((a, b) => a + b, 0),
    min: (r) => r.reduce((a, b) => Math.min(a, b), Infinity),
    max: (r) => r.reduce((a, b) => Math.max(a, b), -Infinity),
    absmax: (r) => r.reduce((a, b) => Math.max(a, Math.abs(b)), 0),
  };

  await t.step("reduceRows sum/min/max/absmax on shapes off the 64-wide workgroup", async () => {
    for (const [rows, cols] of [[1, 1], [5, 63], [17, 64], [33, 65], [3, 1000], [2, 0]]) {
      const x = randomF32(random, rows * cols);
      const gx = upload(x, [rows, cols]);
      for (const op of Object.keys(refs) as RowReduction[]) {
        const got = await reduceRows(batch, gx, op).readF32();
        const want = Array.from(
          { length: rows },
          (_, r) => refs[op](x.subarray(r * cols, (r + 1) * cols)),
        );
        const magnitude = want.map((_, r) =>
          refs.absmax(x.subarray(r * cols, (r + 1) * cols)) * cols
        );
        if (cols === 0) {
          assert.deepEqual([...got], want, `${op} of empty rows`);
        } else {
          assertClose(got, want, {
            scale: op === "sum" ? magnitude : undefined,
            what: `${op} [${rows},${cols}]`,
          });
        }
      }
      gx.destroy();
    }
    const y = reduceRows(batch, upload(new Float32Array(24).fill(1), [2, 3, 4]), "sum");
    assert.deepEqual(y.shape, [2, 3]);
    assert.deepEqual(await y.readF32(), new Float32Array(6).fill(4));
  });

  await t.step("transpose on shapes that are not multiples of the 16x16 tile", async () => {
    for (const [rows, cols] of [[1, 1], [1, 37], [37, 1], [16, 16], [31, 47], [100, 3]]) {
      const x = randomF32(random, rows * cols);
      const y = transpose(batch, upload(x, [rows, cols]));
      assert.deepEqual(y.shape, [cols, rows]);
      const want = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) want[c * rows + r] = x[r * cols + c];
      }
      assert.deepEqual(await y.readF32(), want, `transpose [${rows},${cols}]`);
    }
    const ints = GpuTensor.fromArray(gpu, new Int32Array([1, -2, 3, -4]), [1, 4]);
    assert.deepEqual(await transpose(batch, ints).read(), new Int32Array([1, -2, 3, -4]));
    assert.throws(() => transpose(batch, upload(new Float32Array(8), [2, 2, 2])), ShapeError);
  });

  await batch.done();
});
