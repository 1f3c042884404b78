/**
 * How the layer-wise forward keeps memory and waits down: host copies of
 * uploaded weights are freed at once when (and only when) the source says
 * they are the caller's, substituted arrays are never touched, and layers
 * run with weights already on the GPU queue up without waiting for the GPU,
 * as do uploads within the bound on weights in flight.
 */

import { getGpu } from "../../src/gpu/device.ts";
import type { Tensor } from "../../src/engine/engine.ts";
import { WebGpuEngine, webGpuOf } from "../../src/engine/webgpu_engine.ts";
import { readF32, testEngine } from "../_engines.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { layerTensorShapes, readLayerTensors } from "../../src/model/layer_tensors.ts";
import { LayerWeights } from "../../src/model/layer_weights.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { releaseRead, type WeightSource } from "../../src/model/weight_source.ts";
import { assert, assertClose, assertEquals } from "./_assert.ts";

const written = await writeSyntheticModel({
  modelType: "llama",
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 96,
  vocab: 120,
  tied: true,
  seed: 5,
});
const hf = await HfModel.open(written.dir);
const config = hf.config;

/** A source that records every array it hands out. */
function recording(fresh: boolean): WeightSource & { handedOut: Float32Array[] } {
  const handedOut: Float32Array[] = [];
  return {
    config,
    returnsFreshArrays: fresh,
    handedOut,
    has: (name) => hf.has(name),
    async readF32(name) {
      const a = await hf.readF32(name);
      handedOut.push(a);
      return a;
    },
  };
}

Deno.test("releaseRead frees only whole arrays of sources that hand them over", async () => {
  const name = "model.layers.0.mlp.up_proj.weight";
  const own = await hf.readF32(name);
  assert(hf.returnsFreshArrays === true, "HfModel reads into new arrays");
  assert(releaseRead(hf, own), "a fresh array of an HfModel is released");
  assertEquals(own.length, 0, "its buffer is detached");

  const shared = await hf.readF32(name);
  assert(!releaseRead(recording(false), shared), "a source that keeps its arrays: untouched");
  assertEquals(shared.length, 64 * 96);
  const view = shared.subarray(64);
  assert(!releaseRead(hf, view), "a view of part of a buffer: untouched");
  assertEquals(shared.length, 64 * 96);
});

Deno.test({
  name: "LayerWeights.load frees the source's arrays after upload, never substitutes",
  sanitizeResources: false,
  async fn() {
    const engine = await WebGpuEngine.create(await getGpu());
    const k = 1;
    const shapes = layerTensorShapes(config, k);
    const down = `model.layers.${k}.mlp.down_proj.weight`;
    const substitute = new Float32Array(64 * 96).map((_, i) => Math.sin(i));
    const expected = await readLayerTensors(hf, k, new Map([[down, substitute]]));

    for (const fresh of [true, false]) {
      const source = recording(fresh);
      const w = await LayerWeights.load(engine, source, k, new Map([[down, substitute]]));
      assertEquals(source.handedOut.length, shapes.size - 1, "every other tensor read once");
      for (const a of source.handedOut) {
        assertEquals(a.length === 0, fresh, `freed exactly when the source allows (${fresh})`);
      }
      assertEquals(substitute.length, 64 * 96, "the substitute is the caller's: kept");
      // What reached the GPU is what was read, freed or not.
      for (const [name] of shapes) {
        const t = name.endsWith("layernorm.weight")
          ? w.norm(name.slice(`model.layers.${k}.`.length, -".weight".length) as never)
          : w.linear(name.slice(`model.layers.${k}.`.length, -".weight".length) as never);
        assertEquals(Array.from(await readF32(engine, t)), Array.from(expected.get(name)!));
      }
      w.destroy();
    }
  },
});

