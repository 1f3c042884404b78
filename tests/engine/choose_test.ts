// createEngine / prestartEngine (src/engine/choose.ts): a CPU choice starts the shared kernels
// early and createEngine then makes the CPU engine on them; a WebGPU choice starts nothing; a
// failure to start is left for createEngine to report.

import assert from "node:assert/strict";
import { createEngine, prestartEngine } from "../../src/engine/choose.ts";
import { cpuKernelInfo } from "../../src/engine/cpu/gemm.ts";

// First in the file: the kernels are one instance per process, started by the first caller.
Deno.test("prestartEngine leaves a failure to start to createEngine", async () => {
  Deno.env.set("LLMC_CPU_THREADS", "none");
  try {
    assert.equal(prestartEngine("cpu"), false);
    await assert.rejects(() => createEngine({ engine: "cpu" }), /LLMC_CPU_THREADS/);
  } finally {
    Deno.env.delete("LLMC_CPU_THREADS");
  }
});

Deno.test("prestartEngine starts the CPU kernels only for a CPU choice", async () => {
  assert.equal(prestartEngine("webgpu"), false);
  assert.equal(prestartEngine("cpu"), true);
  const info = cpuKernelInfo();
  assert.ok(info.threads >= 1);
  const { engine, reason } = await createEngine({ engine: "cpu" });
  try {
    assert.equal(engine.kind, "cpu");
    assert.match(reason, /^cpu \(asked for\): CPU/);
    const y = engine.matmul(
      engine.upload(new Float32Array([1, 2]), [1, 2]),
      engine.upload(new Float32Array([3, 4, 5, 6]), [2, 2]),
    );
    assert.deepEqual((await engine.read([y]))[0], new Float32Array([11, 17]));
  } finally {
    engine.close();
  }
});
