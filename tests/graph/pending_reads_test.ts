/**
 * PendingReads: a layer's outputs come back in one wait unless the bytes in
 * flight exceed the bound, with the values the tensors held when added (the
 * caller destroys them right away), in order.
 */

import { getGpu } from "../../src/gpu/device.ts";
import { GpuTensor } from "../../src/gpu/tensor.ts";
import { WebGpuEngine } from "../../src/engine/webgpu_engine.ts";
import { ActivationCache, MemoryBudget } from "../../src/graph/activation_cache.ts";
import { PendingReads } from "../../src/graph/pending_reads.ts";
import { assert, assertEquals } from "../model/_assert.ts";

/** Holds every map back until `open()`; counts maps. */
function gateMaps() {
  const gate = Promise.withResolvers<void>();
  const proto = GPUBuffer.prototype;
  const original = proto.mapAsync;
  let maps = 0;
  proto.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer["mapAsync"]>) {
    maps++;
    const mapped = original.apply(this, args);
    return gate.promise.then(() => mapped);
  };
  return {
    get maps() {
      return maps;
    },
    open: () => gate.resolve(),
    restore: () => {
      gate.resolve();
      proto.mapAsync = original;
    },
  };
}

const pending = <T>(p: Promise<T>, ms = 500) =>
  Promise.race([
    p.then(() => "done" as const),
    new Promise<"pending">((r) => setTimeout(() => r("pending"), ms)),
  ]);

Deno.test({
  name: "PendingReads: adds do not wait within the bound; values as of add, in order",
  sanitizeResources: false,
  async fn() {
    const gpu = await getGpu();
    const engine = await WebGpuEngine.create(gpu);
    const dir = await Deno.makeTempDir();
    const cache = new ActivationCache(new MemoryBudget(Infinity), dir, "t");
    const gate = gateMaps();
    try {
      const reads = new PendingReads(cache, 1 << 20);
      for (let i = 0; i < 4; i++) {
        const t = GpuTensor.fromArray(gpu, new Float32Array(256).fill(i + 1), [256]);
        assertEquals(await pending(reads.add(i, t, engine)), "done", `add ${i} waited`);
        t.destroy();
        // The pool may hand the same buffer out again and overwrite it at once.
        GpuTensor.fromArray(gpu, new Float32Array(256).fill(-1), [256]).destroy();
      }
      assertEquals(gate.maps, 4);
      const drained = reads.drain();
      assertEquals(await pending(drained, 100), "pending", "nothing is stored before the maps");
      gate.open();
      await drained;
      for (let i = 0; i < 4; i++) {
        assertEquals(Array.from(await cache.get(i)), new Array(256).fill(i + 1));
      }
    } finally {
      gate.restore();
      await cache.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "PendingReads: past the byte bound an add waits for the oldest read",
  sanitizeResources: false,
  async fn() {
    const gpu = await getGpu();
    const engine = await WebGpuEngine.create(gpu);
    const dir = await Deno.makeTempDir();
    const cache = new ActivationCache(new MemoryBudget(Infinity), dir, "t");
    const gate = gateMaps();
    try {
      const reads = new PendingReads(cache, 1500);
      const a = GpuTensor.fromArray(gpu, new Float32Array(256).fill(7), [256]); // 1 KiB
      assertEquals(await pending(reads.add(0, a, engine)), "done", "one read is always in flight");
      const b = GpuTensor.fromArray(gpu, new Float32Array(256).fill(8), [256]);
      const second = reads.add(1, b, engine);
      assertEquals(await pending(second), "pending", "2 KiB in flight exceeds 1500 bytes");
      gate.open();
      await second;
      assert((await cache.get(0))[0] === 7, "the oldest read was stored first");
      await reads.drain();
      assertEquals((await cache.get(1))[0], 8);
      a.destroy();
      b.destroy();
    } finally {
      gate.restore();
      await cache.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