Deno.test({
  name: "runLayer waits for the GPU only past the bound on uploads in flight; results unchanged",
  sanitizeResources: false,
  async fn() {
    const model = await DecoderModel.load(hf, await testEngine("webgpu"));
    const SEQ = 2;
    const T = 8;
    const random = seededRandom(3);
    const ids = Int32Array.from({ length: SEQ * T }, () => Math.floor(random() * 120));
    const reference = await referenceForward(hf, ids, { batch: SEQ });
    const weights = await LayerWeights.load(model.engine, hf, 0);
    const hidden = model.engine.upload(reference.hidden[0], [SEQ * T, 64]);
    await model.idle();

    // Hold every completion back: a call that waited for the GPU would hang.
    const gate = Promise.withResolvers<void>();
    const queue = Object.getPrototypeOf(webGpuOf(model.engine)!.gpu.device.queue) as GPUQueue;
    const original = queue.onSubmittedWorkDone;
    queue.onSubmittedWorkDone = function (this: GPUQueue) {
      const done = original.call(this);
      return gate.promise.then(() => done);
    };
    const outs: Tensor[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // Generous: a call that waits for the GPU never returns while the gate is shut, so only a
      // hang reaches this; a slow first call (Vulkan compiling pipelines on a loaded machine took
      // over 3 s) must not.
      const timeout = new Promise<"waited">((r) => {
        timer = setTimeout(() => r("waited"), 30_000);
      });
      for (let i = 0; i < 3; i++) {
        const run = model.runLayer(0, hidden, { weights, sequences: SEQ });
        const first = await Promise.race([run, timeout]);
        assert(first !== "waited", `call ${i} waited for the GPU`);
        outs.push(first);
      }
      // Uploading from the checkpoint waits only past the bound on uploads in flight.
      const tight = await DecoderModel.load(hf, model.engine, { uploadsInFlightBytes: 1 });
      const first = await Promise.race([tight.runLayer(0, hidden, { sequences: SEQ }), timeout]);
      assert(first !== "waited", "the first upload never waits");
      outs.push(first);
      const loading = tight.runLayer(1, first, { sequences: SEQ });
      const race = await Promise.race([
        loading,
        new Promise<"waited">((r) => setTimeout(() => r("waited"), 300)),
      ]);
      assertEquals(race, "waited", "past the bound the next layer waits for the GPU");
      const roomy = await DecoderModel.load(hf, model.engine);
      const a = await Promise.race([roomy.runLayer(0, hidden, { sequences: SEQ }), timeout]);
      assert(a !== "waited", "within the default 64 MiB nothing waits");
      const b = await Promise.race([roomy.runLayer(1, a, { sequences: SEQ }), timeout]);
      assert(b !== "waited", "within the default 64 MiB nothing waits");
      a.destroy();
      b.destroy();
      gate.resolve();
      (await loading).destroy();
      await tight.idle();
      await roomy.idle();
      tight.close();
      roomy.close();
    } finally {
      clearTimeout(timer);
      gate.resolve();
      queue.onSubmittedWorkDone = original;
    }
    await model.idle();
    for (const out of outs) {
      assertClose(await readF32(model.engine, out), reference.hidden[1], 1e-4);
      out.destroy();
    }
    hidden.destroy();
    weights.destroy();
    model.close();
  },
});

Deno.test({
  name: "logits streams lm_head blocks straight to the host: equal to head() read back",
  sanitizeResources: false,
  async fn() {
    // 120 × 64 f32 in blocks of 8 KiB: 4 vocabulary blocks of 32 rows.
    const model = await DecoderModel.load(hf, await testEngine("webgpu"), {
      streamBlockBytes: 8192,
    });
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 37 + 1) % 120);
    let hidden = await model.embed(ids, 2, 6);
    for (let k = 0; k < config.numHiddenLayers; k++) {
      const next = await model.runLayer(k, hidden);
      hidden.destroy();
      hidden = next;
    }
    const onGpu = await model.head(hidden);
    const expected = await readF32(model.engine, onGpu);
    onGpu.destroy();
    const got = await model.logits(hidden);
    assertEquals(got.length, 12 * 120);
    assertEquals(Array.from(got), Array.from(expected));
    assertEquals(Array.from(await model.forward(ids, 2)), Array.from(expected));
    hidden.destroy();
    model.close();
  },
});

Deno.test({
  name: "cleanup",
  sanitizeResources: false,
  async fn() {
    hf.close();
    await written.remove();
  },
});
