// createEngine / prestartEngine (src/engine/choose.ts): a CPU choice starts the shared kernels
// early and createEngine then makes the CPU engine on them; a WebGPU choice starts nothing; a
// failure to start is left for createEngine to report.

import assert from "node:assert/strict";
import {
  autoEngineKind,
  createEngine,
  ENGINE_ENV,
  engineFromEnv,
  prestartEngine,
} from "../../src/engine/choose.ts";
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

/** Runs `body` with LLMC_ENGINE set to `value` (or unset), restoring what was there. */
async function withEngineEnv(value: string | undefined, body: () => Promise<void> | void) {
  const before = Deno.env.get(ENGINE_ENV);
  if (value === undefined) Deno.env.delete(ENGINE_ENV);
  else Deno.env.set(ENGINE_ENV, value);
  try {
    await body();
  } finally {
    if (before === undefined) Deno.env.delete(ENGINE_ENV);
    else Deno.env.set(ENGINE_ENV, before);
  }
}

Deno.test("LLMC_ENGINE decides what auto means; an engine asked for by name wins", async () => {
  for (const kind of ["cpu", "webgpu"] as const) {
    await withEngineEnv(kind.toUpperCase(), async () => {
      assert.equal(engineFromEnv(), kind);
      assert.deepEqual(await autoEngineKind(), { kind, reason: `LLMC_ENGINE=${kind}` });
    });
  }
  await withEngineEnv("webgpu", async () => {
    // By name, the CPU engine: no adapter is probed and no device opened.
    const { engine, reason } = await createEngine({ engine: "cpu" });
    try {
      assert.equal(engine.kind, "cpu");
      assert.match(reason, /^cpu \(asked for\)/);
    } finally {
      engine.close();
    }
    assert.equal(
      prestartEngine("auto"),
      false,
      "auto under LLMC_ENGINE=webgpu starts no CPU kernels",
    );
  });
  await withEngineEnv("cpu", async () => {
    const { engine, reason } = await createEngine();
    try {
      assert.equal(engine.kind, "cpu");
      assert.match(reason, /^cpu \(LLMC_ENGINE=cpu\): CPU/);
    } finally {
      engine.close();
    }
  });
  for (const unset of [undefined, "", "auto"]) {
    await withEngineEnv(unset, () => assert.equal(engineFromEnv(), undefined));
  }
});

Deno.test("an LLMC_ENGINE that names no engine is an error naming the variable", async () => {
  await withEngineEnv("tpu", async () => {
    assert.throws(() => engineFromEnv(), /LLMC_ENGINE=tpu: expected one of auto, webgpu, cpu/);
    await assert.rejects(() => createEngine(), /LLMC_ENGINE=tpu/);
    // Left to createEngine, which reports it where the run reports errors.
    assert.equal(prestartEngine("auto"), false);
    // By name, the variable is not read.
    assert.equal(prestartEngine("webgpu"), false);
  });
});
