import assert from "node:assert/strict";
import {
  adoptDevice,
  CommandBatch,
  getGpu,
  GpuDeviceError,
  GpuTensor,
  GpuUnavailableError,
  scale,
} from "../../src/gpu/mod.ts";

Deno.test("adapter choice: LLMC_GPU, hardware and software", async (t) => {
  const gpu = await getGpu();

  await t.step("an unknown LLMC_GPU value is a clear error, not a crash", async () => {
    const before = Deno.env.get("LLMC_GPU");
    Deno.env.set("LLMC_GPU", "quantum");
    try {
      await assert.rejects(() => getGpu(), (e: Error) => {
        return e instanceof GpuUnavailableError && /LLMC_GPU=quantum/.test(e.message);
      });
    } finally {
      if (before === undefined) Deno.env.delete("LLMC_GPU");
      else Deno.env.set("LLMC_GPU", before);
    }
  });

  // LLMC_GPU overrides the option, so these two steps only mean something without it.
  const overridden = Deno.env.get("LLMC_GPU") !== undefined;
  await t.step({
    name: "hardware: a real adapter, or an error naming what was tried",
    ignore: overridden,
    fn: async () => {
      const result = await getGpu({ adapter: "hardware" }).then((g) => g, (e: Error) => e);
      if (result instanceof Error) {
        assert.ok(result instanceof GpuUnavailableError, String(result));
        assert.match(result.message, /tried hardware/);
        assert.ok(gpu.isFallback, "auto found hardware, so hardware must not fail");
      } else {
        assert.equal(result.isFallback, false);
      }
    },
  });

  await t.step({
    name: "software: a fallback adapter when the platform has one",
    ignore: overridden,
    fn: async () => {
      const result = await getGpu({ adapter: "software" }).then((g) => g, (e: Error) => e);
      if (result instanceof Error) assert.ok(result instanceof GpuUnavailableError);
      else {
        assert.equal(result.isFallback, true);
        if (gpu.isFallback) assert.equal(result, gpu, "auto's software device is shared");
      }
    },
  });
});

Deno.test("a lost device rejects waits instead of hanging", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  assert.ok(adapter);
  const gpu = adoptDevice(adapter, await adapter.requestDevice());
  const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3]), [3]);
  assert.deepEqual(await x.readF32(), new Float32Array([1, 2, 3]));
  gpu.device.destroy();
  await gpu.device.lost;
  const batch = new CommandBatch(gpu);
  const y = scale(batch, x, 2);
  await assert.rejects(() => batch.done(), (e: Error) => {
    return e instanceof GpuDeviceError && /lost/.test(e.message);
  });
  await assert.rejects(() => y.read(), GpuDeviceError);
});
