/**
 * The layer-wise API the calibration graph builds on: taps deliver the right
 * tensors at the right time, substituted weights and Linear-input transforms
 * change the output exactly as the reference says, and misuse fails clearly.
 */

import type { HostArray, Tensor } from "../../src/engine/engine.ts";
import { partNorm } from "../../src/model/decoder_layer.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { readLayerTensors } from "../../src/model/layer_tensors.ts";
import { LayerWeights } from "../../src/model/layer_weights.ts";
import { DecoderModelError } from "../../src/model/model_error.ts";
import { referenceForward, referenceLayer } from "../../src/model/reference_forward.ts";
import * as ref from "../../src/model/reference_ops.ts";
import { ropeTable } from "../../src/model/rope.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { type LayerPart, TAP_PARTS, type TapEvent } from "../../src/model/taps.ts";
import { assert, assertClose, assertEquals, assertRejects } from "./_assert.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { ENGINE_KINDS, readF32, testEngine } from "../_engines.ts";

const written = await writeSyntheticModel({
  modelType: "qwen2", // q/k/v biases, GQA
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 96,
  vocab: 200,
  tied: false,
  seed: 21,
});
const hf = await HfModel.open(written.dir);
const config = hf.config;
const SEQ = 2;
const T = 12;
const random = seededRandom(8);
const ids = Int32Array.from({ length: SEQ * T }, () => Math.floor(random() * config.vocabSize));
const reference = await referenceForward(hf, ids, { batch: SEQ });

