import assert from "node:assert/strict";
import { CommandBatch } from "../../../src/gpu/batch.ts";
import { getGpu } from "../../../src/gpu/device.ts";
import { GpuTensor } from "../../../src/gpu/tensor.ts";
import { fastWalshHadamard } from "../../../src/transform/block_apply.ts";
import { EngineError } from "../../../src/engine/engine_error.ts";
import {
  prepareWalshHadamard,
  walshHadamardGpu,
} from "../../../src/engine/webgpu/walsh_hadamard.ts";

Deno.test({
  name: "GPU fast Walsh–Hadamard equals the host transform (blocks of n in each row, scaled)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const gpu = await getGpu();
    await prepareWalshHadamard(gpu);
    const rows = 5;
    const width = 256;
    const host = Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i * 0.61));
    const x = GpuTensor.fromArray(gpu, host, [rows, width]);
    for (const n of [2, 8, 64, 256]) {
      const batch = new CommandBatch(gpu);
      const y = walshHadamardGpu(batch, x, n, 1 / Math.sqrt(n));
      const got = await y.readF32();
      const want = Float64Array.from(host);
      fastWalshHadamard(want, n, 1 / Math.sqrt(n));
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) < 1e-5,
          `n ${n}, element ${i}: ${got[i]} vs ${want[i]}`,
        );
      }
      y.destroy();
    }
    assert.deepEqual(await x.readF32(), host, "the input is not modified");
    assert.throws(
      () => walshHadamardGpu(new CommandBatch(gpu), x, 12, 1),
      (e) => e instanceof EngineError && e.message.includes("size 12"),
    );
    x.destroy();
  },
});
