// collectGarbage (src/_gc.ts) really runs a full collection in Deno: an
// unreachable 40 MB array held only by a WeakRef is gone after it.

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
