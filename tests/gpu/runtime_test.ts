import assert from "node:assert/strict";
import {
  BufferPool,
  CommandBatch,
  compileKernel,
  copy,
  describeGpu,
  foldCount,
  getGpu,
  GpuDeviceError,
  GpuTensor,
  KernelCompileError,
  kernelSync,
  loadKernel,
  readMany,
  reduceRows,
  scale,
  ShapeError,
  sizeClass,
  STORAGE_USAGE,
  storagePool,
  TensorTooLargeError,
  workgroupsFor,
} from "../../src/gpu/mod.ts";

Deno.test("gpu runtime", async (t) => {
  const gpu = await getGpu();

  await t.step("getGpu is memoized and raises the binding limits to the adapter's", async () => {
    assert.equal(await getGpu(), gpu);
    assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20);
    assert.match(describeGpu(gpu), /storage binding \d+ MiB/);
    assert.equal(typeof gpu.hasF16, "boolean");
  });

  await t.step("tensors round-trip f32, u32 and i32; readMany reads several at once", async () => {
    const f = GpuTensor.fromArray(gpu, new Float32Array([1.5, -2, 3]), [3]);
    const u = GpuTensor.fromArray(gpu, new Uint32Array([0, 0xffffffff]), [2, 1]);
    const i = GpuTensor.fromArray(gpu, new Int32Array([-5, 7, 9, 11]), [2, 2]);
    const [hf, hu, hi] = await readMany([f, u, i]);
    assert.deepEqual(hf, new Float32Array([1.5, -2, 3]));
    assert.deepEqual(hu, new Uint32Array([0, 0xffffffff]));
    assert.deepEqual(hi, new Int32Array([-5, 7, 9, 11]));
    assert.equal(i.numel, 4);
    assert.equal(i.byteLength, 16);
    await assert.rejects(() => u.readF32(), ShapeError);
    for (const x of [f, u, i]) x.destroy();
  });

  await t.step("fromArray checks the element count; oversize tensors name ChunkedWeight", () => {
    assert.throws(() => GpuTensor.fromArray(gpu, new Float32Array(5), [2, 3]), ShapeError);
    const rows = Math.floor(gpu.limits.maxStorageBufferBindingSize / 4 / 1024) + 1;
    assert.throws(() => GpuTensor.empty(gpu, [rows, 1024]), (e: Error) => {
      return e instanceof TensorTooLargeError && /ChunkedWeight/.test(e.message);
    });
  });

  await t.step("empty is zero-filled even when it reuses a pooled buffer", async () => {
    const dirty = GpuTensor.fromArray(gpu, new Float32Array(1000).fill(7), [1000]);
    await dirty.read();
    const buffer = dirty.buffer;
    dirty.destroy();
    const clean = GpuTensor.empty(gpu, [1000]);
    assert.equal(clean.buffer, buffer, "the pool should hand back the same size class");
    assert.ok((await clean.readF32()).every((v) => v === 0));
    clean.destroy();
  });

  await t.step("sizeClass and the pool's reuse, bound and trim", () => {
    assert.equal(sizeClass(1, 2 ** 31), 256);
    assert.equal(sizeClass(1000, 2 ** 31), 1024);
    assert.equal(sizeClass(2 ** 20 + 1, 2 ** 31), 2 ** 20 + 2 ** 17);
    assert.equal(sizeClass(3000, 2048), 3008); // never beyond maxBufferSize
    const pool = new BufferPool(gpu, STORAGE_USAGE, 4096);
    const a = pool.acquire(2000);
    const b = pool.acquire(2000);
    assert.equal(a.size, 2048);
    pool.release(a);
    pool.release(b);
    assert.equal(pool.cachedBytes, 4096);
    assert.equal(pool.acquire(1500), b, "most recent release first");
    pool.release(b);
    pool.release(pool.acquire(3000)); // 4096 bytes: evicts both older buffers
    assert.equal(pool.cachedBytes, 4096);
    assert.equal(pool.trim(), 4096);
    assert.equal(pool.cachedBytes, 0);
    assert.ok(storagePool(gpu).maxCachedBytes > 0);
  });

  await t.step("destroy waits for unsubmitted users; read submits its writers", async () => {
    const batch = new CommandBatch(gpu);
    const x = GpuTensor.fromArray(gpu, new Float32Array(64).fill(2), [64]);
    const y = scale(batch, x, 3); // recorded, not submitted
    x.destroy();
    // Same size class: had x's buffer returned to the pool already, this
    // upload would overwrite it before the scale runs.
    const z = GpuTensor.fromArray(gpu, new Float32Array(64).fill(-1), [64]);
    assert.notEqual(z.buffer, x.buffer);
    assert.ok((await y.readF32()).every((v) => v === 6), "read() must submit the batch");
    assert.equal(batch.pending, 0);
    assert.throws(() => scale(batch, x, 1), ShapeError); // a destroyed tensor cannot be bound
    y.destroy();
    z.destroy();
  });

  await t.step("loadKernel caches per (file, entry, constants) and names bad files", async () => {
    const a = await loadKernel(gpu, "reduce_rows.wgsl", { constants: { OP: 2 } });
    assert.equal(await loadKernel(gpu, "reduce_rows.wgsl", { constants: { OP: 2 } }), a);
    assert.equal(kernelSync(gpu, "reduce_rows.wgsl", { constants: { OP: 2 } }), a);
    assert.notEqual(await loadKernel(gpu, "reduce_rows.wgsl", { constants: { OP: 1 } }), a);
    await assert.rejects(() => loadKernel(gpu, "no_such_kernel.wgsl"), /no_such_kernel\.wgsl/);
    await assert.rejects(() => loadKernel(gpu, "../secret.wgsl"), KernelCompileError);
  });

  await t.step("compile errors carry the file name, position and compiler message", async () => {
    const bad = "@compute @workgroup_size(1) fn main() {\n  let x: f32 = undefined_thing;\n}\n";
    await assert.rejects(() => compileKernel(gpu, "broken.wgsl", bad), (e: Error) => {
      assert.ok(e instanceof KernelCompileError);
      assert.match(e.message, /broken\.wgsl:2:\d+/);
      assert.match(e.message, /undefined_thing/);
      return true;
    });
    const ok = "@compute @workgroup_size(1) fn go() {}";
    await assert.rejects(() => compileKernel(gpu, "entry.wgsl", ok), /entry\.wgsl.*"main"/);
  });

  await t.step("a GPU validation error rejects done() instead of passing silently", async () => {
    const pipeline = await loadKernel(gpu, "elementwise_copy.wgsl");
    const batch = new CommandBatch(gpu);
    const x = GpuTensor.empty(gpu, [4]);
    batch.dispatch(pipeline, [x], [1], "copy with a missing binding");
    await assert.rejects(() => batch.done(), GpuDeviceError);
    // Reported once: the device keeps working.
    const ok = new CommandBatch(gpu);
    const y = copy(ok, x);
    await ok.done();
    assert.deepEqual(await y.readF32(), new Float32Array(4));
    x.destroy();
    y.destroy();
  });

  await t.step("workgroup counts and 2-D folding", async () => {
    assert.equal(workgroupsFor(0, 64), 0);
    assert.equal(workgroupsFor(65, 64), 2);
    assert.deepEqual(foldCount(65535, 65535), [65535, 1]);
    assert.deepEqual(foldCount(65536, 65535), [32768, 2]);
    assert.throws(() => foldCount(65535 * 65535 + 1, 65535), ShapeError);
    const batch = new CommandBatch(gpu);
    assert.throws(() => batch.dispatch(kernelSync(gpu, "elementwise_copy.wgsl"), [], [70000]));
    // More rows than one dimension holds: reduceRows must fold and still cover every row.
    const rows = gpu.limits.maxComputeWorkgroupsPerDimension + 1000;
    const data = new Float32Array(rows * 2).map((_, i) => i);
    const x = GpuTensor.fromArray(gpu, data, [rows, 2]);
    const y = await reduceRows(batch, x, "max").readF32();
    assert.equal(y.length, rows);
    for (let r = 0; r < rows; r++) if (y[r] !== 2 * r + 1) assert.fail(`row ${r}: ${y[r]}`);
    x.destroy();
  });
});