for (const kind of ENGINE_KINDS) {
  const engine = await testEngine(kind);
  const model = await DecoderModel.load(hf, engine);
  const read = (t: Parameters<typeof readF32>[1]) => readF32(engine, t);

  Deno.test({
    name:
      `${kind}: taps: every Linear input and post-RoPE q/k/v, in forward order, usable in the batch`,
    sanitizeResources: false,
    async fn() {
      const k = 1;
      const x = reference.hidden[k];
      const hidden = engine.upload(x, [SEQ * T, config.hiddenSize]);
      const seen: { kind: string; name: string; copies: Promise<HostArray[]> }[] = [];
      const out = await model.runLayer(k, hidden, {
        sequences: SEQ,
        taps: (e: TapEvent) => {
          assertEquals(e.layer, k);
          assertEquals([e.sequences, e.seqLen], [SEQ, T]);
          // Read inside the callback: the tensors are only alive for the layer's work.
          if (e.kind === "linear_input") {
            seen.push({ kind: e.kind, name: e.modules.join(","), copies: e.engine.read([e.x]) });
          } else if (e.kind === "attention") {
            assertEquals([e.heads, e.kvHeads, e.headDim], [4, 2, 16]);
            seen.push({ kind: e.kind, name: e.module, copies: e.engine.read([e.q, e.k, e.v]) });
          }
        },
      });
      const p = `model.layers.${k}`;
      assertEquals(seen.map((s) => s.name), [
        `${p}.self_attn.q_proj,${p}.self_attn.k_proj,${p}.self_attn.v_proj`,
        `${p}.self_attn`,
        `${p}.self_attn.o_proj`,
        `${p}.mlp.gate_proj,${p}.mlp.up_proj`,
        `${p}.mlp.down_proj`,
      ]);

      // The same intermediates on the CPU.
      const w = await readLayerTensors(hf, k);
      const rows = SEQ * T;
      const H = config.hiddenSize;
      const eps = config.rmsNormEps;
      const get = (n: string) => w.get(`${p}.${n}`)!;
      const xn = ref.rmsnorm(x, get("input_layernorm.weight"), rows, eps);
      const lin = (input: Float32Array, m: string, inF: number, outF: number) =>
        ref.linear(input, get(`${m}.weight`), w.get(`${p}.${m}.bias`), rows, inF, outF);
      const q = lin(xn, "self_attn.q_proj", H, 64);
      const kk = lin(xn, "self_attn.k_proj", H, 32);
      const v = lin(xn, "self_attn.v_proj", H, 32);
      const table = ropeTable(config, T);
      ref.rope(q, table, rows, 4, 16);
      ref.rope(kk, table, rows, 2, 16);
      const att = ref.attention(q, kk, v, {
        sequences: SEQ,
        seqLen: T,
        heads: 4,
        kvHeads: 2,
        headDim: 16,
        window: null,
      });
      const o = lin(att, "self_attn.o_proj", 64, H);
      const h = x.map((xi, i) => xi + o[i]);
      const hn = ref.rmsnorm(h, get("post_attention_layernorm.weight"), rows, eps);
      const act = ref.siluMul(lin(hn, "mlp.gate_proj", H, 96), lin(hn, "mlp.up_proj", H, 96));

      const expected = [[xn], [q, kk, v], [att], [hn], [act]];
      for (const [i, s] of seen.entries()) {
        for (const [j, c] of (await s.copies).entries()) {
          assertClose(c as Float32Array, expected[i][j], 1e-5, `${s.name} tensor ${j}`);
        }
      }
      assertClose(await read(out), reference.hidden[k + 1], 1e-5, "layer output");
      hidden.destroy();
      out.destroy();
    },
  });

  Deno.test({
    name:
      `${kind}: substituted weights: a map or caller-owned LayerWeights replace the checkpoint's`,
    sanitizeResources: false,
    async fn() {
      const k = 0;
      const name = `model.layers.${k}.mlp.down_proj.weight`;
      const original = await hf.readF32(name);
      const halved = original.map((x) => x * 0.5);
      const substitutes = new Map([[name, halved]]);
      const hidden = await model.embed(ids, SEQ, T);
      const expected = referenceLayer(
        config,
        await readLayerTensors(hf, k, substitutes),
        k,
        reference.hidden[0],
        SEQ,
        T,
      );
      const viaMap = await model.runLayer(k, hidden, { weights: substitutes });
      assertClose(await read(viaMap), expected, 1e-5, "map substitution");
      const plain = await model.runLayer(k, hidden);
      const plainValues = await read(plain);
      assertClose(plainValues, reference.hidden[1], 1e-5, "checkpoint weights");
      assert(Math.abs(plainValues[7] - expected[7]) > 1e-4, "substitution changes the output");

      const owned = await LayerWeights.load(engine, hf, k, substitutes);
      const viaObject = await model.runLayer(k, hidden, { weights: owned });
      assertClose(await read(viaObject), expected, 1e-5, "LayerWeights substitution");
      assertEquals(owned.destroyed, false, "caller-owned weights survive runLayer");
      const again = await model.runLayer(k, hidden, { weights: owned });
      assertClose(await read(again), expected, 1e-5, "LayerWeights reused");
      owned.destroy();
      for (const t of [hidden, viaMap, plain, viaObject, again]) t.destroy();
    },
  });

  Deno.test({
    name: `${kind}: transformLinearInput replaces a Linear's input after the tap`,
    sanitizeResources: false,
    async fn() {
      const k = 0;
      const hidden = await model.embed(ids, SEQ, T);
      const calls: string[] = [];
      let tappedBeforeTransform = false;
      const out = await model.runLayer(k, hidden, {
        taps: (e) => {
          if (e.kind === "linear_input" && e.modules[0].endsWith("down_proj")) {
            tappedBeforeTransform = true;
          }
        },
        transformLinearInput: (modules, x, engine) => {
          calls.push(modules.join(","));
          if (!modules[0].endsWith("down_proj")) return x;
          assert(tappedBeforeTransform, "the tap sees the input first");
          // Zero input to down_proj: the MLP adds nothing to the residual.
          return engine.upload(new Float32Array(x.numel), [...x.shape]);
        },
      });
      assertEquals(calls.length, 4);
      // Expected: the layer with a zero down_proj weight (same effect as zero input, no bias).
      const name = `model.layers.${k}.mlp.down_proj.weight`;
      const zeros = new Map([[name, new Float32Array((await hf.readF32(name)).length)]]);
      const expected = referenceLayer(
        config,
        await readLayerTensors(hf, k, zeros),
        k,
        reference.hidden[0],
        SEQ,
        T,
      );
      assertClose(await read(out), expected, 1e-5, "transformed down_proj input");
      hidden.destroy();
      out.destroy();
    },
  });

  Deno.test({
    name: `${kind}: nll on the engine equals log-softmax NLL of the reference logits`,
    sanitizeResources: false,
    async fn() {
      const nll = await model.nll(ids, SEQ);
      assertEquals(nll.length, SEQ * (T - 1));
      const V = config.vocabSize;
      const targets = new Int32Array(SEQ * T).map((_, r) => (r % T === T - 1 ? -1 : ids[r + 1]));
      const all = ref.logSoftmaxNll(reference.logits, targets, V);
      const expected = Array.from(
        { length: SEQ },
        (_, b) => [...all.subarray(b * T, b * T + T - 1)],
      )
        .flat();
      assertClose(nll, expected, 1e-5, "per-token NLL");
      // Logits in vocabulary blocks of 7 columns (not a divisor of the 200) give the same values.
      const blocked = await model.nll(ids, SEQ, { maxLogitsBytes: SEQ * T * 7 * 4 });
      assertClose(blocked, expected, 1e-5, "NLL over vocabulary blocks");
    },
  });

  Deno.test({
    name: `${kind}: embed and head stream the embedding table and lm_head in row blocks`,
    sanitizeResources: false,
    async fn() {
      // Blocks of 9 rows of 64 floats: 23 blocks for the 200-token vocabulary.
      const small = await DecoderModel.load(hf, engine, { streamBlockBytes: 9 * 64 * 4 });
      try {
        const logits = await small.forward(ids, SEQ);
        assertClose(logits, reference.logits, 1e-5, "blocked embed + head");
      } finally {
        small.close();
      }
    },
  });

  Deno.test({
    name: `${kind}: misuse fails with DecoderModelError naming what is wrong`,
    sanitizeResources: false,
    async fn() {
      const foreign = engine.upload(new Float32Array(SEQ * T * 64), [SEQ * T, 64]);
      await assertRejects(
        () => model.runLayer(0, foreign),
        DecoderModelError,
        "pass options.sequences",
      );
      await assertRejects(
        () => model.runLayer(2, foreign, { sequences: 2 }),
        DecoderModelError,
        "layer 2 is outside 0..1",
      );
      await assertRejects(
        () => model.runLayer(0, foreign, { sequences: 5 }),
        DecoderModelError,
        "cannot be 5",
      );
      const bad = new Map([["model.layers.0.self_attn.q_proj.weight", new Float32Array(10)]]);
      await assertRejects(
        () => model.runLayer(0, foreign, { sequences: 2, weights: bad }),
        DecoderModelError,
        "model.layers.0.self_attn.q_proj.weight: substituted tensor has 10 values; expected shape [64,64]",
      );
      await assertRejects(
        () => model.embed(new Int32Array([1, 999]), 1, 2),
        DecoderModelError,
        "ids[1] = 999",
      );
      await assertRejects(
        () => model.embed(new Int32Array(5), 2, 2),
        DecoderModelError,
        "5 ids are not 2 sequences",
      );
      foreign.destroy();
    },
  });

  Deno.test({
    name: `${kind}: a checkpoint missing a tensor its config requires is rejected by name`,
    sanitizeResources: false,
    async fn() {
      const source = {
        config: hf.config,
        has: (n: string) => n !== "model.layers.1.self_attn.k_proj.bias" && hf.has(n),
        readF32: (n: string) => hf.readF32(n),
      };
      const broken = await DecoderModel.load(source, engine);
      await assertRejects(
        () => broken.forward(ids, SEQ),
        DecoderModelError,
        "model.layers.1.self_attn.k_proj.bias: missing from the checkpoint",
      );
      broken.close();
    },
  });

  Deno.test({
    name:
      `${kind}: parts: each half equals the layer with the other half's output projection zeroed, ` +
      `and "inputs" (or a part that stops early) shows the same taps`,
    sanitizeResources: false,
    async fn() {
      const k = 1;
      const p = `model.layers.${k}`;
      const hidden = engine.upload(reference.hidden[k], [SEQ * T, config.hiddenSize]);
      const zeroed = async (modules: string[]) => {
        const w = await readLayerTensors(hf, k);
        for (const m of modules) {
          for (const n of [`${p}.${m}.weight`, `${p}.${m}.bias`]) {
            const t = w.get(n);
            if (t !== undefined) w.set(n, new Float32Array(t.length));
          }
        }
        const out = await model.runLayer(k, hidden, { weights: w, sequences: SEQ });
        try {
          return await read(out);
        } finally {
          out.destroy();
        }
      };
      const partOf = async (part: LayerPart, taps?: (e: TapEvent) => void) => {
        const out = await model.runLayer(k, hidden, { part, taps, sequences: SEQ });
        try {
          return await read(out);
        } finally {
          out.destroy();
        }
      };
      assertEquals(await partOf("self_attn"), await zeroed(["mlp.down_proj"]));
      assertEquals(await partOf("mlp"), await zeroed(["self_attn.o_proj"]));
      assertEquals(await partOf("layer"), await zeroed([]));

      // "inputs": every tap the whole layer shows, with the same values, and h back.
      const tapped = async (part: LayerPart) => {
        const seen: { name: string; copies: Promise<HostArray[]> }[] = [];
        const out = await partOf(part, (e) => {
          if (e.kind === "linear_input") {
            seen.push({ name: e.modules.join(","), copies: e.engine.read([e.x]) });
          } else if (e.kind === "attention") {
            seen.push({ name: e.module, copies: e.engine.read([e.q, e.k, e.v]) });
          }
        });
        const values = await Promise.all(seen.map((s) => s.copies));
        return { names: seen.map((s) => s.name), values, out };
      };
      const whole = await tapped("layer");
      const inputs = await tapped("inputs");
      assertEquals(inputs.names, whole.names);
      assertEquals(inputs.values, whole.values);
      assertEquals(inputs.out, await partOf("self_attn"));

      // A part that stops early: the whole layer's taps up to and including its own, same bits.
      for (const [i, part] of TAP_PARTS.entries()) {
        const stopped = await tapped(part);
        assertEquals(stopped.names, whole.names.slice(0, i + 1), part);
        assertEquals(stopped.values, whole.values.slice(0, i + 1), part);
      }
      hidden.destroy();
    },
  });

  Deno.test({
    name: `${kind}: a half started from its given RMSNorm output (normed) gives the same bits; ` +
      `other parts refuse one`,
    sanitizeResources: false,
    async fn() {
      const k = 1;
      const w = await LayerWeights.load(engine, hf, k);
      const x = engine.upload(reference.hidden[k], [SEQ * T, config.hiddenSize]);
      try {
        for (const part of ["self_attn", "mlp"] as const) {
          const run = async (normed?: Tensor) => {
            const out = await model.runLayer(k, x, { weights: w, part, normed, sequences: SEQ });
            try {
              return await read(out);
            } finally {
              out.destroy();
            }
          };
          const xn = partNorm(engine, config, w, part, x);
          const plain = await run();
          assertEquals(await run(xn), plain, part);
          // Not destroyed by the layer: it serves again.
          assertEquals(await run(xn), plain, `${part}, again`);
          // A different normed input must change the output (the option is used).
          const other = engine.scale(xn, 0.5);
          const halved = await run(other);
          assert(plain.some((v, i) => v !== halved[i]), `${part}: normed is ignored`);
          for (const t of [xn, other]) t.destroy();
        }
        const xn = partNorm(engine, config, w, "self_attn", x);
        await assertRejects(
          () => model.runLayer(k, x, { weights: w, part: "layer", normed: xn, sequences: SEQ }),
          DecoderModelError,
          'needs part "self_attn" or "mlp", not "layer"',
        );
        xn.destroy();
      } finally {
        x.destroy();
        w.destroy();
      }
    },
  });

  Deno.test({
    name: `${kind}: close`,
    sanitizeResources: false,
    fn() {
      model.close();
    },
  });
}

Deno.test({
  name: "teardown",
  sanitizeResources: false,
  async fn() {
    hf.close();
    await written.remove();
  },
});
