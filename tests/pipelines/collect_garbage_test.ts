// collectGarbage (src/_gc.ts) really runs a full collection in Deno: an
// unreachable 40 MB array held only by a WeakRef is gone after it; and it
// skips the collection when ArrayBuffers grew by less than its threshold.

import assert from "node:assert/strict";
import { collectGarbage } from "../../src/_gc.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("collectGarbage frees an unreachable array at once", async () => {
  const ref = (() => new WeakRef(new Float32Array(10_000_000)))();
  // A WeakRef's target (and any target deref() returned) lives until the current job ends.
  await tick();
  assert.ok(ref.deref() !== undefined, "nothing collected it before the call");
  await tick();
  assert.equal(collectGarbage(), true);
  await tick();
  assert.ok(ref.deref() === undefined, "the array survived the collection");
});

Deno.test("collectGarbage skips while ArrayBuffers grew by less than the threshold", async () => {
  assert.equal(collectGarbage({ minGrowthBytes: 0 }), true, "a forced collection runs");
  let small: Float32Array | null = new Float32Array(250_000); // 1 MB
  small.fill(1);
  small = null;
  await tick();
  assert.equal(collectGarbage({ minGrowthBytes: 16 * 2 ** 20 }), false, "1 MB is below 16 MiB");
  const ref = (() => new WeakRef(new Float32Array(10_000_000)))(); // 40 MB
  await tick();
  assert.equal(collectGarbage({ minGrowthBytes: 16 * 2 ** 20 }), true, "40 MB is above 16 MiB");
  await tick();
  assert.ok(ref.deref() === undefined, "the array survived the collection");
});
