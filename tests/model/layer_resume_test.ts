/**
 * A calibration forward resumed where an earlier one stopped
 * (`RunLayerOptions.resume`, see src/model/taps.ts) shows the taps the
 * whole forward shows from that point on, bit for bit, with the same
 * Linear-input transforms applied; it neither destroys nor returns its
 * resume input; resuming where the part does not run past the point fails.
 */

import type { HostArray, Tensor } from "../../src/engine/engine.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { DecoderModelError } from "../../src/model/model_error.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import type {
  LayerPart,
  LayerResume,
  LinearInputTransform,
  TapEvent,
} from "../../src/model/taps.ts";
import { assertEquals, assertRejects } from "./_assert.ts";
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
  seed: 23,
});
const hf = await HfModel.open(written.dir);
const config = hf.config;
const SEQ = 2;
const T = 12;
const random = seededRandom(9);
const ids = Int32Array.from({ length: SEQ * T }, () => Math.floor(random() * config.vocabSize));
const reference = await referenceForward(hf, ids, { batch: SEQ });

/** A transform of every input group but q/k/v's (halving), as a replayed static scale changes them. */
const halve: LinearInputTransform = (modules, x, engine) =>
  modules[0].endsWith("q_proj") ? x : engine.scale(x, 0.5);

for (const kind of ENGINE_KINDS) {
  const engine = await testEngine(kind);
  const model = await DecoderModel.load(hf, engine);

  Deno.test({
    name:
      `${kind}: a forward resumed at q/k/v's, o_proj's or the MLP's input shows the whole forward's ` +
      `later taps, same bits; the resume input is neither destroyed nor returned`,
    sanitizeResources: false,
    async fn() {
      const k = 1;
      const hidden = engine.upload(reference.hidden[k], [SEQ * T, config.hiddenSize]);
      const run = async (part: LayerPart, resume?: LayerResume) => {
        const seen: { name: string; copies: Promise<HostArray[]> }[] = [];
        const out = await model.runLayer(k, hidden, {
          part,
          resume,
          sequences: SEQ,
          transformLinearInput: halve,
          taps: (e: TapEvent) => {
            if (e.kind === "linear_input") {
              seen.push({ name: e.modules.join(","), copies: e.engine.read([e.x]) });
            } else if (e.kind === "attention") {
              seen.push({ name: e.module, copies: e.engine.read([e.q, e.k, e.v]) });
            }
          },
        });
        const values = await Promise.all(seen.map((s) => s.copies));
        return { names: seen.map((s) => s.name), values, out };
      };
      const whole = await run("inputs");
      whole.out.destroy();
      // q/k/v's input, the attention states, o_proj's input, gate/up's, down_proj's.
      assertEquals(whole.names.length, 5);

      const qkv = await run("through_qkv_input");
      const att = await run("through_o_input");
      const mlp = await run("through_mlp_input");
      const cases: Array<[LayerResume, LayerPart, number]> = [
        [{ at: "qkv_input", input: qkv.out }, "through_o_input", 0],
        [{ at: "qkv_input", input: qkv.out }, "inputs", 0],
        [{ at: "o_input", input: att.out }, "through_mlp_input", 2],
        [{ at: "o_input", input: att.out }, "inputs", 2],
        [{ at: "mlp_input", input: mlp.out }, "inputs", 3],
      ];
      // What the stopped parts return is the tapped input itself (before its transform).
      assertEquals(await readF32(engine, qkv.out), whole.values[0][0], "q/k/v's input");
      assertEquals(await readF32(engine, att.out), whole.values[2][0], "o_proj's input");
      assertEquals(await readF32(engine, mlp.out), whole.values[3][0], "the MLP's input");
      for (const [resume, part, from] of cases) {
        // Twice: the resume input serves again.
        for (const time of ["first", "again"]) {
          const resumed = await run(part, resume);
          const to = { through_o_input: 3, through_mlp_input: 4, inputs: 5 }[part as string]!;
          const label = `${resume.at} → ${part}, ${time}`;
          assertEquals(resumed.names, whole.names.slice(from, to), label);
          assertEquals(resumed.values, whole.values.slice(from, to), label);
          const distinct = resumed.out !== resume.input && resumed.out !== hidden;
          assertEquals(distinct, true, `${label}: returns a tensor of its own`);
          resumed.out.destroy();
        }
      }
      for (const t of [qkv.out, att.out, mlp.out, hidden]) t.destroy();
    },
  });

  Deno.test({
    name: `${kind}: resuming where the part does not run past the point is refused`,
    sanitizeResources: false,
    async fn() {
      const k = 0;
      const hidden = engine.upload(reference.hidden[k], [SEQ * T, config.hiddenSize]);
      const width = {
        qkv_input: config.hiddenSize,
        o_input: config.numAttentionHeads * config.headDim,
        mlp_input: config.hiddenSize,
      };
      const refused: Array<[LayerResume["at"], LayerPart]> = [
        ["qkv_input", "through_qkv_input"],
        ["qkv_input", "self_attn"],
        ["o_input", "through_o_input"],
        ["o_input", "layer"],
        ["mlp_input", "through_mlp_input"],
        ["mlp_input", "mlp"],
      ];
      for (const [at, part] of refused) {
        const input: Tensor = engine.upload(new Float32Array(SEQ * T * width[at]), [
          SEQ * T,
          width[at],
        ]);
        await assertRejects(
          () => model.runLayer(k, hidden, { part, resume: { at, input }, sequences: SEQ }),
          DecoderModelError,
          `resumed at ${at} cannot run part ${part}`,
        );
        input.destroy();
      }
      hidden.destroy();
    },
  });
}
