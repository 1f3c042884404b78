import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { parseModelConfig } from "../../src/io/model_config.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import {
  planSpinQuant,
  spinQuantTransformConfig,
} from "../../src/modifiers/spinquant/spinquant_plan.ts";
import { TransformError } from "../../src/transform/errors.ts";
import { onlineTransformPlan, onlineTransforms } from "../../src/transform/online_transforms.ts";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import { DecoderModelError } from "../../src/model/model_error.ts";
import { SHARED_DIR } from "../_shared.ts";

const STORIES = `${SHARED_DIR}models/stories260K`;

const R4 = {
  type: "hadamard",
  apply: [
    { targets: ["re:.*down_proj$"], location: "input", inverse: false, ignore: [] },
    { targets: ["re:.*down_proj$"], location: "weight_input", inverse: true, ignore: [] },
  ],
  randomize: false,
  requires_grad: false,
  head_dim: null,
  precision: "torch.float64",
};

Deno.test("transform_config's online applications are planned per layer; a missing stored matrix is named", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const withGroups = (groups: Record<string, unknown>) =>
      parseModelConfig({
        ...hf.config.raw,
        quantization_config: { transform_config: { config_groups: groups } },
      }, "config.json");
    const plan = planSpinQuant(
      hf.config,
      parseRecipe("quant_stage:\n  quant_modifiers:\n    SpinQuantModifier: {}\n").modifiers[0],
    );
    const fused = spinQuantTransformConfig(hf.config, plan).config_groups as Record<
      string,
      unknown
    >;
    assert.deepEqual(onlineTransforms(withGroups(fused)), []);
    assert.equal(onlineTransformPlan(withGroups(fused)).size, 0);
    const online = withGroups({ ...fused, R4: { ...R4, type: "random-hadamard" } });
    assert.deepEqual(onlineTransforms(online), ["R4: input on re:.*down_proj$"]);
    const layers = onlineTransformPlan(online);
    assert.equal(layers.size, hf.config.numHiddenLayers);
    assert.deepEqual(layers.get(1), [{
      group: "R4",
      location: "input",
      module: "model.layers.1.mlp.down_proj",
      tensor: "model.layers.1.mlp.down_proj.R4_input.weight",
      type: "random-hadamard",
      size: 172,
      inverse: false,
      perm: null,
      // Every layer's R4 is the same matrix (one per group and size), any copy will do.
      sameMatrix: Array.from(
        { length: hf.config.numHiddenLayers },
        (_, k) => `model.layers.${k}.mlp.down_proj.R4_input.weight`,
      ).filter((t) => !t.includes(".1.")),
    }]);
    // The checkpoint lacks the stored matrix: the forward names it.
    const source = { config: online, has: hf.has.bind(hf), readF32: hf.readF32.bind(hf) };
    const model = await DecoderModel.load(source, new CpuEngine());
    await assert.rejects(
      () => model.forward(new Int32Array([1, 2, 3])),
      (e) =>
        e instanceof DecoderModelError &&
        e.message.includes("model.layers.0.mlp.down_proj.R4_input.weight"),
    );
    model.close();
    // randomize: Hadamard types read `<module>.<group>_<location>.perm`; random-matrix ignores it.
    const permOf = (scheme: Record<string, unknown>) =>
      onlineTransformPlan(withGroups({ R4: { ...R4, ...scheme, randomize: true } })).get(0)![0]
        .perm;
    assert.equal(permOf({}), "model.layers.0.mlp.down_proj.R4_input.perm");
    assert.equal(permOf({ type: "random-matrix" }), null);
    // Block sizes that do not divide, and lm_head, are refused by name.
    assert.throws(
      () => onlineTransformPlan(withGroups({ R4: { ...R4, head_dim: 48 } })),
      (e) => e instanceof TransformError && e.message.includes("48 does not divide"),
    );
    const onHead = { ...R4, apply: [{ targets: ["Linear"], location: "output", ignore: [] }] };
    assert.throws(
      () => onlineTransformPlan(withGroups({ u: onHead })),
      (e) => e instanceof TransformError && e.message.includes("lm_head"),
    );
  } finally {
    hf.close();
  }
});
